-- The journal's tables as WITHOUT ROWID tables, each stored in the order of its primary key
-- (engine/store/journal.py). A table keyed by text kept a rowid B-tree and an index for its key,
-- so every journal write changed two B-trees per table, and every commit wrote their pages; now
-- one. live_members is keyed by chat first, as the journal reads and deletes it (an agent's seats
-- are counted in agent_seats), which makes its index by chat unneeded. The seat triggers are
-- made again (dropping a table drops its triggers), the first as one upsert.
CREATE TABLE live_chats_keyed (
    chat_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    offer_id TEXT,
    handoff_id TEXT
) WITHOUT ROWID;
INSERT INTO live_chats_keyed (chat_id, record, offer_id, handoff_id)
    SELECT chat_id, record, offer_id, handoff_id FROM live_chats;
DROP TABLE live_chats;
ALTER TABLE live_chats_keyed RENAME TO live_chats;
CREATE UNIQUE INDEX live_chats_by_offer ON live_chats (offer_id) WHERE offer_id IS NOT NULL;
CREATE UNIQUE INDEX live_chats_by_handoff ON live_chats (handoff_id) WHERE handoff_id IS NOT NULL;
CREATE TABLE live_entries_keyed (
    chat_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;
INSERT INTO live_entries_keyed (chat_id, seq, at, kind, author, text, client_msg_id)
    SELECT chat_id, seq, at, kind, author, text, client_msg_id FROM live_entries;
DROP TABLE live_entries;
ALTER TABLE live_entries_keyed RENAME TO live_entries;
CREATE UNIQUE INDEX live_entries_by_client_id
    ON live_entries (chat_id, client_msg_id) WHERE client_msg_id != '';
CREATE TABLE live_agents_keyed (
    agent_id TEXT PRIMARY KEY,
    grace_until REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO live_agents_keyed (agent_id, grace_until)
    SELECT agent_id, grace_until FROM live_agents;
DROP TABLE live_agents;
ALTER TABLE live_agents_keyed RENAME TO live_agents;
CREATE TABLE live_members_keyed (
    chat_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (chat_id, agent_id)
) WITHOUT ROWID;
INSERT INTO live_members_keyed (chat_id, agent_id) SELECT chat_id, agent_id FROM live_members;
DROP TABLE live_members;
ALTER TABLE live_members_keyed RENAME TO live_members;
CREATE TABLE agent_seats_keyed (
    agent_id TEXT PRIMARY KEY,
    seats INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO agent_seats_keyed (agent_id, seats) SELECT agent_id, seats FROM agent_seats;
DROP TABLE agent_seats;
ALTER TABLE agent_seats_keyed RENAME TO agent_seats;
CREATE TRIGGER live_members_seat_taken AFTER INSERT ON live_members
BEGIN
    INSERT INTO agent_seats (agent_id, seats) VALUES (NEW.agent_id, 1)
        ON CONFLICT (agent_id) DO UPDATE SET seats = seats + 1;
END;
CREATE TRIGGER live_members_seat_freed AFTER DELETE ON live_members
BEGIN
    UPDATE agent_seats SET seats = seats - 1 WHERE agent_id = OLD.agent_id;
END;
