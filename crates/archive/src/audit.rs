//! The audit trail: an append-only record of who looked at or changed
//! what, when and from where (table `audit`; triggers refuse updates and
//! deletions). Studies are named by UID only, never by patient name or ID.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::Pool;

use crate::db::NOW;
use crate::ArchiveError;

/// What was done. The names are stable: they are stored, exported and
/// sent to syslog as the message ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "worklist.view")]
    WorklistView,
    #[serde(rename = "study.view")]
    StudyView,
    #[serde(rename = "image.view")]
    ImageView,
    #[serde(rename = "heatmap.view")]
    HeatmapView,
    #[serde(rename = "study.acknowledge")]
    StudyAcknowledge,
    #[serde(rename = "study.feedback")]
    StudyFeedback,
    #[serde(rename = "study.hold")]
    StudyHold,
    #[serde(rename = "study.release")]
    StudyRelease,
    /// A copy of the study written out (`triaged export`).
    #[serde(rename = "study.export")]
    StudyExport,
    #[serde(rename = "source.save")]
    SourceSave,
    #[serde(rename = "source.remove")]
    SourceRemove,
    #[serde(rename = "destination.save")]
    DestinationSave,
    #[serde(rename = "destination.remove")]
    DestinationRemove,
    #[serde(rename = "destination.echo")]
    DestinationEcho,
    #[serde(rename = "model.state")]
    ModelState,
    #[serde(rename = "outbox.view")]
    OutboxView,
    #[serde(rename = "outbox.add")]
    OutboxAdd,
    #[serde(rename = "outbox.retry")]
    OutboxRetry,
    #[serde(rename = "retention.run")]
    RetentionRun,
    /// Instances stored by STOW-RS (one event a request).
    #[serde(rename = "dicomweb.store")]
    DicomwebStore,
    /// A QIDO-RS query (answers carry patient names and IDs).
    #[serde(rename = "dicomweb.query")]
    DicomwebQuery,
    /// A WADO-RS retrieval: instances, metadata, frames or a rendering.
    #[serde(rename = "dicomweb.retrieve")]
    DicomwebRetrieve,
    #[serde(rename = "audit.view")]
    AuditView,
    #[serde(rename = "audit.export")]
    AuditExport,
}

impl AuditAction {
    pub const ALL: [AuditAction; 24] = [
        AuditAction::WorklistView,
        AuditAction::StudyView,
        AuditAction::ImageView,
        AuditAction::HeatmapView,
        AuditAction::StudyAcknowledge,
        AuditAction::StudyFeedback,
        AuditAction::StudyHold,
        AuditAction::StudyRelease,
        AuditAction::StudyExport,
        AuditAction::SourceSave,
        AuditAction::SourceRemove,
        AuditAction::DestinationSave,
        AuditAction::DestinationRemove,
        AuditAction::DestinationEcho,
        AuditAction::ModelState,
        AuditAction::OutboxView,
        AuditAction::OutboxAdd,
        AuditAction::OutboxRetry,
        AuditAction::RetentionRun,
        AuditAction::DicomwebStore,
        AuditAction::DicomwebQuery,
        AuditAction::DicomwebRetrieve,
        AuditAction::AuditView,
        AuditAction::AuditExport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::WorklistView => "worklist.view",
            AuditAction::StudyView => "study.view",
            AuditAction::ImageView => "image.view",
            AuditAction::HeatmapView => "heatmap.view",
            AuditAction::StudyAcknowledge => "study.acknowledge",
            AuditAction::StudyFeedback => "study.feedback",
            AuditAction::StudyHold => "study.hold",
            AuditAction::StudyRelease => "study.release",
            AuditAction::StudyExport => "study.export",
            AuditAction::SourceSave => "source.save",
            AuditAction::SourceRemove => "source.remove",
            AuditAction::DestinationSave => "destination.save",
            AuditAction::DestinationRemove => "destination.remove",
            AuditAction::DestinationEcho => "destination.echo",
            AuditAction::ModelState => "model.state",
            AuditAction::OutboxView => "outbox.view",
            AuditAction::OutboxAdd => "outbox.add",
            AuditAction::OutboxRetry => "outbox.retry",
            AuditAction::RetentionRun => "retention.run",
            AuditAction::DicomwebStore => "dicomweb.store",
            AuditAction::DicomwebQuery => "dicomweb.query",
            AuditAction::DicomwebRetrieve => "dicomweb.retrieve",
            AuditAction::AuditView => "audit.view",
            AuditAction::AuditExport => "audit.export",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Who acted: a console user by their token's name and role, or an
/// operating-system user at the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditRole {
    Admin,
    Radiologist,
    /// Stores instances by STOW-RS.
    Sender,
    Cli,
    /// No valid token was given.
    None,
}

impl AuditRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditRole::Admin => "admin",
            AuditRole::Radiologist => "radiologist",
            AuditRole::Sender => "sender",
            AuditRole::Cli => "cli",
            AuditRole::None => "none",
        }
    }

    fn parse(s: &str) -> AuditRole {
        match s {
            "admin" => AuditRole::Admin,
            "radiologist" => AuditRole::Radiologist,
            "sender" => AuditRole::Sender,
            "cli" => AuditRole::Cli,
            _ => AuditRole::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Ok,
    /// Refused: no token, a wrong one, or a role without the right.
    Denied,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> AuditOutcome {
        match s {
            "ok" => AuditOutcome::Ok,
            "denied" => AuditOutcome::Denied,
            _ => AuditOutcome::Failed,
        }
    }
}

/// One thing to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub user: String,
    pub role: AuditRole,
    pub action: AuditAction,
    pub study_instance_uid: Option<String>,
    /// Another object the action names. When it is a SOP Instance UID
    /// (`image.view`, `heatmap.view`) and no study is given, the study is
    /// looked up from the index.
    pub object: Option<String>,
    pub outcome: AuditOutcome,
    /// The client's IP address (console), absent for the CLI.
    pub address: Option<String>,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: String,
    pub user: String,
    pub role: AuditRole,
    pub action: AuditAction,
    pub study_instance_uid: Option<String>,
    pub object: Option<String>,
    pub outcome: AuditOutcome,
    pub address: Option<String>,
}

