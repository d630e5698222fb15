-- Tickets, departments, agents and access tokens. IF NOT EXISTS throughout: files written before
-- the migrations existed already hold these tables.
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    department TEXT NOT NULL,
    question TEXT NOT NULL,
    visitor_name TEXT NOT NULL,
    visitor_email TEXT NOT NULL,
    visitor_email_lower TEXT NOT NULL,
    visitor_browser TEXT NOT NULL,
    visitor_os TEXT NOT NULL,
    visitor_location TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    entries TEXT NOT NULL,
    handoffs TEXT NOT NULL,
    started_at REAL NOT NULL,
    accepted_at REAL,
    ended_at REAL NOT NULL,
    end_reason TEXT NOT NULL,
    rating TEXT CHECK (rating IN ('good', 'neutral', 'bad')),
    rating_comment TEXT NOT NULL,
    handled INTEGER NOT NULL,
    owner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_end ON tickets (ended_at, id);
CREATE INDEX IF NOT EXISTS tickets_by_kind ON tickets (kind, ended_at, id);
CREATE INDEX IF NOT EXISTS tickets_by_department ON tickets (department, ended_at, id);
CREATE INDEX IF NOT EXISTS tickets_by_email ON tickets (visitor_email_lower, ended_at, id);
CREATE INDEX IF NOT EXISTS tickets_by_visitor ON tickets (visitor_id, ended_at, id);
CREATE TABLE IF NOT EXISTS ticket_agents (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    agent TEXT NOT NULL,
    PRIMARY KEY (ticket_id, position)
);
CREATE INDEX IF NOT EXISTS ticket_agents_by_agent ON ticket_agents (agent, ticket_id);
CREATE TABLE IF NOT EXISTS departments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    chat_enabled INTEGER NOT NULL,
    routing TEXT NOT NULL,
    offer_window REAL NOT NULL,
    queue_timeout REAL NOT NULL,
    queue_limit INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    status TEXT NOT NULL,
    ringtone INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_departments (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    department TEXT NOT NULL,
    PRIMARY KEY (agent_id, position)
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_subject ON tokens (subject);
CREATE INDEX IF NOT EXISTS tokens_by_role ON tokens (role);
