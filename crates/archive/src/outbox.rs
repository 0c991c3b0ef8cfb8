//! The outbox: result objects waiting to be delivered, one row per
//! (object, destination), surviving restarts.
//!
//! An object is written to `<storage>/outbox/<SOPInstanceUID>.dcm`
//! (temporary file, fsync, rename, directory fsync) before its rows are
//! committed, so a row never points at a missing file. A destination that
//! takes messages (HL7, FHIR, webhook) gets one row per report instead,
//! pointing at the report's result document (`<SOPInstanceUID>.result.json`). Delivery claims due
//! rows (`sending`); success makes them `delivered`, a transient failure
//! puts them back to `pending` after an exponential backoff with jitter,
//! and a permanent rejection or the retry limit makes them `dead` until an
//! admin retries them. At start-up, rows left `sending` by a crash go back
//! to `pending`: a peer may then receive the same SOP Instance UID twice,
//! which a PACS files as one instance.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::db::Pool;

use crate::db::NOW;
use crate::fsutil::{create_dir_durable, is_safe_uid, sync_dir};
use crate::nodes::Lease;
use crate::states::{sql_list, DeliveryState, JobState};
use crate::ArchiveError;

pub(crate) const FOLDER: &str = "outbox";
/// How a kept result document's file name ends.
pub const RESULT_EXTENSION: &str = "result.json";

/// A result object to deliver.
#[derive(Debug, Clone)]
pub struct NewObject {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub study_instance_uid: String,
    /// The DICOM file (Part 10, with file meta).
    pub file: Vec<u8>,
}

/// Where `keep` puts the object with this SOP Instance UID (`None` for a
/// UID that is not safe as a file name).
pub(crate) fn kept_path(dir: &Path, sop_instance_uid: &str) -> Option<PathBuf> {
    is_safe_uid(sop_instance_uid).then(|| dir.join(FOLDER).join(format!("{sop_instance_uid}.dcm")))
}

/// An object on disk in the outbox folder, not yet queued.
#[derive(Debug, Clone)]
pub struct Kept {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub study_instance_uid: String,
    relative: String,
}

/// Queue a kept object for each destination inside `tx`; a row that
/// exists for (object, destination) is left as it is.
pub(crate) async fn enqueue(
    tx: &mut sqlx::AnyConnection,
    kept: &Kept,
    destinations: &[String],
    job: Option<i64>,
) -> Result<(), ArchiveError> {
    for d in destinations {
        sqlx::query(&format!(
            "INSERT INTO outbox (sop_instance_uid, sop_class_uid, study_instance_uid, file_path, destination, state, next_attempt_at, created_at, updated_at, job_id)
             VALUES ($1, $2, $3, $4, $5, {}, {NOW}, {NOW}, {NOW}, $6)
             ON CONFLICT (sop_instance_uid, destination) DO NOTHING",
            DeliveryState::Pending.sql()
        ))
        .bind(&kept.sop_instance_uid)
        .bind(&kept.sop_class_uid)
        .bind(&kept.study_instance_uid)
        .bind(&kept.relative)
        .bind(d)
        .bind(job)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db("queuing a result"))?;
    }
    Ok(())
}

/// One outbox row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub study_instance_uid: String,
    pub file_path: PathBuf,
    pub destination: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
    /// The analysis that queued it (`None`: queued by hand, `triaged
    /// outbox add`).
    pub job_id: Option<i64>,
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before a transiently failing row goes dead.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 50,
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: doubling from `first_delay`,
    /// capped at `max_delay`, scaled by a jitter in [0.5, 1) derived from
    /// the row so that many rows failing together do not retry together.
    pub fn delay(&self, id: i64, attempt: u32) -> Duration {
        let base =
            self.first_delay.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        let mut z = (id as u64) ^ ((attempt as u64) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let jitter = 0.5 + 0.5 * ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(capped * jitter)
    }
}

/// The outbox of one archive.
#[derive(Clone)]
pub struct Outbox {
    pool: Pool,
    dir: PathBuf,
    lease: Lease,
    /// When keeping an object finds the disk full: purge settled studies
    /// down to this fraction in use and try once more.
    room: Option<(crate::Retention, f64)>,
}

fn entry(row: &sqlx::any::AnyRow, dir: &Path) -> Result<OutboxEntry, sqlx::Error> {
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        sop_instance_uid: row.try_get("sop_instance_uid")?,
        sop_class_uid: row.try_get("sop_class_uid")?,
        study_instance_uid: row.try_get("study_instance_uid")?,
        file_path: dir.join(row.try_get::<String, _>("file_path")?),
        destination: row.try_get("destination")?,
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        delivered_at: row.try_get("delivered_at")?,
        job_id: row.try_get("job_id")?,
    })
}

const COLUMNS: &str = "id, sop_instance_uid, sop_class_uid, study_instance_uid, file_path, destination, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at, job_id";

