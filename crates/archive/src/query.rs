//! Read-side queries over the index.

use serde::Serialize;
use sqlx::FromRow;

use crate::db::Pool;

use crate::ArchiveError;

/// One study as admins and the worklist see it.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
pub struct StudySummary {
    pub study_instance_uid: String,
    pub instances: i64,
    pub series: i64,
    /// Distinct modalities of its series.
    pub modalities: Vec<String>,
    pub accession_number: Option<String>,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub first_received_at: String,
    /// When its latest instance arrived.
    pub received_at: String,
    /// The latest analysis: job state (ready, analysing, reporting,
    /// sending, done, not_applicable, failed), the triage priority (urgent, flagged,
    /// routine), whether any finding is flagged, and the flagged findings
    /// as "label probability".
    pub status: Option<String>,
    pub priority: Option<String>,
    pub flagged: Option<bool>,
    pub findings: Vec<String>,
    /// Set while `triaged studies hold` keeps it from retention.
    pub held_at: Option<String>,
    /// When retention last deleted its instances.
    pub purged_at: Option<String>,
}

#[derive(FromRow)]
pub(crate) struct Row {
    study_instance_uid: String,
    instances: i64,
    series: i64,
    modalities: Option<String>,
    accession_number: Option<String>,
    study_date: Option<String>,
    study_description: Option<String>,
    first_received_at: String,
    last_received_at: String,
    status: Option<String>,
    priority: Option<String>,
    flagged: Option<i64>,
    findings: Option<String>,
    held_at: Option<String>,
    purged_at: Option<String>,
}

/// The columns of [`Row`], over `studies st`.
pub(crate) const SUMMARY_COLUMNS: &str = "st.study_instance_uid,
    (SELECT COUNT(*) FROM instances i WHERE i.study_instance_uid = st.study_instance_uid) AS instances,
    (SELECT COUNT(*) FROM series se WHERE se.study_instance_uid = st.study_instance_uid) AS series,
    (SELECT GROUP_CONCAT(m, '\\') FROM (SELECT DISTINCT modality AS m FROM series se
        WHERE se.study_instance_uid = st.study_instance_uid AND modality IS NOT NULL ORDER BY m) AS ms) AS modalities,
    st.accession_number, st.study_date, st.study_description,
    st.first_received_at, st.last_received_at,
    (SELECT state FROM jobs j WHERE j.study_instance_uid = st.study_instance_uid ORDER BY id DESC LIMIT 1) AS status,
    st.priority, st.flagged,
    (SELECT GROUP_CONCAT(label || ' ' || printf('%.3f', probability), ', ') FROM findings f
        WHERE f.flagged = 1 AND f.shadow = 0 AND f.job_id = (SELECT MAX(id) FROM jobs j WHERE j.study_instance_uid = st.study_instance_uid AND j.report_uids IS NOT NULL)) AS findings,
    st.held_at, st.purged_at";

impl From<Row> for StudySummary {
    fn from(r: Row) -> StudySummary {
        StudySummary {
            study_instance_uid: r.study_instance_uid,
            instances: r.instances,
            series: r.series,
            modalities: r
                .modalities
                .map(|m| m.split('\\').map(str::to_string).collect())
                .unwrap_or_default(),
            accession_number: r.accession_number,
            study_date: r.study_date,
            study_description: r.study_description,
            first_received_at: r.first_received_at,
            received_at: r.last_received_at,
            status: r.status,
            priority: r.priority,
            flagged: r.flagged.map(|f| f != 0),
            findings: r
                .findings
                .map(|f| f.split(", ").map(str::to_string).collect())
                .unwrap_or_default(),
            held_at: r.held_at,
            purged_at: r.purged_at,
        }
    }
}

pub(crate) async fn studies(pool: &Pool) -> Result<Vec<StudySummary>, ArchiveError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM studies st ORDER BY st.last_received_at DESC"
    ))
    .fetch_all(pool)
    .await
    .map_err(ArchiveError::db("listing studies"))?;
    Ok(rows.into_iter().map(StudySummary::from).collect())
}

pub(crate) async fn instance_count(pool: &Pool) -> Result<i64, ArchiveError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM instances")
        .fetch_one(pool)
        .await
        .map_err(ArchiveError::db("counting instances"))
}
