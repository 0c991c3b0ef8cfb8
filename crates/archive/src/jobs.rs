//! Analysis jobs and findings: study assembly reads the index, workers
//! claim jobs, results are recorded per instance and summarised per study.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{FromRow, Row};

use crate::db::Pool;

use crate::db::NOW;
use crate::nodes::Lease;
use crate::outbox::{enqueue, Kept};
use crate::states::{sql_list, DeliveryState, JobState};
use crate::ArchiveError;

/// One claimed job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub study_instance_uid: String,
    pub instance_set: String,
    pub attempts: i64,
}

/// An instance of a study, with what routing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyInstance {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_instance_uid: String,
    pub modality: Option<String>,
    pub body_part_examined: Option<String>,
    pub view_position: Option<String>,
    pub calling_ae_title: String,
    /// The AE title it was sent to (`None`: received before triaged
    /// recorded it, i.e. sent to `[dicom] ae_title`).
    pub called_ae_title: Option<String>,
    pub study_description: Option<String>,
    pub file: PathBuf,
}

/// One label's result on one instance, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub model: String,
    pub model_version: String,
    pub label: String,
    pub probability: f64,
    pub threshold: f64,
    /// What the model's threshold says (for a shadow model, what it
    /// would have flagged).
    pub flagged: bool,
    pub heatmap_uid: Option<String>,
    /// Recorded by a model in shadow: evaluated, never acted on.
    pub shadow: bool,
}

/// How long a study must be quiet before it is analysed: per calling AE
/// title of its latest instance, else the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuietPeriods {
    pub default: Duration,
    pub by_calling_ae: std::collections::HashMap<String, Duration>,
}

impl QuietPeriods {
    /// The same period for every caller.
    pub fn uniform(quiet: Duration) -> QuietPeriods {
        QuietPeriods {
            default: quiet,
            by_calling_ae: Default::default(),
        }
    }

    pub fn of(&self, calling_ae_title: Option<&str>) -> Duration {
        calling_ae_title
            .and_then(|ae| self.by_calling_ae.get(ae.trim()))
            .copied()
            .unwrap_or(self.default)
    }
}

/// The jobs of one archive.
#[derive(Clone)]
pub struct Jobs {
    pool: Pool,
    dir: PathBuf,
    lease: Lease,
}

/// What one round of study assembly did, and when the next is due.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assembly {
    /// The new jobs' ids.
    pub made: Vec<i64>,
    /// How long until the next study waiting now has been quiet for its
    /// quiet period (`None`: no study is waiting). An instance arriving
    /// later starts a study whose wait is at least the shortest quiet
    /// period, so an assembler that also polls learns of it in time.
    pub next_quiet: Option<Duration>,
}

/// A study waiting for its quiet period, as study assembly sees it.
#[derive(Debug, FromRow)]
struct WaitingStudy {
    study_instance_uid: String,
    last_received_at: String,
    /// Seconds since its quiet period started: its latest instance, or
    /// later if the assembler or the receiving node (re)started since.
    age: f64,
    /// Of its latest instance.
    calling_ae_title: Option<String>,
    /// When another node received its latest instance: how long after
    /// the quiet period started that node was last seen alive (negative:
    /// before).
    seen_after: Option<f64>,
    /// When that node's lease has lapsed: seconds since.
    dead_for: Option<f64>,
}

impl WaitingStudy {
    /// Seconds until the study may be assembled (`<= 0`: now), given its
    /// quiet period and the nodes' heartbeat interval.
    ///
    /// A quiet study received by another node is that node's to assemble
    /// (it knows it is alive) until its heartbeat shows it lived through
    /// the quiet period: had it died meanwhile, the sender's association
    /// was cut and the rest of the study may be on its way to another
    /// node. A node found dead gives the study a whole quiet period from
    /// when that became known (its lease lapsed), as a restart does: the
    /// time the others took to notice proves nothing about the study
    /// being complete.
    fn quiet_left(&self, quiet: f64, beat: f64) -> f64 {
        match (self.dead_for, self.seen_after) {
            (Some(dead_for), _) => quiet - self.age.min(dead_for),
            (None, Some(seen_after)) if seen_after < quiet => (quiet - self.age).max(beat),
            _ => quiet - self.age,
        }
    }
}

