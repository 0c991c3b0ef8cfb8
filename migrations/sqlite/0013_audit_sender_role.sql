-- STOW-RS senders (role "sender", crates/web/src/auth.rs) are audited too.
-- SQLite cannot change a CHECK constraint: the table is rebuilt with every
-- row and id kept (forwarders' cursors stay valid), then its indexes and
-- append-only triggers are made again. DROP TABLE fires no DELETE trigger.
CREATE TABLE audit_new (
    id                   INTEGER PRIMARY KEY,
    at                   TEXT NOT NULL,
    user_name            TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'radiologist', 'sender', 'cli', 'none')),
    action               TEXT NOT NULL,
    study_instance_uid   TEXT,
    object               TEXT,
    outcome              TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    address              TEXT
) STRICT;
INSERT INTO audit_new (id, at, user_name, role, action, study_instance_uid, object, outcome, address)
    SELECT id, at, user_name, role, action, study_instance_uid, object, outcome, address FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_study ON audit (study_instance_uid) WHERE study_instance_uid IS NOT NULL;
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
