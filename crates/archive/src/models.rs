//! Model lifecycle: the state of each version of each model (active,
//! shadow, disabled) as an admin set it, its history, and how a model's
//! versions compare on the studies they both read.
//!
//! The manifests are not this crate's concern: callers pass each
//! version's manifest state, the default when no row exists. The daemon
//! reads the states for every job, so a change takes effect on the next
//! study without a restart.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::FromRow;

use crate::db::Pool;

use crate::db::NOW;
use crate::ArchiveError;

/// What a version of a model does with live studies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelState {
    /// Reads studies; its findings set the priority, go into the report
    /// and onto the worklist. At most one version of a model is active.
    Active,
    /// Reads studies; its findings are recorded for evaluation only: never
    /// flagged, reported or shown on the worklist.
    Shadow,
    /// Loaded, but reads nothing.
    Disabled,
}

impl ModelState {
    pub const ALL: [ModelState; 3] = [ModelState::Active, ModelState::Shadow, ModelState::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Active => "active",
            ModelState::Shadow => "shadow",
            ModelState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for ModelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a model state.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a model state (active, shadow or disabled)")]
pub struct UnknownState(pub String);

impl FromStr for ModelState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// The state an admin set for one version.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct ModelStateRow {
    pub model: String,
    pub version: String,
    pub state: String,
    pub changed_by: String,
    pub changed_at: String,
}

/// One version's state before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub version: String,
    pub previous: ModelState,
    pub state: ModelState,
}

/// One label of one version of a model: what it found on the jobs it
/// read, against the active version on the same jobs and against the
/// radiologists' verdicts on the active version's findings.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct LabelComparison {
    pub version: String,
    /// Whether these findings were recorded in shadow.
    #[sqlx(try_from = "crate::db::Flag")]
    pub shadow: bool,
    pub label: String,
    /// Analyses (jobs) that have this label's result.
    pub jobs: i64,
    /// Those where the label was flagged (above threshold on any image).
    pub flagged: i64,
    /// Jobs the active version also read (0 for the active version's own
    /// rows, which are the reference).
    pub compared: i64,
    /// Of those, jobs where both flagged or both did not.
    pub agreed: i64,
    /// Jobs where a radiologist said the label is present (agreed with an
    /// active flag, or disagreed with an active non-flag) ...
    pub present: i64,
    /// ... and of those, the jobs this version flagged.
    pub present_flagged: i64,
    /// Jobs where a radiologist said the label is absent ...
    pub absent: i64,
    /// ... and of those, the jobs this version did not flag.
    pub absent_clear: i64,
}

/// The state of `version` given the admin's rows and its manifest's
/// state (`default`).
pub fn effective(
    rows: &[ModelStateRow],
    model: &str,
    version: &str,
    default: ModelState,
) -> ModelState {
    rows.iter()
        .find(|r| r.model == model && r.version == version)
        .and_then(|r| r.state.parse().ok())
        .unwrap_or(default)
}

/// Model states and comparisons.
#[derive(Clone)]
pub struct ModelStates {
    pool: Pool,
}

impl ModelStates {
    pub(crate) fn new(pool: Pool) -> ModelStates {
        ModelStates { pool }
    }

    /// Every state an admin set.
    pub async fn list(&self) -> Result<Vec<ModelStateRow>, ArchiveError> {
        sqlx::query_as("SELECT * FROM model_states ORDER BY model, version")
            .fetch_all(&self.pool)
            .await
            .map_err(ArchiveError::db("reading model states"))
    }