/// SHA-256 of the sorted SOP Instance UIDs.
pub fn instance_set(uids: &[String]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort();
    let mut h = Sha256::new();
    for u in &sorted {
        h.update(u.as_bytes());
        h.update([0u8]);
    }
    format!("{:x}", h.finalize())
}

impl Jobs {
    pub(crate) fn new(pool: Pool, dir: &Path, lease: Lease) -> Jobs {
        Jobs {
            pool,
            dir: dir.to_path_buf(),
            lease,
        }
    }

    /// The database's clock, in the form the index's timestamps take.
    pub async fn now(&self) -> Result<String, ArchiveError> {
        sqlx::query_scalar(&format!("SELECT {NOW}"))
            .fetch_one(&self.pool)
            .await
            .map_err(ArchiveError::db("reading the clock"))
    }

    /// Jobs a crash of this node left analysing or reporting become
    /// ready again (what they had produced was not committed), with those
    /// of nodes that stopped beating; `sending` jobs are the outbox's.
    pub async fn recover(&self) -> Result<u64, ArchiveError> {
        crate::nodes::release_jobs(&self.pool, &self.lease, true).await
    }

    /// The model has run; the reports are being built (`JobNotHeld`: the
    /// job was taken back from this node meanwhile).
    pub async fn reporting(&self, job: &Job) -> Result<(), ArchiveError> {
        let moved = sqlx::query(&format!(
            "UPDATE jobs SET state = {}, updated_at = {NOW} WHERE id = $1 AND node = $2 AND {}",
            JobState::Reporting.sql(),
            JobState::moving(&[JobState::Analysing], JobState::Reporting)
        ))
        .bind(job.id)
        .bind(&*self.lease.node)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("recording a job's progress"))?;
        if moved.rows_affected() != 1 {
            return Err(ArchiveError::JobNotHeld(job.id));
        }
        Ok(())
    }

    /// Jobs whose every queued object has left the outbox: `done` when all
    /// were delivered, `failed` when a destination gave up on one. Returns
    /// how many jobs changed.
    pub async fn settle(&self) -> Result<u64, ArchiveError> {
        let dead = DeliveryState::Dead.sql();
        let r = sqlx::query(&format!(
            "UPDATE jobs SET
               state = CASE WHEN EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = jobs.id AND o.state = {dead})
                            THEN {failed} ELSE {done} END,
               reason = (SELECT 'not delivered to ' || group_concat(DISTINCT o.destination) || ' (see outbox list)'
                         FROM outbox o WHERE o.job_id = jobs.id AND o.state = {dead}),
               updated_at = {NOW}
             WHERE {from}
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = jobs.id AND o.state IN {waiting})",
            failed = JobState::Failed.sql(),
            done = JobState::Done.sql(),
            from = {
                JobState::moving(&[JobState::Sending], JobState::Failed);
                JobState::moving(&[JobState::Sending], JobState::Done)
            },
            waiting = sql_list(&DeliveryState::WAITING),
        ))
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("settling delivered jobs"))?;
        Ok(r.rows_affected())
    }

    /// Study assembly: a job for every study quiet for its quiet period
    /// whose latest instance arrived after its latest job was made (or that
    /// has none). The quiet period is that of the caller of the study's
    /// latest instance. Counted across all associations and callers, from
    /// the index alone, so nothing waits in memory and a restart loses
    /// nothing. Returns the new jobs' ids and when the next study waiting
    /// will be quiet.
    ///
    /// `watching_since` is when this assembler started watching (from
    /// [`Jobs::now`]): quiet time is counted from it at the earliest, so
    /// a study that was waiting when the daemon stopped gets a whole new
    /// quiet period after the restart. Its sender may have been cut off
    /// mid-transfer by the stop and be about to send the rest; time the
    /// daemon was down proves nothing about the study being complete. In
    /// a cluster the same holds for a study whose receiving node died or
    /// restarted while it waited (see `WaitingStudy::quiet_left`).
    pub async fn assemble(
        &self,
        quiet: &QuietPeriods,
        watching_since: Option<&str>,
    ) -> Result<Assembly, ArchiveError> {
        // SQLite's planner needs telling to use the partial index.
        let hint = match crate::db::backend(&self.pool) {
            crate::db::Backend::Sqlite => "INDEXED BY studies_waiting",
            crate::db::Backend::Postgres => "",
        };
        let lease = format!("{:.3} seconds", self.lease.duration.as_secs_f64());
        // Only studies quiet for the shortest period are looked at
        // closely (the latest caller's AE title costs a look through the
        // study's instances: not for a CT still arriving, every round).
        let shortest = quiet
            .by_calling_ae
            .values()
            .copied()
            .chain([quiet.default])
            .min()
            .unwrap_or_default();
        let threshold = format!("-{:.3} seconds", shortest.as_secs_f64());
        // `since`: when the study's quiet period starts: its latest
        // instance, but no earlier than when this assembler started
        // watching or when the node that received that instance last
        // started (it restarted while the study waited).
        let since = "max(max(st.last_received_at, COALESCE($1, st.last_received_at)),
                         COALESCE(CASE WHEN n.started_at > st.last_received_at THEN n.started_at END,
                                  st.last_received_at))";
        let rows: Vec<WaitingStudy> = sqlx::query_as(&format!(
            "SELECT st.study_instance_uid, st.last_received_at,
                    (julianday('now') - julianday({since})) * 86400.0 AS age,
                    (SELECT i.calling_ae_title FROM instances i WHERE i.study_instance_uid = st.study_instance_uid
                     ORDER BY i.received_at DESC LIMIT 1) AS calling_ae_title,
                    CASE WHEN n.name IS NULL OR n.name = $2 THEN NULL
                         ELSE (julianday(n.seen_at) - julianday({since})) * 86400.0 END AS seen_after,
                    CASE WHEN n.name <> $2 AND n.seen_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{lease}')
                         THEN (julianday('now') - julianday(strftime('%Y-%m-%dT%H:%M:%fZ', n.seen_at, '+{lease}'))) * 86400.0
                    END AS dead_for
             FROM studies st {hint} LEFT JOIN nodes n ON n.name = st.last_node
             WHERE (st.analysed_at IS NULL OR st.analysed_at < st.last_received_at)
               AND st.last_received_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $3)
             ORDER BY st.last_received_at",
        ))
        .bind(watching_since)
        .bind(&*self.lease.node)
        .bind(&threshold)
        .fetch_all(&self.pool)
        .await
        .map_err(ArchiveError::db("finding quiet studies"))?;
        // The others are due no sooner than the shortest period after
        // their latest instance (from the partial index alone).
        let youngest: Option<f64> = sqlx::query_scalar(&format!(
            "SELECT (julianday('now') - julianday(min(st.last_received_at))) * 86400.0
             FROM studies st {hint}
             WHERE (st.analysed_at IS NULL OR st.analysed_at < st.last_received_at)
               AND st.last_received_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $1)",
        ))
        .bind(&threshold)
        .fetch_one(&self.pool)
        .await
        .map_err(ArchiveError::db("finding waiting studies"))?;
        let mut next_quiet =
            youngest.map(|age| Duration::from_secs_f64((shortest.as_secs_f64() - age).max(0.0)));
        let mut studies = Vec::new();
        for w in rows {
            let period = quiet.of(w.calling_ae_title.as_deref()).as_secs_f64();
            let left = w.quiet_left(period, self.lease.duration.as_secs_f64() / 3.0);
            if left <= 0.0 {
                studies.push((w.study_instance_uid, w.last_received_at));
            } else {
                let left = Duration::from_secs_f64(left);
                next_quiet = Some(next_quiet.map_or(left, |n| n.min(left)));
            }
        }
        let mut made = Vec::new();
        for (study, last_received) in studies {
            let uids: Vec<String> = sqlx::query_scalar(
                "SELECT sop_instance_uid FROM instances WHERE study_instance_uid = $1",
            )
            .bind(&study)
            .fetch_all(&self.pool)
            .await
            .map_err(ArchiveError::db("listing a study's instances"))?;
            let set = instance_set(&uids);
            // The same instance set again (a resend of what was analysed)
            // touches the existing job instead of making a second one.
            let id: Option<i64> = sqlx::query_scalar(&format!(
                "INSERT INTO jobs (study_instance_uid, instance_set, instances, state, created_at, updated_at)
                 VALUES ($1, $2, $3, {ready}, {NOW}, {NOW})
                 ON CONFLICT (study_instance_uid, instance_set) DO UPDATE SET created_at = {NOW}
                 RETURNING CASE WHEN state = {ready} AND attempts = 0 THEN id END",
                ready = JobState::Ready.sql(),
            ))
            .bind(&study)
            .bind(&set)
            .bind(uids.len() as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(ArchiveError::db("creating a job"))?;
            made.extend(id);
            // The study has been looked at up to its latest instance; a
            // later one (a newer last_received_at) makes it wait again.
            sqlx::query("UPDATE studies SET analysed_at = $1 WHERE study_instance_uid = $2")
                .bind(&last_received)
                .bind(&study)
                .execute(&self.pool)
                .await
                .map_err(ArchiveError::db("marking a study assembled"))?;
        }
        Ok(Assembly { made, next_quiet })
    }

    /// Claim the oldest ready job of a study no other worker is on (a
    /// study's jobs run one after the other, so a re-run finds the report
    /// it supersedes). The job is this node's until it finishes or the
    /// node stops beating (see `nodes`); on PostgreSQL, nodes claiming at
    /// the same moment skip each other's rows instead of waiting, and the
    /// state is checked again on the row itself, so a job is claimed once.
    /// Only a study's oldest ready job can be claimed: a node that skips
    /// the row another node is claiming (not committed yet, so the study
    /// does not look busy) must not take the study's next job instead.
    pub async fn claim(&self) -> Result<Option<Job>, ArchiveError> {
        let from = JobState::moving(&[JobState::Ready], JobState::Analysing);
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = {analysing}, node = $1, attempts = attempts + 1, updated_at = {NOW}
             WHERE id = (SELECT id FROM jobs WHERE {from}
               AND study_instance_uid NOT IN (SELECT study_instance_uid FROM jobs WHERE state IN {running})
               AND NOT EXISTS (SELECT 1 FROM jobs older
                 WHERE older.study_instance_uid = jobs.study_instance_uid AND older.state = {ready}
                   AND (older.created_at, older.id) < (jobs.created_at, jobs.id))
               ORDER BY created_at, id LIMIT 1 {skip_locked})
               AND {from}
             RETURNING id, study_instance_uid, instance_set, attempts",
            ready = JobState::Ready.sql(),
            analysing = JobState::Analysing.sql(),
            running = sql_list(&JobState::RUNNING),
            skip_locked = crate::db::skip_locked(&self.pool),
        ))
        .bind(&*self.lease.node)
        .fetch_optional(&self.pool)
        .await
        .map_err(ArchiveError::db("claiming a job"))?;
        row.map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                study_instance_uid: r.try_get("study_instance_uid")?,
                instance_set: r.try_get("instance_set")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
        .map_err(ArchiveError::db("claiming a job"))
    }

    /// The study's instances with their series attributes.
    pub async fn instances(&self, study: &str) -> Result<Vec<StudyInstance>, ArchiveError> {
        let rows = sqlx::query(
            "SELECT i.sop_instance_uid, i.sop_class_uid, i.series_instance_uid, se.modality,
                    se.body_part_examined, i.view_position, i.file_path, i.calling_ae_title, i.called_ae_title,
                    st.study_description
             FROM instances i JOIN series se ON se.series_instance_uid = i.series_instance_uid
             JOIN studies st ON st.study_instance_uid = i.study_instance_uid
             WHERE i.study_instance_uid = $1 ORDER BY i.series_instance_uid, i.instance_number, i.sop_instance_uid",
        )
        .bind(study)
        .fetch_all(&self.pool)
        .await
        .map_err(ArchiveError::db("listing a study's instances"))?;
        rows.iter()
            .map(|r| {
                Ok(StudyInstance {
                    sop_instance_uid: r.try_get("sop_instance_uid")?,
                    sop_class_uid: r.try_get("sop_class_uid")?,
                    series_instance_uid: r.try_get("series_instance_uid")?,
                    modality: r.try_get("modality")?,
                    body_part_examined: r.try_get("body_part_examined")?,
                    view_position: r.try_get("view_position")?,
                    calling_ae_title: r.try_get("calling_ae_title")?,
                    called_ae_title: r.try_get("called_ae_title")?,
                    study_description: r.try_get("study_description")?,
                    file: self.dir.join(r.try_get::<String, _>("file_path")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(ArchiveError::db("reading a study's instances"))
    }

    /// The report UIDs of the study's latest finished job, if any (the
    /// predecessors of a re-run's reports).
    pub async fn previous_reports(
        &self,
        study: &str,
        before: i64,
    ) -> Result<Vec<String>, ArchiveError> {
        let uids: Option<String> = sqlx::query_scalar(&format!(
            "SELECT report_uids FROM jobs WHERE study_instance_uid = $1 AND id < $2
               AND report_uids IS NOT NULL AND state IN {}
             ORDER BY id DESC LIMIT 1",
            sql_list(&JobState::REPORTED)
        ))
        .bind(study)
        .bind(before)
        .fetch_optional(&self.pool)
        .await
        .map_err(ArchiveError::db("finding a previous report"))?
        .flatten();
        Ok(uids
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default())
    }

    /// Record an analysed job in one transaction: its findings, the study's
    /// priority, and its report objects (kept by [`crate::Outbox::keep`])
    /// queued for their destinations. The job goes to `sending`, or `done`
    /// when nothing was queued, or `not_applicable` without a priority
    /// (no model applied, or only models in shadow, whose findings are
    /// kept). Shadow findings never flag the study. The images each model
    /// could not read go in the same transaction.
    pub async fn finish(
        &self,
        job: &Job,
        findings: &[FindingRow],
        report_uids: &[String],
        priority: Option<&str>,
        queued: &[(Kept, Vec<String>)],
        skipped: &[ModelSkips],
    ) -> Result<(), ArchiveError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ArchiveError::db("recording a job"))?;
        sqlx::query("DELETE FROM findings WHERE job_id = $1")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db("recording findings"))?;
        insert_findings(&mut tx, job, findings).await?;
        replace_skipped(&mut tx, job, skipped).await?;
        let mut rows = 0;
        for (kept, destinations) in queued {
            enqueue(&mut tx, kept, destinations, Some(job.id)).await?;
            rows += destinations.len();
        }
        let state = match priority {
            None => JobState::NotApplicable,
            Some(_) if rows > 0 => JobState::Sending,
            Some(_) => JobState::Done,
        };
        let moved = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, report_uids = $2, reason = $3, updated_at = {NOW} WHERE id = $4 AND node = $5 AND {}",
            JobState::moving(&JobState::RUNNING, state)
        ))
            .bind(state.as_str())
            .bind(if report_uids.is_empty() { None } else { Some(report_uids.join(",")) })
            .bind(match priority {
                Some(_) => None,
                None if findings.is_empty() => Some("no applicable model"),
                None => Some("only models in shadow apply"),
            })
            .bind(job.id)
            .bind(&*self.lease.node)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db("recording a job"))?;
        if moved.rows_affected() != 1 {
            return Err(ArchiveError::JobNotHeld(job.id));
        }
        if let Some(p) = priority {
            sqlx::query(
                "UPDATE studies SET priority = $1, flagged = $2 WHERE study_instance_uid = $3",
            )
            .bind(p)
            .bind(findings.iter().any(|f| f.flagged && !f.shadow) as i64)
            .bind(&job.study_instance_uid)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db("recording the study's priority"))?;
        }
        tx.commit()
            .await
            .map_err(ArchiveError::db("recording a job"))?;
        Ok(())
    }

    /// Add findings to a finished job (models in shadow, which run after
    /// the report is queued), replacing any a previous attempt recorded,
    /// with the images those models could not read.
    pub async fn add_findings(
        &self,
        job: &Job,
        findings: &[FindingRow],
        skipped: &[ModelSkips],
    ) -> Result<(), ArchiveError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ArchiveError::db("recording findings"))?;
        sqlx::query("DELETE FROM findings WHERE job_id = $1 AND shadow = 1")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db("recording findings"))?;
        insert_findings(&mut tx, job, findings).await?;
        replace_skipped(&mut tx, job, skipped).await?;
        tx.commit()
            .await
            .map_err(ArchiveError::db("recording findings"))
    }

    /// A job that cannot be done: failed with the reason (retried by a
    /// later instance, which makes a new job), with the images the models
    /// that ran before the failure could not read.
    pub async fn fail(
        &self,
        job: &Job,
        reason: &str,
        skipped: &[ModelSkips],
    ) -> Result<(), ArchiveError> {
        const ACTION: &str = "recording a failed job";
        let mut tx = self.pool.begin().await.map_err(ArchiveError::db(ACTION))?;
        replace_skipped(&mut tx, job, skipped).await?;
        let moved = sqlx::query(&format!(
            "UPDATE jobs SET state = {}, reason = $1, updated_at = {NOW} WHERE id = $2 AND node = $3 AND {}",
            JobState::Failed.sql(),
            JobState::moving(&JobState::RUNNING, JobState::Failed)
        ))
        .bind(reason)
        .bind(job.id)
        .bind(&*self.lease.node)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        if moved.rows_affected() != 1 {
            return Err(ArchiveError::JobNotHeld(job.id));
        }
        tx.commit().await.map_err(ArchiveError::db(ACTION))
    }
}

