-- What radiologists say about results (crates/web), and the peers an
-- admin adds, changes or removes at run time on top of the TOML file.

-- An acknowledgement or a verdict on one finding, with who and when: the
-- raw material for monitoring a model in use. job_id is the analysis the
-- user was looking at.
CREATE TABLE reviews (
    id                   INTEGER PRIMARY KEY,
    study_instance_uid   TEXT NOT NULL REFERENCES studies (study_instance_uid),
    job_id               INTEGER REFERENCES jobs (id),
    kind                 TEXT NOT NULL CHECK (kind IN ('ack', 'feedback')),
    user_name            TEXT NOT NULL,
    label                TEXT,
    verdict              TEXT CHECK (verdict IN ('agree', 'disagree')),
    comment              TEXT,
    created_at           TEXT NOT NULL,
    CHECK (kind = 'ack' OR (label IS NOT NULL AND verdict IS NOT NULL))
) STRICT;
CREATE INDEX reviews_by_study ON reviews (study_instance_uid);

ALTER TABLE studies ADD COLUMN acknowledged_at TEXT;
ALTER TABLE studies ADD COLUMN acknowledged_by TEXT;

-- A source or destination set from the admin console. A row overrides the
-- TOML entry of the same kind and name; `removed` hides it.
CREATE TABLE peers (
    kind                 TEXT NOT NULL CHECK (kind IN ('source', 'destination')),
    name                 TEXT NOT NULL,
    removed              INTEGER NOT NULL DEFAULT 0,
    ae_title             TEXT,
    -- Sources: allowed hosts, one per line; destinations: host and port.
    hosts                TEXT,
    host                 TEXT,
    port                 INTEGER,
    quiet_secs           REAL,
    updated_by           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) STRICT;
