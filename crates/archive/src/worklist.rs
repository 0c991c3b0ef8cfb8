//! What the radiologists' worklist reads and writes: studies in triage
//! order with filters, one study in full (series, findings, deliveries,
//! reviews), acknowledgements and verdicts on findings.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::FromRow;

use crate::db::{Pool, Sql};

use crate::db::NOW;
use crate::query::{self, StudySummary};
use crate::states::{DeliveryState, JobState};
use crate::ArchiveError;

/// Which studies, which page.
#[derive(Debug, Clone, Default)]
pub struct WorklistFilter {
    /// Job state of the latest analysis (`done`, `failed`, ...).
    pub status: Option<String>,
    /// A modality of one of its series.
    pub modality: Option<String>,
    pub flagged: Option<bool>,
    pub acknowledged: Option<bool>,
    /// Received on or after this day / on or before it (`YYYY-MM-DD`).
    pub received_from: Option<String>,
    pub received_to: Option<String>,
    /// A substring of the accession number.
    pub accession: Option<String>,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

/// One worklist line: the study, who it is, whether it was acknowledged.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorklistEntry {
    #[serde(flatten)]
    pub study: StudySummary,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
}

/// A page of the worklist and how many studies match in all.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorklistPage {
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
    pub studies: Vec<WorklistEntry>,
}

#[derive(Debug, Clone, Serialize, FromRow, PartialEq)]
pub struct InstanceRow {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub body_part_examined: Option<String>,
    pub series_description: Option<String>,
    pub instance_number: Option<i64>,
    pub view_position: Option<String>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
}

#[derive(Debug, Clone, Serialize, FromRow, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i64,
    pub instances: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, FromRow, PartialEq)]
pub struct FindingView {
    pub job_id: i64,
    pub model: String,
    pub model_version: String,
    pub label: String,
    pub probability: f64,
    pub threshold: f64,
    #[sqlx(try_from = "crate::db::Flag")]
    pub flagged: bool,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub heatmap_uid: Option<String>,
}

#[derive(Debug, Clone, Serialize, FromRow, PartialEq)]
pub struct DeliveryRow {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub destination: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

/// An image a model could not read in one of the study's jobs.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq)]
pub struct SkippedRow {
    pub job_id: i64,
    pub model: String,
    pub model_version: String,
    pub sop_instance_uid: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, FromRow, PartialEq)]
pub struct ReviewRow {
    pub kind: String,
    pub user_name: String,
    pub label: Option<String>,
    pub verdict: Option<String>,
    pub comment: Option<String>,
    pub job_id: Option<i64>,
    pub created_at: String,
}

/// One study in full.
#[derive(Debug, Clone, Serialize, PartialEq)]
/// Serialised flat: the worklist line's fields, then `images` and
/// `results` (named so that they do not repeat the line's `instances`
/// count and `findings` summary: a JSON object's keys must be unique).
pub struct StudyDetail {
    #[serde(flatten)]
    pub entry: WorklistEntry,
    #[serde(rename = "images")]
    pub instances: Vec<InstanceRow>,
    pub jobs: Vec<JobRow>,
    /// The findings of the latest analysis that produced a report.
    #[serde(rename = "results")]
    pub findings: Vec<FindingView>,
    pub deliveries: Vec<DeliveryRow>,
    pub reviews: Vec<ReviewRow>,
    /// Images a model could not read (undecodable, unsupported), newest
    /// job first: the job went on with the others.
    pub skipped_images: Vec<SkippedRow>,
}

/// A verdict on one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub label: String,
    pub agree: bool,
    pub comment: Option<String>,
}

/// Worklist queries (reader pool) and reviews (writer).
#[derive(Clone)]
pub struct Worklist {
    read: Pool,
    write: Pool,
    dir: PathBuf,
}

#[derive(FromRow)]
struct Patient {
    patient_name: Option<String>,
    patient_id: Option<String>,
    acknowledged_at: Option<String>,
    acknowledged_by: Option<String>,
}

