-- Results waiting for delivery: one row per (object, destination).
-- The object itself is a file under <storage>/outbox/ (fsynced before the
-- row is committed). States: pending (incl. after a transient failure,
-- waiting for next_attempt_at), sending (an attempt in progress; back to
-- pending at start-up), delivered, dead (a permanent rejection, or the
-- retry limit reached; `triaged outbox retry` revives it).
CREATE TABLE outbox (
    id                   INTEGER PRIMARY KEY,
    sop_instance_uid     TEXT NOT NULL,
    sop_class_uid        TEXT NOT NULL,
    study_instance_uid   TEXT NOT NULL,
    file_path            TEXT NOT NULL,
    destination          TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    next_attempt_at      TEXT NOT NULL,
    last_status          INTEGER,
    last_error           TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    delivered_at         TEXT,
    UNIQUE (sop_instance_uid, destination)
) STRICT;

CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