/// The images one model (name, version) could not read in a job, and why;
/// recorded with the job's outcome, replacing what an earlier attempt of
/// the same model recorded (an empty list clears them).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSkips {
    pub model: String,
    pub version: String,
    pub images: Vec<SkippedImage>,
}

/// Replace each model's skipped-image rows of a job.
async fn replace_skipped(
    tx: &mut crate::db::Tx<'_>,
    job: &Job,
    skipped: &[ModelSkips],
) -> Result<(), ArchiveError> {
    const ACTION: &str = "recording skipped images";
    for m in skipped {
        sqlx::query(
            "DELETE FROM skipped_images WHERE job_id = $1 AND model = $2 AND model_version = $3",
        )
        .bind(job.id)
        .bind(&m.model)
        .bind(&m.version)
        .execute(&mut **tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        for s in &m.images {
            sqlx::query(
                "INSERT INTO skipped_images (job_id, model, model_version, sop_instance_uid, error)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (job_id, model, model_version, sop_instance_uid) DO UPDATE SET error = excluded.error",
            )
            .bind(job.id)
            .bind(&m.model)
            .bind(&m.version)
            .bind(&s.sop_instance_uid)
            .bind(&s.error)
            .execute(&mut **tx)
            .await
            .map_err(ArchiveError::db(ACTION))?;
        }
    }
    Ok(())
}

/// An image a model could not read, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedImage {
    pub sop_instance_uid: String,
    pub error: String,
}

/// Insert a job's findings.
async fn insert_findings(
    tx: &mut crate::db::Tx<'_>,
    job: &Job,
    findings: &[FindingRow],
) -> Result<(), ArchiveError> {
    for f in findings {
        sqlx::query(&format!(
                "INSERT INTO findings (job_id, study_instance_uid, series_instance_uid, sop_instance_uid, model, model_version,
                   label, probability, threshold, flagged, heatmap_uid, shadow, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, {NOW})"
            ))
            .bind(job.id)
            .bind(&job.study_instance_uid)
            .bind(&f.series_instance_uid)
            .bind(&f.sop_instance_uid)
            .bind(&f.model)
            .bind(&f.model_version)
            .bind(&f.label)
            .bind(f.probability)
            .bind(f.threshold)
            .bind(f.flagged as i64)
            .bind(&f.heatmap_uid)
            .bind(f.shadow as i64)
            .execute(&mut **tx)
            .await
            .map_err(ArchiveError::db("recording findings"))?;
    }
    Ok(())
}