const LATEST_REPORTED_JOB: &str =
    "(SELECT MAX(id) FROM jobs j WHERE j.study_instance_uid = $1 AND j.report_uids IS NOT NULL)";

impl Worklist {
    pub(crate) fn new(read: Pool, write: Pool, dir: &Path) -> Worklist {
        Worklist {
            read,
            write,
            dir: dir.to_path_buf(),
        }
    }

    /// Studies matching `f`: urgent, then flagged, then the rest; within
    /// each, the most recently received first.
    pub async fn page(&self, f: &WorklistFilter) -> Result<WorklistPage, ArchiveError> {
        let per_page = f.per_page.clamp(1, 500);
        let page = f.page.max(1);
        let mut q = Sql::new(format!(
            "SELECT * FROM (SELECT {}, st.patient_name, st.patient_id, st.acknowledged_at, st.acknowledged_by FROM studies st) s WHERE 1 = 1",
            query::SUMMARY_COLUMNS
        ));
        filter(&mut q, f);
        q.push(
            " ORDER BY CASE s.priority WHEN 'urgent' THEN 0 WHEN 'flagged' THEN 1 ELSE 2 END, s.last_received_at DESC LIMIT ",
        );
        q.push_bind(per_page as i64);
        q.push(" OFFSET ");
        // In i64: (page - 1) * per_page overflows u32 for a large page.
        q.push_bind((page as i64 - 1) * per_page as i64);
        let rows = q
            .fetch_all(&self.read)
            .await
            .map_err(ArchiveError::db("reading the worklist"))?;
        let mut studies = Vec::with_capacity(rows.len());
        for r in &rows {
            let summary =
                query::Row::from_row(r).map_err(ArchiveError::db("reading the worklist"))?;
            let p = Patient::from_row(r).map_err(ArchiveError::db("reading the worklist"))?;
            studies.push(entry(summary.into(), p));
        }
        let mut count = Sql::new(format!(
            "SELECT COUNT(*) FROM (SELECT {}, st.acknowledged_at FROM studies st) s WHERE 1 = 1",
            query::SUMMARY_COLUMNS
        ));
        filter(&mut count, f);
        let total: i64 = count
            .fetch_scalar(&self.read)
            .await
            .map_err(ArchiveError::db("counting the worklist"))?;
        Ok(WorklistPage {
            total,
            page,
            per_page,
            studies,
        })
    }