impl Outbox {
    pub(crate) fn new(pool: Pool, dir: PathBuf, lease: Lease) -> Outbox {
        Outbox {
            pool,
            dir,
            lease,
            room: None,
        }
    }

    pub(crate) fn making_room(mut self, retention: crate::Retention, low: f64) -> Outbox {
        self.room = Some((retention, low));
        self
    }

    /// Keep `object` durably and queue it for each destination. Queuing an
    /// object already queued for a destination changes nothing (its UID is
    /// a function of its content), so a retried analysis never sends twice.
    pub async fn add(
        &self,
        object: &NewObject,
        destinations: &[String],
    ) -> Result<(), ArchiveError> {
        let kept = self.keep(object).await?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(ArchiveError::db("queuing a result"))?;
        enqueue(&mut tx, &kept, destinations, None).await?;
        tx.commit()
            .await
            .map_err(ArchiveError::db("queuing a result"))?;
        Ok(())
    }

    /// Write `object` durably into the outbox folder (file fsynced, then
    /// renamed, then the folder fsynced) without queuing it: the pipeline
    /// queues its objects in the transaction that records the job's
    /// findings ([`crate::Jobs::finish`]), so a crash leaves either both or
    /// neither. A file kept but never queued is overwritten by the re-run.
    pub async fn keep(&self, object: &NewObject) -> Result<Kept, ArchiveError> {
        self.keep_as(object, "dcm").await
    }

    /// Keep the result document of the report `object` names (its SOP
    /// Instance UID and class are the report's; its file is the result as
    /// JSON), for destinations that take a message rather than DICOM
    /// objects. Kept as `<SOPInstanceUID>.result.json` beside the report.
    pub async fn keep_result(&self, object: &NewObject) -> Result<Kept, ArchiveError> {
        self.keep_as(object, RESULT_EXTENSION).await
    }