    /// Put `version` of `model` in `state`, in one transaction with its
    /// consequence: activating a version disables every other active one.
    /// `versions` are the model's versions present, each with its
    /// manifest's state. Returns what changed (nothing when the version
    /// already was in that state).
    pub async fn set(
        &self,
        model: &str,
        version: &str,
        state: ModelState,
        versions: &[(String, ModelState)],
        user: &str,
    ) -> Result<Vec<StateChange>, ArchiveError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ArchiveError::db("changing a model's state"))?;
        let rows: Vec<ModelStateRow> =
            sqlx::query_as("SELECT * FROM model_states WHERE model = $1")
                .bind(model)
                .fetch_all(&mut *tx)
                .await
                .map_err(ArchiveError::db("changing a model's state"))?;
        let mut changes = Vec::new();
        for (v, default) in versions {
            let previous = effective(&rows, model, v, *default);
            let next = if v == version {
                state
            } else if state == ModelState::Active && previous == ModelState::Active {
                ModelState::Disabled
            } else {
                continue;
            };
            if next == previous {
                continue;
            }
            sqlx::query(&format!(
                "INSERT INTO model_states (model, version, state, changed_by, changed_at)
                 VALUES ($1, $2, $3, $4, {NOW})
                 ON CONFLICT (model, version) DO UPDATE SET
                   state = excluded.state, changed_by = excluded.changed_by, changed_at = excluded.changed_at"
            ))
            .bind(model)
            .bind(v)
            .bind(next.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db("changing a model's state"))?;
            sqlx::query(&format!(
                "INSERT INTO model_state_changes (model, version, previous, state, changed_by, changed_at)
                 VALUES ($1, $2, $3, $4, $5, {NOW})"
            ))
            .bind(model)
            .bind(v)
            .bind(previous.as_str())
            .bind(next.as_str())
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db("changing a model's state"))?;
            changes.push(StateChange {
                version: v.clone(),
                previous,
                state: next,
            });
        }
        tx.commit()
            .await
            .map_err(ArchiveError::db("changing a model's state"))?;
        Ok(changes)
    }

    /// How the versions of `model` compare, label by label (see
    /// [`LabelComparison`]): per job, a version flags a label when any
    /// image it read was flagged; the reference is the finding recorded
    /// without shadow on the same job, and a radiologist's latest verdict
    /// on that finding says whether the label is present.
    pub async fn compare(&self, model: &str) -> Result<Vec<LabelComparison>, ArchiveError> {
        sqlx::query_as(
            "WITH per AS (
                 SELECT job_id, model_version AS version, shadow, label, MAX(flagged) AS flagged
                 FROM findings WHERE model = $1
                 GROUP BY job_id, model_version, shadow, label),
             reference AS (SELECT job_id, label, flagged FROM per WHERE shadow = 0),
             verdict AS (
                 SELECT r.job_id, r.label,
                        CASE r.verdict WHEN 'agree' THEN ref.flagged ELSE 1 - ref.flagged END AS present
                 FROM reviews r JOIN reference ref ON ref.job_id = r.job_id AND ref.label = r.label
                 WHERE r.kind = 'feedback' AND r.id = (
                     SELECT MAX(id) FROM reviews l
                     WHERE l.kind = 'feedback' AND l.job_id = r.job_id AND l.label = r.label))
             SELECT per.version, per.shadow, per.label,
                    COUNT(*) AS jobs,
                    CAST(SUM(per.flagged) AS BIGINT) AS flagged,
                    SUM(CASE WHEN per.shadow = 1 AND ref.job_id IS NOT NULL THEN 1 ELSE 0 END) AS compared,
                    SUM(CASE WHEN per.shadow = 1 AND ref.flagged = per.flagged THEN 1 ELSE 0 END) AS agreed,
                    SUM(CASE WHEN v.present = 1 THEN 1 ELSE 0 END) AS present,
                    SUM(CASE WHEN v.present = 1 AND per.flagged = 1 THEN 1 ELSE 0 END) AS present_flagged,
                    SUM(CASE WHEN v.present = 0 THEN 1 ELSE 0 END) AS absent,
                    SUM(CASE WHEN v.present = 0 AND per.flagged = 0 THEN 1 ELSE 0 END) AS absent_clear
             FROM per
             LEFT JOIN reference ref ON ref.job_id = per.job_id AND ref.label = per.label
             LEFT JOIN verdict v ON v.job_id = per.job_id AND v.label = per.label
             GROUP BY per.version, per.shadow, per.label
             ORDER BY per.shadow, per.version, per.label",
        )
        .bind(model)
        .fetch_all(&self.pool)
        .await
        .map_err(ArchiveError::db("comparing model versions"))
    }
}
