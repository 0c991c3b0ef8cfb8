-- The archive index: one row per study, series and instance received.
-- Files live under <storage>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm;
-- file_path is relative to the storage directory.
-- Timestamps are UTC, ISO 8601 with milliseconds (SQLite's strftime).
-- Patient attributes are kept for the worklist; they never go to logs.

CREATE TABLE studies (
    study_instance_uid   TEXT PRIMARY KEY NOT NULL,
    patient_id           TEXT,
    patient_name         TEXT,
    patient_birth_date   TEXT,
    patient_sex          TEXT,
    accession_number     TEXT,
    study_id             TEXT,
    study_date           TEXT,
    study_time           TEXT,
    study_description    TEXT,
    referring_physician  TEXT,
    first_received_at    TEXT NOT NULL,
    -- Study assembly (the pipeline) waits for this to be quiet.
    last_received_at     TEXT NOT NULL
) STRICT;

CREATE TABLE series (
    series_instance_uid  TEXT PRIMARY KEY NOT NULL,
    study_instance_uid   TEXT NOT NULL REFERENCES studies (study_instance_uid),
    modality             TEXT,
    body_part_examined   TEXT,
    series_number        INTEGER,
    series_description   TEXT,
    first_received_at    TEXT NOT NULL,
    last_received_at     TEXT NOT NULL
) STRICT;

CREATE INDEX series_by_study ON series (study_instance_uid);

CREATE TABLE instances (
    sop_instance_uid     TEXT PRIMARY KEY NOT NULL,
    sop_class_uid        TEXT NOT NULL,
    series_instance_uid  TEXT NOT NULL REFERENCES series (series_instance_uid),
    study_instance_uid   TEXT NOT NULL REFERENCES studies (study_instance_uid),
    instance_number      INTEGER,
    transfer_syntax_uid  TEXT NOT NULL,
    rows                 INTEGER,
    columns              INTEGER,
    number_of_frames     INTEGER,
    view_position        TEXT,
    file_path            TEXT NOT NULL,
    file_size            INTEGER NOT NULL,
    calling_ae_title     TEXT NOT NULL,
    source               TEXT NOT NULL,
    peer_address         TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    -- How often this SOP Instance UID arrived; a resend replaces the file.
    receive_count        INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE INDEX instances_by_study ON instances (study_instance_uid);
CREATE INDEX instances_by_series ON instances (series_instance_uid);
CREATE INDEX studies_by_last_received ON studies (last_received_at);
