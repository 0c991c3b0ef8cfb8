-- Jobs follow their reports to the PACS. States now:
--   ready -> analysing -> reporting -> sending -> done
-- or not_applicable (no model applies), or failed with a reason (analysis
-- failed, or a destination gave up on a report). Findings and the job's
-- outbox rows are committed in one transaction as the job enters
-- `sending`; it is `done` once every outbox row it queued is delivered.
-- At start-up, jobs left `analysing` or `reporting` are made ready again
-- (their report UIDs are functions of their content, so a re-run queues
-- the same objects); `sending` jobs simply wait for the outbox.
--
-- SQLite cannot change a CHECK constraint in place, so jobs is rebuilt;
-- findings references it and is rebuilt with it (renaming a table updates
-- the foreign keys that name it).
CREATE TABLE jobs_v5 (
    id                   INTEGER PRIMARY KEY,
    study_instance_uid   TEXT NOT NULL REFERENCES studies (study_instance_uid),
    -- SHA-256 of the sorted SOP Instance UIDs the job covers.
    instance_set         TEXT NOT NULL,
    instances            INTEGER NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('ready', 'analysing', 'reporting', 'sending', 'done', 'not_applicable', 'failed')),
    reason               TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    report_uids          TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (study_instance_uid, instance_set)
) STRICT;
INSERT INTO jobs_v5 SELECT id, study_instance_uid, instance_set, instances, state, reason,
    attempts, report_uids, created_at, updated_at FROM jobs;

CREATE TABLE findings_v5 (
    id                   INTEGER PRIMARY KEY,
    job_id               INTEGER NOT NULL REFERENCES jobs_v5 (id),
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
INSERT INTO findings_v5 SELECT id, job_id, study_instance_uid, series_instance_uid,
    sop_instance_uid, model, model_version, label, probability, threshold, flagged,
    heatmap_uid, created_at FROM findings;

DROP TABLE findings;
DROP TABLE jobs;
ALTER TABLE jobs_v5 RENAME TO jobs;
ALTER TABLE findings_v5 RENAME TO findings;

CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX jobs_by_study ON jobs (study_instance_uid);
CREATE INDEX findings_by_study ON findings (study_instance_uid);
CREATE INDEX findings_by_job ON findings (job_id);

-- Which job queued an outbox row (NULL: queued by hand).
ALTER TABLE outbox ADD COLUMN job_id INTEGER REFERENCES jobs (id);
CREATE INDEX outbox_by_job ON outbox (job_id) WHERE job_id IS NOT NULL;
