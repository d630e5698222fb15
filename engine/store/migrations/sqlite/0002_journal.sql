-- The journal of live chats (engine/_journal.py).
CREATE TABLE IF NOT EXISTS live_chats (
    chat_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS live_entries (
    chat_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    PRIMARY KEY (chat_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS live_entries_by_client_id
    ON live_entries (chat_id, client_msg_id) WHERE client_msg_id != '';
CREATE TABLE IF NOT EXISTS live_agents (
    agent_id TEXT PRIMARY KEY,
    grace_until REAL NOT NULL
);
