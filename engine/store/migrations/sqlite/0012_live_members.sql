-- Who is in each live chat, one row per agent and chat (engine/store/journal.py, Rule 6): an
-- agent's load across every department is a count of its rows, which the transaction that gives
-- it a chat checks against its capacity. Filled from the records journaled before it existed.
CREATE TABLE IF NOT EXISTS live_members (
    agent_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    PRIMARY KEY (agent_id, chat_id)
);
CREATE INDEX IF NOT EXISTS live_members_by_chat ON live_members (chat_id);
INSERT OR IGNORE INTO live_members (agent_id, chat_id)
    SELECT m.value, c.chat_id FROM live_chats c, json_each(c.record, '$.members') m
    WHERE json_valid(c.record) AND json_type(c.record, '$.members') = 'array'
      AND m.type = 'text';
