-- Canned messages, their categories and per-agent use counts (engine/_canned_desk.py). Earlier
-- versions created these tables when the engine started, hence IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS canned_categories (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS canned_messages (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    category TEXT NOT NULL,
    department TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS canned_uses (
    agent_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (agent_id, message_id)
);
