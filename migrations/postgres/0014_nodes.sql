-- Several nodes on one database (PostgreSQL; SQLite has one): each beats
-- in `nodes`, and a claimed job or delivery names the node that holds it.
-- A node silent for longer than the lease has its claims taken back.
CREATE TABLE nodes (
    name                 TEXT PRIMARY KEY NOT NULL,
    version              TEXT NOT NULL,
    started_at           TEXT NOT NULL,
    seen_at              TEXT NOT NULL
);
ALTER TABLE jobs ADD COLUMN node TEXT;
ALTER TABLE outbox ADD COLUMN node TEXT;
