-- Retention (crates/archive/src/retention.rs): a settled study's received
-- instances are deleted after [retention] delete_after_days, or earlier,
-- oldest settled first, when the storage passes its high watermark. A
-- study is settled when it is analysed and every report it queued is
-- delivered; a held study is never purged.
--
-- held_at/held_by/hold_reason: set by `triaged studies hold`, cleared by
-- `triaged studies release`.
ALTER TABLE studies ADD COLUMN held_at TEXT;
ALTER TABLE studies ADD COLUMN held_by TEXT;
ALTER TABLE studies ADD COLUMN hold_reason TEXT;
-- The last time the study's instances were purged (its instance rows go
-- with the files; series and study rows, findings and reviews stay until
-- keep_results_days).
ALTER TABLE studies ADD COLUMN purged_at TEXT;

-- What was purged, when and why: one row per study and purge.
CREATE TABLE purges (
    id                   INTEGER PRIMARY KEY,
    study_instance_uid   TEXT NOT NULL,
    reason               TEXT NOT NULL CHECK (reason IN ('age', 'watermark', 'disk_full')),
    instances            INTEGER NOT NULL,
    bytes                INTEGER NOT NULL,
    -- When the study was settled (analysed and delivered).
    settled_at           TEXT NOT NULL,
    purged_at            TEXT NOT NULL
) STRICT;
CREATE INDEX purges_by_study ON purges (study_instance_uid);
CREATE INDEX purges_by_time ON purges (purged_at);
