-- A counter the command line bumps after it changes departments, agents or canned messages in
-- the database directly, so that a running daemon notices and picks the change up.
CREATE TABLE config_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_changes (id, version) VALUES (1, 0);
