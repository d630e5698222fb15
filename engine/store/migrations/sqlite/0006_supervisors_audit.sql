-- The departments a supervisor's token covers (a token of another role has no rows), and the
-- audit log of what admins, supervisors and the command line did, with the state before and
-- after each change as JSON text.
CREATE TABLE IF NOT EXISTS token_departments (
    token_hash TEXT NOT NULL REFERENCES tokens (token_hash) ON DELETE CASCADE,
    department TEXT NOT NULL,
    PRIMARY KEY (token_hash, department)
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (at, id);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit_log (actor, at, id);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_log (action, at, id);