    /// One study in full, or `None` if there is no such study.
    pub async fn study(&self, uid: &str) -> Result<Option<StudyDetail>, ArchiveError> {
        let e = |what| ArchiveError::db(what);
        let row = sqlx::query(&format!(
            "SELECT {}, st.patient_name, st.patient_id, st.acknowledged_at, st.acknowledged_by
             FROM studies st WHERE st.study_instance_uid = $1",
            query::SUMMARY_COLUMNS
        ))
        .bind(uid)
        .fetch_optional(&self.read)
        .await
        .map_err(e("reading a study"))?;
        let Some(row) = row else { return Ok(None) };
        let summary = query::Row::from_row(&row).map_err(e("reading a study"))?;
        let patient = Patient::from_row(&row).map_err(e("reading a study"))?;
        let instances = sqlx::query_as(
            "SELECT i.sop_instance_uid, i.sop_class_uid, i.series_instance_uid, se.modality, se.body_part_examined,
                    se.series_description, i.instance_number, i.view_position, i.rows, i.columns
             FROM instances i JOIN series se ON se.series_instance_uid = i.series_instance_uid
             WHERE i.study_instance_uid = $1 ORDER BY se.series_number, i.series_instance_uid, i.instance_number, i.sop_instance_uid",
        )
        .bind(uid)
        .fetch_all(&self.read)
        .await
        .map_err(e("reading a study's instances"))?;
        let jobs = sqlx::query_as(
            "SELECT id, state, reason, attempts, instances, created_at, updated_at FROM jobs
             WHERE study_instance_uid = $1 ORDER BY id DESC",
        )
        .bind(uid)
        .fetch_all(&self.read)
        .await
        .map_err(e("reading a study's jobs"))?;
        let findings = sqlx::query_as(&format!(
            "SELECT job_id, model, model_version, label, probability, threshold, flagged, series_instance_uid,
                    sop_instance_uid, heatmap_uid
             FROM findings WHERE job_id = {LATEST_REPORTED_JOB} AND shadow = 0 ORDER BY model, flagged DESC, probability DESC"
        ))
        .bind(uid)
        .fetch_all(&self.read)
        .await
        .map_err(e("reading a study's findings"))?;
        let deliveries = sqlx::query_as(
            "SELECT sop_instance_uid, sop_class_uid, destination, state, attempts, last_error, delivered_at
             FROM outbox WHERE study_instance_uid = $1 ORDER BY id",
        )
        .bind(uid)
        .fetch_all(&self.read)
        .await
        .map_err(e("reading a study's deliveries"))?;
        let reviews = sqlx::query_as(
            "SELECT kind, user_name, label, verdict, comment, job_id, created_at FROM reviews
             WHERE study_instance_uid = $1 ORDER BY id DESC",
        )
        .bind(uid)
        .fetch_all(&self.read)
        .await
        .map_err(e("reading a study's reviews"))?;
        let skipped_images = sqlx::query_as(
            "SELECT s.job_id, s.model, s.model_version, s.sop_instance_uid, s.error
             FROM skipped_images s JOIN jobs j ON j.id = s.job_id
             WHERE j.study_instance_uid = $1 ORDER BY s.job_id DESC, s.model, s.sop_instance_uid",
        )
        .bind(uid)
        .fetch_all(&self.read)
        .await
        .map_err(e("reading a study's skipped images"))?;
        Ok(Some(StudyDetail {
            entry: entry(summary.into(), patient),
            instances,
            jobs,
            findings,
            deliveries,
            reviews,
            skipped_images,
        }))
    }

