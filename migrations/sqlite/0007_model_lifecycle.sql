-- Model lifecycle: several versions of a model side by side, each active,
-- shadow or disabled. A row is the state an admin set for one version
-- (`triaged models activate|shadow|disable`, the console); it overrides
-- the manifest's `state` key (default active). At most one version of a
-- model is active: activating one disables the others in the same
-- transaction.
CREATE TABLE model_states (
    model                TEXT NOT NULL,
    version              TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'shadow', 'disabled')),
    changed_by           TEXT NOT NULL,
    changed_at           TEXT NOT NULL,
    PRIMARY KEY (model, version)
) STRICT;

-- Every change, for the audit trail and rollbacks.
CREATE TABLE model_state_changes (
    id                   INTEGER PRIMARY KEY,
    model                TEXT NOT NULL,
    version              TEXT NOT NULL,
    previous             TEXT NOT NULL,
    state                TEXT NOT NULL,
    changed_by           TEXT NOT NULL,
    changed_at           TEXT NOT NULL
) STRICT;

-- Findings of a shadow model: recorded for evaluation, never part of a
-- study's priority, a report or the worklist.
ALTER TABLE findings ADD COLUMN shadow INTEGER NOT NULL DEFAULT 0;
CREATE INDEX findings_by_model ON findings (model, model_version);
