-- Analysis jobs and their findings (crates/pipeline).
-- A job is one study's instance set, taken once the study has been quiet
-- for the quiet period; an instance arriving later makes a new job whose
-- report supersedes the previous one. States: ready -> analysing -> done,
-- or not_applicable (no model applies), or failed with a reason. Jobs a
-- crash left analysing are made ready again at start-up.
CREATE TABLE jobs (
    id                   INTEGER PRIMARY KEY,
    study_instance_uid   TEXT NOT NULL REFERENCES studies (study_instance_uid),
    -- SHA-256 of the sorted SOP Instance UIDs the job covers.
    instance_set         TEXT NOT NULL,
    instances            INTEGER NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('ready', 'analysing', 'done', 'not_applicable', 'failed')),
    reason               TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    report_uids          TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (study_instance_uid, instance_set)
) STRICT;

CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX jobs_by_study ON jobs (study_instance_uid);

CREATE TABLE findings (
    id                   INTEGER PRIMARY KEY,
    job_id               INTEGER NOT NULL REFERENCES jobs (id),
    study_instance_uid   TEXT NOT NULL,
    series_instance_uid  TEXT NOT NULL,
    sop_instance_uid     TEXT NOT NULL,
    model                TEXT NOT NULL,
    model_version        TEXT NOT NULL,
    label                TEXT NOT NULL,
    probability          REAL NOT NULL,
    threshold            REAL NOT NULL,
    flagged              INTEGER NOT NULL,
    heatmap_uid          TEXT,
    created_at           TEXT NOT NULL
) STRICT;

CREATE INDEX findings_by_study ON findings (study_instance_uid);

-- The study-level result the worklist reads: NULL until analysed.
ALTER TABLE studies ADD COLUMN priority TEXT;
ALTER TABLE studies ADD COLUMN flagged INTEGER;