    /// Record that `user` has seen the study; false if there is no such
    /// study.
    pub async fn acknowledge(&self, uid: &str, user: &str) -> Result<bool, ArchiveError> {
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(ArchiveError::db("recording an acknowledgement"))?;
        let r = sqlx::query(&format!(
            "UPDATE studies SET acknowledged_at = {NOW}, acknowledged_by = $1 WHERE study_instance_uid = $2"
        ))
        .bind(user)
        .bind(uid)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db("recording an acknowledgement"))?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO reviews (study_instance_uid, job_id, kind, user_name, created_at)
             VALUES ($1, {LATEST_REPORTED_JOB}, 'ack', $2, {NOW})"
        ))
        .bind(uid)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db("recording an acknowledgement"))?;
        tx.commit()
            .await
            .map_err(ArchiveError::db("recording an acknowledgement"))?;
        Ok(true)
    }

    /// Record `user`'s verdict on one finding of the study's latest
    /// analysis; false if there is no such study.
    pub async fn feedback(
        &self,
        uid: &str,
        user: &str,
        f: &Feedback,
    ) -> Result<bool, ArchiveError> {
        let r = sqlx::query(&format!(
            "INSERT INTO reviews (study_instance_uid, job_id, kind, user_name, label, verdict, comment, created_at)
             SELECT study_instance_uid, {LATEST_REPORTED_JOB}, 'feedback', $2, $3, $4, $5, {NOW}
             FROM studies WHERE study_instance_uid = $1"
        ))
        .bind(uid)
        .bind(user)
        .bind(&f.label)
        .bind(if f.agree { "agree" } else { "disagree" })
        .bind(&f.comment)
        .execute(&self.write)
        .await
        .map_err(ArchiveError::db("recording feedback"))?;
        Ok(r.rows_affected() == 1)
    }

    /// The stored file of an instance.
    pub async fn instance_file(&self, sop: &str) -> Result<Option<PathBuf>, ArchiveError> {
        let p: Option<String> =
            sqlx::query_scalar("SELECT file_path FROM instances WHERE sop_instance_uid = $1")
                .bind(sop)
                .fetch_optional(&self.read)
                .await
                .map_err(ArchiveError::db("finding an instance"))?;
        Ok(p.map(|p| self.dir.join(p)))
    }

    /// The heatmap capture of `label` on instance `sop`, from the latest
    /// analysis that made one. It is kept in the outbox folder whether or
    /// not any destination is configured.
    pub async fn heatmap_file(
        &self,
        sop: &str,
        label: &str,
    ) -> Result<Option<PathBuf>, ArchiveError> {
        let uid: Option<String> = sqlx::query_scalar(
            "SELECT heatmap_uid FROM findings
             WHERE sop_instance_uid = $1 AND label = $2 AND heatmap_uid IS NOT NULL
             ORDER BY job_id DESC LIMIT 1",
        )
        .bind(sop)
        .bind(label)
        .fetch_optional(&self.read)
        .await
        .map_err(ArchiveError::db("finding a heatmap"))?;
        Ok(uid
            .and_then(|u| crate::outbox::kept_path(&self.dir, &u))
            .filter(|p| p.is_file()))
    }

    /// The most recent problem: a failed job's reason or an undelivered
    /// result's last error, with when it happened.
    pub async fn last_error(&self) -> Result<Option<(String, String)>, ArchiveError> {
        sqlx::query_as(&format!(
            "SELECT at, what FROM (
               SELECT updated_at AS at, 'analysis: ' || COALESCE(reason, 'failed') AS what FROM jobs WHERE state = {}
               UNION ALL
               SELECT updated_at, 'delivery to ' || destination || ': ' || last_error FROM outbox
                 WHERE last_error IS NOT NULL AND state != {}) AS errors
             ORDER BY at DESC LIMIT 1",
            JobState::Failed.sql(),
            DeliveryState::Delivered.sql()
        ))
        .fetch_optional(&self.read)
        .await
        .map_err(ArchiveError::db("finding the last error"))
    }

    /// Jobs by state, for metrics.
    pub async fn jobs_by_state(&self) -> Result<Vec<(JobState, i64)>, ArchiveError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")
                .fetch_all(&self.read)
                .await
                .map_err(ArchiveError::db("counting jobs"))?;
        rows.into_iter()
            .map(|(s, n)| Ok((s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?, n)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(ArchiveError::db("counting jobs"))
    }
}

fn entry(study: StudySummary, p: Patient) -> WorklistEntry {
    WorklistEntry {
        study,
        patient_name: p.patient_name,
        patient_id: p.patient_id,
        acknowledged_at: p.acknowledged_at,
        acknowledged_by: p.acknowledged_by,
    }
}

/// `text` for LIKE … ESCAPE '\\': its wildcards and backslashes literal.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn filter(q: &mut Sql<'_>, f: &WorklistFilter) {
    if let Some(s) = &f.status {
        q.push(" AND s.status = ").push_bind(s.clone());
    }
    if let Some(m) = &f.modality {
        q.push(" AND ('\\' || s.modalities || '\\') LIKE ")
            .push_bind(format!("%\\\\{}\\\\%", like_literal(&m.to_uppercase())))
            .push(" ESCAPE '\\'");
    }
    if let Some(fl) = f.flagged {
        q.push(" AND COALESCE(s.flagged, 0) = ")
            .push_bind(fl as i64);
    }
    if let Some(a) = f.acknowledged {
        q.push(if a {
            " AND s.acknowledged_at IS NOT NULL"
        } else {
            " AND s.acknowledged_at IS NULL"
        });
    }
    if let Some(d) = &f.received_from {
        q.push(" AND s.last_received_at >= ").push_bind(d.clone());
    }
    if let Some(d) = &f.received_to {
        // Through the end of that day.
        q.push(" AND s.last_received_at < ")
            .push_bind(format!("{d}T99"));
    }
    if let Some(a) = &f.accession {
        q.push(" AND upper(s.accession_number) LIKE upper(")
            .push_bind(format!("%{}%", like_literal(a)))
            .push(") ESCAPE '\\'");
    }
}
