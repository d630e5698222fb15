-- Routing: a department's routing options (overflow, silence, skills wait, business hours) as
-- JSON, an agent's skills as a JSON list, a ticket's tags, and finished chats' routing traces
-- (engine/store/traces.py), kept for some days.
ALTER TABLE departments ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN skills TEXT NOT NULL DEFAULT '[]';
CREATE TABLE IF NOT EXISTS ticket_tags (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (ticket_id, position)
);
CREATE INDEX IF NOT EXISTS ticket_tags_by_tag ON ticket_tags (tag, ticket_id);
CREATE TABLE IF NOT EXISTS routing_traces (
    chat_id TEXT PRIMARY KEY,
    department TEXT NOT NULL,
    ended_at REAL NOT NULL,
    steps TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS routing_traces_by_end ON routing_traces (ended_at);
