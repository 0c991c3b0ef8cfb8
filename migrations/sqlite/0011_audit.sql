-- The audit trail (crates/archive/src/audit.rs): every access to patient
-- data and every change, by whom (token name and role, or the operating
-- system user for the CLI), from where, to which study (by UID only: never
-- a name or patient ID), when, and with what outcome. Append-only: the
-- triggers refuse changes and deletions.
CREATE TABLE audit (
    id                   INTEGER PRIMARY KEY,
    at                   TEXT NOT NULL,
    user_name            TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'radiologist', 'cli', 'none')),
    action               TEXT NOT NULL,
    study_instance_uid   TEXT,
    -- What else the action names: a SOP Instance UID, a source,
    -- destination or model, an outbox row.
    object               TEXT,
    outcome              TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    address              TEXT
) STRICT;
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_study ON audit (study_instance_uid) WHERE study_instance_uid IS NOT NULL;

CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

-- How far each forwarder (syslog) has sent the trail.
CREATE TABLE audit_cursors (
    name                 TEXT PRIMARY KEY NOT NULL,
    last_id              INTEGER NOT NULL
) STRICT;