    async fn keep_as(&self, object: &NewObject, extension: &str) -> Result<Kept, ArchiveError> {
        if !is_safe_uid(&object.sop_instance_uid) {
            return Err(ArchiveError::BadAttribute {
                attribute: "SOPInstanceUID",
            });
        }
        let relative = format!("{FOLDER}/{}.{extension}", object.sop_instance_uid);
        let folder = self.dir.join(FOLDER);
        let path = self.dir.join(&relative);
        let tmp = self.dir.join(format!("{relative}.tmp"));
        let write = || {
            let (bytes, root, folder, path, tmp) = (
                object.file.clone(),
                self.dir.clone(),
                folder.clone(),
                path.clone(),
                tmp.clone(),
            );
            async move {
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::io::Write;
                    // The folder's own entry must survive power loss too.
                    create_dir_durable(&root, &folder)?;
                    let written = std::fs::File::create(&tmp).and_then(|mut f| {
                        f.write_all(&bytes)?;
                        f.sync_all()
                    });
                    if let Err(e) = written {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                    std::fs::rename(&tmp, &path)?;
                    sync_dir(&folder)
                })
                .await
                .map_err(|e| ArchiveError::io("keep a result object", std::io::Error::other(e)))?
                .map_err(|e| ArchiveError::io("keep a result object", e))
            }
        };
        match (write().await, &self.room) {
            (Err(e), Some((retention, low))) if e.is_disk_full() => {
                // Settled studies make room; then once more.
                if !retention.make_room(*low).await? {
                    return Err(e);
                }
                write().await?
            }
            (r, _) => r?,
        }
        Ok(Kept {
            sop_instance_uid: object.sop_instance_uid.clone(),
            sop_class_uid: object.sop_class_uid.clone(),
            study_instance_uid: object.study_instance_uid.clone(),
            relative,
        })
    }

    /// Rows a crash of this node left `sending` go back to `pending`, with
    /// those of nodes that stopped beating; returns how many.
    pub async fn recover(&self) -> Result<u64, ArchiveError> {
        crate::nodes::release_deliveries(&self.pool, &self.lease, true).await
    }

    /// Claim up to `limit` due rows (they become `sending`, held by this
    /// node), oldest first; nodes claiming together get different rows.
    pub async fn claim_due(&self, limit: i64) -> Result<Vec<OutboxEntry>, ArchiveError> {
        let from = DeliveryState::moving(&[DeliveryState::Pending], DeliveryState::Sending);
        let rows = sqlx::query(&format!(
            "UPDATE outbox SET state = {}, node = $2, updated_at = {NOW}
             WHERE id IN (SELECT id FROM outbox WHERE {from} AND next_attempt_at <= {NOW}
                          ORDER BY next_attempt_at, id LIMIT $1 {})
               AND {from}
             RETURNING {COLUMNS}",
            DeliveryState::Sending.sql(),
            crate::db::skip_locked(&self.pool),
        ))
        .bind(limit)
        .bind(&*self.lease.node)
        .fetch_all(&self.pool)
        .await
        .map_err(ArchiveError::db("claiming due results"))?;
        let mut out: Vec<OutboxEntry> = rows
            .iter()
            .map(|r| entry(r, &self.dir))
            .collect::<Result<_, _>>()
            .map_err(ArchiveError::db("reading the outbox"))?;
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    /// Record a delivery; `None` when the row was not being sent by this
    /// node (taken back meanwhile).
    pub async fn delivered(
        &self,
        id: i64,
        status: u16,
        note: Option<&str>,
    ) -> Result<Option<DeliveryState>, ArchiveError> {
        let r = sqlx::query(&format!(
            "UPDATE outbox SET state = {}, attempts = attempts + 1, last_status = $1, last_error = $2, delivered_at = {NOW}, updated_at = {NOW}
             WHERE id = $3 AND node = $4 AND {}",
            DeliveryState::Delivered.sql(),
            DeliveryState::moving(&[DeliveryState::Sending], DeliveryState::Delivered)
        ))
        .bind(status as i64)
        .bind(note)
        .bind(id)
        .bind(&*self.lease.node)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("recording a delivery"))?;
        Ok((r.rows_affected() == 1).then_some(DeliveryState::Delivered))
    }

    /// Record a failed attempt; returns the row's new state (`pending` or
    /// `dead`), `None` when the row was not being sent.
    pub async fn failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        permanent: bool,
        policy: &RetryPolicy,
    ) -> Result<Option<DeliveryState>, ArchiveError> {
        let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(ArchiveError::db("recording a failed delivery"))?;
        let attempts = attempts + 1;
        let state = if permanent || attempts >= policy.max_attempts as i64 {
            DeliveryState::Dead
        } else {
            DeliveryState::Pending
        };
        let delay = policy.delay(id, attempts as u32).as_secs_f64();
        let r = sqlx::query(&format!(
            "UPDATE outbox SET state = $1, attempts = $2, last_status = $3, last_error = $4,
               next_attempt_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $5), updated_at = {NOW} WHERE id = $6 AND node = $7 AND {}",
            DeliveryState::moving(&[DeliveryState::Sending], state)
        ))
        .bind(state.as_str())
        .bind(attempts)
        .bind(status.map(|s| s as i64))
        .bind(error)
        .bind(format!("+{delay:.3} seconds"))
        .bind(id)
        .bind(&*self.lease.node)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("recording a failed delivery"))?;
        Ok((r.rows_affected() == 1).then_some(state))
    }

    /// Every row, newest first.
    pub async fn list(&self) -> Result<Vec<OutboxEntry>, ArchiveError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC"))
            .fetch_all(&self.pool)
            .await
            .map_err(ArchiveError::db("listing the outbox"))?;
        rows.iter()
            .map(|r| entry(r, &self.dir))
            .collect::<Result<_, _>>()
            .map_err(ArchiveError::db("reading the outbox"))
    }

    /// Make a row due now with a fresh attempt count (dead or pending);
    /// false when there is no such row or it was delivered. A job that had
    /// given up on this delivery is sending again, in the same transaction.
    pub async fn retry(&self, id: i64) -> Result<bool, ArchiveError> {
        const ACTION: &str = "retrying a result";
        let mut tx = self.pool.begin().await.map_err(ArchiveError::db(ACTION))?;
        let r = sqlx::query(&format!(
            "UPDATE outbox SET state = {}, attempts = 0, next_attempt_at = {NOW}, updated_at = {NOW}
             WHERE id = $1 AND {}",
            DeliveryState::Pending.sql(),
            DeliveryState::moving(&DeliveryState::RETRYABLE, DeliveryState::Pending)
        ))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        sqlx::query(&format!(
            "UPDATE jobs SET state = {}, reason = NULL, updated_at = {NOW}
             WHERE {} AND id = (SELECT job_id FROM outbox WHERE id = $1)",
            JobState::Sending.sql(),
            JobState::moving(&[JobState::Failed], JobState::Sending)
        ))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        tx.commit().await.map_err(ArchiveError::db(ACTION))?;
        Ok(r.rows_affected() == 1)
    }

    /// Rows not yet delivered (pending, sending) and dead ones.
    pub async fn backlog(&self) -> Result<(i64, i64), ArchiveError> {
        let row = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(CASE WHEN state IN {} THEN 1 ELSE 0 END), 0) AS BIGINT) AS waiting,
                    CAST(COALESCE(SUM(CASE WHEN state = {} THEN 1 ELSE 0 END), 0) AS BIGINT) AS dead FROM outbox",
            sql_list(&DeliveryState::WAITING),
            DeliveryState::Dead.sql()
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(ArchiveError::db("counting the outbox"))?;
        Ok((
            row.try_get("waiting")
                .map_err(ArchiveError::db("counting the outbox"))?,
            row.try_get("dead")
                .map_err(ArchiveError::db("counting the outbox"))?,
        ))
    }
}