/// Which events to list (each filter optional; newest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// From this time (inclusive; ISO 8601, compared as text).
    pub since: Option<String>,
    /// Before this time.
    pub until: Option<String>,
    pub user: Option<String>,
    pub action: Option<AuditAction>,
    pub study_instance_uid: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// The audit trail of one archive.
#[derive(Clone)]
pub struct Audit {
    write: Pool,
    read: Pool,
}

const COLUMNS: &str =
    "id, at, user_name, role, action, study_instance_uid, object, outcome, address";

fn event(r: &sqlx::any::AnyRow) -> Result<AuditEvent, sqlx::Error> {
    let action: String = r.try_get("action")?;
    Ok(AuditEvent {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        user: r.try_get("user_name")?,
        role: AuditRole::parse(&r.try_get::<String, _>("role")?),
        action: AuditAction::parse(&action).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "action".into(),
            source: format!("unknown audit action {action}").into(),
        })?,
        study_instance_uid: r.try_get("study_instance_uid")?,
        object: r.try_get("object")?,
        outcome: AuditOutcome::parse(&r.try_get::<String, _>("outcome")?),
        address: r.try_get("address")?,
    })
}

impl Audit {
    pub(crate) fn new(write: Pool, read: Pool) -> Audit {
        Audit { write, read }
    }

    /// Append one event (committed when this returns).
    pub async fn record(&self, e: &NewAuditEvent) -> Result<(), ArchiveError> {
        sqlx::query(&format!(
            "INSERT INTO audit (at, user_name, role, action, study_instance_uid, object, outcome, address)
             VALUES ({NOW}, $1, $2, $3,
                     COALESCE($4, CASE WHEN $3 IN ('image.view', 'heatmap.view')
                        THEN (SELECT study_instance_uid FROM instances WHERE sop_instance_uid = $5) END),
                     $5, $6, $7)"
        ))
        .bind(&e.user)
        .bind(e.role.as_str())
        .bind(e.action.as_str())
        .bind(&e.study_instance_uid)
        .bind(&e.object)
        .bind(e.outcome.as_str())
        .bind(&e.address)
        .execute(&self.write)
        .await
        .map_err(ArchiveError::db("recording an audit event"))?;
        Ok(())
    }

    /// Events matching `f`, newest first.
    pub async fn list(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, ArchiveError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit
             WHERE ($1 IS NULL OR at >= $1) AND ($2 IS NULL OR at < $2)
               AND ($3 IS NULL OR user_name = $3) AND ($4 IS NULL OR action = $4)
               AND ($5 IS NULL OR study_instance_uid = $5)
             ORDER BY id DESC LIMIT $6"
        ))
        .bind(&f.since)
        .bind(&f.until)
        .bind(&f.user)
        .bind(f.action.map(AuditAction::as_str))
        .bind(&f.study_instance_uid)
        .bind(f.limit)
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db("listing audit events"))?;
        rows.iter()
            .map(event)
            .collect::<Result<_, _>>()
            .map_err(ArchiveError::db("reading audit events"))
    }

    /// Events between `since` (inclusive) and `until` with an id above
    /// `after`, oldest first (at most `limit`): an export, page by page.
    pub async fn page(
        &self,
        since: Option<&str>,
        until: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, ArchiveError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit
             WHERE id > $1 AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3)
             ORDER BY id LIMIT $4"
        ))
        .bind(after)
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db("reading audit events"))?;
        rows.iter()
            .map(event)
            .collect::<Result<_, _>>()
            .map_err(ArchiveError::db("reading audit events"))
    }

    /// Events after id `after`, oldest first (at most `limit`).
    pub async fn after(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>, ArchiveError> {
        self.page(None, None, after, limit).await
    }

    /// How far forwarder `name` has sent the trail (0: nothing yet).
    pub async fn cursor(&self, name: &str) -> Result<i64, ArchiveError> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT last_id FROM audit_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.write)
                .await
                .map_err(ArchiveError::db("reading an audit cursor"))?;
        Ok(id.unwrap_or(0))
    }

    pub async fn set_cursor(&self, name: &str, last_id: i64) -> Result<(), ArchiveError> {
        sqlx::query(
            "INSERT INTO audit_cursors (name, last_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last_id = $2",
        )
        .bind(name)
        .bind(last_id)
        .execute(&self.write)
        .await
        .map_err(ArchiveError::db("moving an audit cursor"))?;
        Ok(())
    }
}
