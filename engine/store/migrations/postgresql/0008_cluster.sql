-- Several nodes on one database (README "Running several nodes"). One row holds the desk's
-- routing lease: the node that holds it runs the engine, the others relay their clients to it.
-- The epoch grows at every change of hands; every write of the holder's engine checks it in its
-- own transaction (engine/store/lease.py), so a node that lost the lease writes nothing more.
-- The secret signs the client addresses a relaying node passes on to the holder.
CREATE TABLE cluster_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    instance TEXT,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    secret TEXT NOT NULL
);
INSERT INTO cluster_lease (id, holder, instance, epoch, expires_at, secret)
VALUES (1, NULL, NULL, 0, now(), replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
-- The nodes that joined, on the database's clock; a node that stops removes its row, a killed
-- one stops being seen.
CREATE TABLE cluster_nodes (
    name TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    url TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    connections INTEGER NOT NULL DEFAULT 0
);
