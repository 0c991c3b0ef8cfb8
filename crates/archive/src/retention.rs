//! Retention: which received instances may be deleted, and deleting them.
//!
//! A study is **settled** when it is analysed up to its latest instance,
//! its latest job is `done` or `not_applicable`, no job of it is waiting or
//! running, and every outbox row it has is delivered. Only a settled study
//! that is not held may lose its instances: after `delete_after` (age), or
//! oldest settled first while the storage filesystem is above its high
//! watermark, down to the low one (watermark), or when a write found the
//! disk full (disk full). Its instance rows go with the files; the study
//! and series rows, findings, reviews and report copies stay until
//! `keep_results`, after which the study is forgotten altogether.
//!
//! A purge takes the study's gate (see [`Gates`]) so that an instance of
//! the same study arriving at that moment is moved into place only after
//! the purge (and then starts the study again), never deleted by it; it
//! re-checks that the study is settled inside the transaction that deletes
//! the rows, so a job or delivery started meanwhile keeps it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::db::Pool;
use tokio::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::db::NOW;
use crate::outbox::kept_path;
use crate::states::{sql_list, DeliveryState, JobState};
use crate::ArchiveError;

/// When instances and results go. Durations of `None` mean never.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionPolicy {
    /// Delete a settled study's instances this long after it settled.
    pub delete_after: Option<Duration>,
    /// Above this fraction of the filesystem in use, purge settled studies
    /// oldest first ...
    pub high_watermark: f64,
    /// ... until at most this fraction is in use.
    pub low_watermark: f64,
    /// Forget a purged study (findings, reviews, report copies, its rows)
    /// this long after it settled.
    pub keep_results: Option<Duration>,
}

/// Why a study's instances were purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeReason {
    /// Older than `delete_after`.
    Age,
    /// The storage was above its high watermark.
    Watermark,
    /// A write found the disk full.
    DiskFull,
}

impl PurgeReason {
    pub const ALL: [PurgeReason; 3] = [
        PurgeReason::Age,
        PurgeReason::Watermark,
        PurgeReason::DiskFull,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PurgeReason::Age => "age",
            PurgeReason::Watermark => "watermark",
            PurgeReason::DiskFull => "disk_full",
        }
    }
}

/// A settled study that still has instances.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettledStudy {
    pub study_instance_uid: String,
    /// When it was analysed and every report delivered (UTC, ISO 8601).
    pub settled_at: String,
    pub instances: i64,
    pub bytes: i64,
}

/// A study whose instances went (or, in a dry run, would go).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Purged {
    #[serde(flatten)]
    pub study: SettledStudy,
    pub reason: PurgeReason,
}

/// What one retention run did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetentionRun {
    pub dry_run: bool,
    pub purged: Vec<Purged>,
    /// Purged studies whose results (findings, reviews, report copies and
    /// rows) were forgotten after `keep_results`.
    pub forgotten: Vec<String>,
    /// Fraction of the storage filesystem in use before and after.
    pub used_before: f64,
    pub used_after: f64,
}

impl RetentionRun {
    pub fn bytes(&self) -> i64 {
        self.purged.iter().map(|p| p.study.bytes).sum()
    }

    pub fn instances(&self) -> i64 {
        self.purged.iter().map(|p| p.study.instances).sum()
    }
}

/// How full the filesystem holding `dir` is (as `df` counts it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Bytes in use.
    pub used: u64,
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
}

impl Usage {
    pub fn of(dir: &Path) -> std::io::Result<Usage> {
        let s = rustix::fs::statvfs(dir)?;
        let block = s.f_frsize.max(1);
        Ok(Usage {
            used: s.f_blocks.saturating_sub(s.f_bfree) * block,
            available: s.f_bavail * block,
        })
    }

    /// The fraction in use, 0..=1.
    pub fn fraction(&self) -> f64 {
        let total = self.used + self.available;
        if total == 0 {
            return 0.0;
        }
        self.used as f64 / total as f64
    }

    /// Bytes to delete to reach `fraction` in use (0 if already there).
    pub fn excess_over(&self, fraction: f64) -> u64 {
        let total = (self.used + self.available) as f64;
        (self.used as f64 - fraction * total).max(0.0) as u64
    }
}

/// One lock per shard of studies: a writer holds its study's shard shared
/// from moving an instance into place until it is indexed; a purge holds
/// it exclusively. Instances of other studies in other shards never wait.
/// Also one retention run at a time (the periodic task and a full disk
/// may meet).
pub(crate) struct Gates {
    shards: Vec<Arc<RwLock<()>>>,
    running: Mutex<()>,
    totals: Totals,
}

/// What this process purged since it started, by reason.
#[derive(Default)]
struct Totals {
    studies: [AtomicU64; 3],
    instances: [AtomicU64; 3],
    bytes: [AtomicU64; 3],
    forgotten: AtomicU64,
}

/// Studies, instances and bytes purged for one reason since start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeTotals {
    pub reason: PurgeReason,
    pub studies: u64,
    pub instances: u64,
    pub bytes: u64,
}

const SHARDS: usize = 64;

impl Gates {
    pub fn new() -> Gates {
        Gates {
            shards: (0..SHARDS).map(|_| Arc::new(RwLock::new(()))).collect(),
            running: Mutex::new(()),
            totals: Totals::default(),
        }
    }

    fn shard(&self, study: &str) -> &Arc<RwLock<()>> {
        // FNV-1a: stable and cheap; any spread will do.
        let h = study.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
    }

    pub async fn enter(&self, study: &str) -> RwLockReadGuard<'_, ()> {
        self.shard(study).read().await
    }

    /// [`Gates::enter`], held by a guard that may move between tasks (the
    /// journal's materialiser holds it from its files to its rows).
    pub async fn enter_owned(&self, study: &str) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.shard(study).clone().read_owned().await
    }

    /// The study's shard alone, if no writer is in it now. A purge never
    /// waits for one: it may hold the retention run (`running`) that a
    /// writer in that shard, whose disk is full, is waiting for.
    fn try_exclusive(&self, study: &str) -> Option<RwLockWriteGuard<'_, ()>> {
        self.shard(study).try_write().ok()
    }
}

/// The conditions of a settled study with instances, after `FROM studies st`.
static SETTLED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
    LEFT JOIN jobs j ON j.id = (SELECT MAX(id) FROM jobs WHERE study_instance_uid = st.study_instance_uid)
    WHERE st.analysed_at IS NOT NULL AND st.analysed_at >= st.last_received_at
      AND (j.id IS NULL OR j.state IN {})
      AND NOT EXISTS (SELECT 1 FROM jobs a WHERE a.study_instance_uid = st.study_instance_uid
                      AND a.state IN {})
      AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.study_instance_uid = st.study_instance_uid
                      AND o.state <> {})",
        sql_list(&JobState::SETTLED),
        sql_list(&JobState::OPEN),
        DeliveryState::Delivered.sql()
    )
});

const SETTLED_COLUMNS: &str = "st.study_instance_uid,
    COALESCE(j.updated_at, st.last_received_at) AS settled_at,
    (SELECT COUNT(*) FROM instances i WHERE i.study_instance_uid = st.study_instance_uid) AS instances,
    (SELECT CAST(COALESCE(SUM(file_size), 0) AS BIGINT) FROM instances i WHERE i.study_instance_uid = st.study_instance_uid) AS bytes";

/// Retention over an archive: planning, purging, holds.
#[derive(Clone)]
pub struct Retention {
    /// The archive's writer (purges, holds).
    pool: Pool,
    /// Readers, for the scans that find candidates (which must not keep
    /// the writer from indexing instances meanwhile).
    read: Pool,
    dir: PathBuf,
    gates: Arc<Gates>,
    /// Whether this process holds the storage lock (only then may it
    /// delete: the daemon's writers take the gates of this process).
    exclusive: bool,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("dir", &self.dir)
            .field("exclusive", &self.exclusive)
            .finish_non_exhaustive()
    }
}

impl Retention {
    pub(crate) fn new(
        pool: Pool,
        read: Pool,
        dir: PathBuf,
        gates: Arc<Gates>,
        exclusive: bool,
    ) -> Retention {
        Retention {
            pool,
            read,
            dir,
            gates,
            exclusive,
        }
    }

    /// What this process purged since it started, by reason, and how many
    /// studies it forgot.
    pub fn totals(&self) -> (Vec<PurgeTotals>, u64) {
        let t = &self.gates.totals;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let by_reason = PurgeReason::ALL
            .iter()
            .map(|&reason| {
                let i = reason.index();
                PurgeTotals {
                    reason,
                    studies: get(&t.studies[i]),
                    instances: get(&t.instances[i]),
                    bytes: get(&t.bytes[i]),
                }
            })
            .collect();
        (by_reason, get(&t.forgotten))
    }

    /// How full the storage filesystem is.
    pub fn usage(&self) -> Result<Usage, ArchiveError> {
        Usage::of(&self.dir).map_err(|e| ArchiveError::io("measure the storage filesystem", e))
    }

    /// Settled studies with instances, oldest settled first; held ones are
    /// left out.
    pub async fn settled(&self) -> Result<Vec<SettledStudy>, ArchiveError> {
        let rows = sqlx::query(&format!(
            "SELECT {SETTLED_COLUMNS} FROM studies st {settled}
               AND st.held_at IS NULL
               AND EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = st.study_instance_uid)
             ORDER BY settled_at, st.study_instance_uid",
            settled = *SETTLED
        ))
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db("finding settled studies"))?;
        rows.iter()
            .map(settled_of)
            .collect::<Result<_, _>>()
            .map_err(ArchiveError::db("reading settled studies"))
    }

    /// The time `age` ago, as timestamps are stored.
    async fn cutoff(&self, age: Duration) -> Result<String, ArchiveError> {
        sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $1)")
            .bind(format!("-{:.3} seconds", age.as_secs_f64()))
            .fetch_one(&self.read)
            .await
            .map_err(ArchiveError::db("reading the clock"))
    }

    /// Apply the policy: purge by age, then by watermark, then forget old
    /// results. With `dry_run`, nothing changes and the answer says what
    /// would go (the watermark part estimated from the studies' sizes).
    pub async fn run(
        &self,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<RetentionRun, ArchiveError> {
        if !dry_run && !self.exclusive {
            return Err(ArchiveError::io(
                "purge",
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "only the process holding the storage folder may purge it",
                ),
            ));
        }
        let _one = self.gates.running.lock().await;
        let before = self.usage()?;
        let mut run = RetentionRun {
            dry_run,
            used_before: before.fraction(),
            ..RetentionRun::default()
        };
        let mut settled = self.settled().await?;
        if let Some(age) = policy.delete_after {
            let cutoff = self.cutoff(age).await?;
            let (old, young): (Vec<_>, Vec<_>) =
                settled.into_iter().partition(|s| s.settled_at <= cutoff);
            settled = young;
            for s in old {
                self.purge_one(s, PurgeReason::Age, dry_run, &mut run)
                    .await?;
            }
        }
        if dry_run {
            let freed = run.bytes().max(0) as u64;
            let now = Usage {
                used: before.used.saturating_sub(freed),
                available: before.available + freed,
            };
            if now.fraction() > policy.high_watermark {
                let mut excess = now.excess_over(policy.low_watermark) as i64;
                for s in settled {
                    if excess <= 0 {
                        break;
                    }
                    excess -= s.bytes;
                    run.purged.push(Purged {
                        study: s,
                        reason: PurgeReason::Watermark,
                    });
                }
            }
        } else if self.usage()?.fraction() > policy.high_watermark {
            self.down_to(
                policy.low_watermark,
                settled,
                PurgeReason::Watermark,
                &mut run,
            )
            .await?;
        }
        if let Some(keep) = policy.keep_results {
            let cutoff = self.cutoff(keep).await?;
            run.forgotten = self.forget_before(&cutoff, dry_run).await?;
        }
        run.used_after = match dry_run {
            true => {
                let freed = run.bytes().max(0) as u64;
                Usage {
                    used: before.used.saturating_sub(freed),
                    available: before.available + freed,
                }
                .fraction()
            }
            false => self.usage()?.fraction(),
        };
        Ok(run)
    }

    /// A write found the disk full: purge settled studies, oldest first,
    /// down to the low watermark. True when the write may try again: room
    /// was made, by this call or by another that held the purge meanwhile.
    pub async fn make_room(&self, low_watermark: f64) -> Result<bool, ArchiveError> {
        self.make_room_sparing(low_watermark, None).await
    }

    /// `make_room`, never purging `spared` (the study of a writer that
    /// holds its gate). Studies whose shard a writer holds (this one
    /// included) are skipped by the purge rather than waited for.
    pub(crate) async fn make_room_sparing(
        &self,
        low_watermark: f64,
        spared: Option<&str>,
    ) -> Result<bool, ArchiveError> {
        let full = self.usage()?.fraction();
        let _one = self.gates.running.lock().await;
        let mut run = RetentionRun::default();
        let mut settled = self.settled().await?;
        settled.retain(|s| Some(s.study_instance_uid.as_str()) != spared);
        self.down_to(low_watermark, settled, PurgeReason::DiskFull, &mut run)
            .await?;
        let used = self.usage()?.fraction();
        if !run.purged.is_empty() {
            tracing::warn!(
                studies = run.purged.len(),
                instances = run.instances(),
                bytes = run.bytes(),
                used_percent = format!("{:.1}", used * 100.0),
                "storage full: purged settled studies to make room"
            );
        }
        Ok(!run.purged.is_empty() || used < full)
    }

    async fn down_to(
        &self,
        fraction: f64,
        settled: Vec<SettledStudy>,
        reason: PurgeReason,
        run: &mut RetentionRun,
    ) -> Result<(), ArchiveError> {
        for s in settled {
            if self.usage()?.fraction() <= fraction {
                break;
            }
            self.purge_one(s, reason, false, run).await?;
        }
        Ok(())
    }

    async fn purge_one(
        &self,
        s: SettledStudy,
        reason: PurgeReason,
        dry_run: bool,
        run: &mut RetentionRun,
    ) -> Result<(), ArchiveError> {
        if dry_run {
            run.purged.push(Purged { study: s, reason });
            return Ok(());
        }
        if let Some(study) = self.purge(&s.study_instance_uid, reason).await? {
            run.purged.push(Purged { study, reason });
        }
        Ok(())
    }

    /// Delete one study's instances if it is still settled and not held:
    /// files first, then (in the same transaction that re-checked it) its
    /// instance rows, with a `purges` row. A crash between the two leaves
    /// rows whose files are gone; the next run finishes the purge.
    async fn purge(
        &self,
        study: &str,
        reason: PurgeReason,
    ) -> Result<Option<SettledStudy>, ArchiveError> {
        const ACTION: &str = "purging a study";
        // A writer storing into this shard now: the study waits for the
        // next run (purging is never urgent enough to wait for a writer).
        let Some(_gate) = self.gates.try_exclusive(study) else {
            return Ok(None);
        };
        let mut tx = self
            .pool
            .begin_with(crate::db::begin_write(&self.pool))
            .await
            .map_err(ArchiveError::db(ACTION))?;
        // Another node indexing an instance of this study waits for the
        // purge to commit, or the purge sees the study unsettled (SQLite:
        // BEGIN IMMEDIATE already excludes every other writer).
        if crate::db::backend(&self.pool) == crate::db::Backend::Postgres {
            sqlx::query("SELECT 1 FROM studies WHERE study_instance_uid = $1 FOR UPDATE")
                .bind(study)
                .execute(&mut *tx)
                .await
                .map_err(ArchiveError::db(ACTION))?;
        }
        let row = sqlx::query(&format!(
            "SELECT {SETTLED_COLUMNS} FROM studies st {settled}
               AND st.held_at IS NULL AND st.study_instance_uid = $1",
            settled = *SETTLED
        ))
        .bind(study)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        let Some(settled) = row
            .as_ref()
            .map(settled_of)
            .transpose()
            .map_err(ArchiveError::db(ACTION))?
            .filter(|s| s.instances > 0)
        else {
            return Ok(None);
        };
        let mut files: Vec<String> =
            sqlx::query_scalar("SELECT file_path FROM instances WHERE study_instance_uid = $1")
                .bind(study)
                .fetch_all(&mut *tx)
                .await
                .map_err(ArchiveError::db(ACTION))?;
        // Every report is delivered (the PACS has it): its copies go too.
        files.extend(
            report_files(&mut tx, &self.dir, study)
                .await
                .map_err(ArchiveError::db(ACTION))?,
        );
        self.remove(files, "delete instance files").await?;
        sqlx::query("DELETE FROM instances WHERE study_instance_uid = $1")
            .bind(study)
            .execute(&mut *tx)
            .await
            .map_err(ArchiveError::db(ACTION))?;
        sqlx::query(&format!(
            "UPDATE studies SET purged_at = {NOW} WHERE study_instance_uid = $1"
        ))
        .bind(study)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        sqlx::query(&format!(
            "INSERT INTO purges (study_instance_uid, reason, instances, bytes, settled_at, purged_at)
             VALUES ($1, $2, $3, $4, $5, {NOW})"
        ))
        .bind(study)
        .bind(reason.as_str())
        .bind(settled.instances)
        .bind(settled.bytes)
        .bind(&settled.settled_at)
        .execute(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        tx.commit().await.map_err(ArchiveError::db(ACTION))?;
        let (t, i) = (&self.gates.totals, reason.index());
        t.studies[i].fetch_add(1, Ordering::Relaxed);
        t.instances[i].fetch_add(settled.instances.max(0) as u64, Ordering::Relaxed);
        t.bytes[i].fetch_add(settled.bytes.max(0) as u64, Ordering::Relaxed);
        Ok(Some(settled))
    }

    /// Forget purged, settled, unheld studies settled before `cutoff`:
    /// their report copies, findings, reviews, jobs, outbox, series and
    /// study rows (their `purges` rows stay as the record).
    async fn forget_before(
        &self,
        cutoff: &str,
        dry_run: bool,
    ) -> Result<Vec<String>, ArchiveError> {
        let uids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT st.study_instance_uid FROM studies st {settled}
               AND st.held_at IS NULL AND st.purged_at IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = st.study_instance_uid)
               AND COALESCE(j.updated_at, st.last_received_at) <= $1
             ORDER BY st.study_instance_uid",
            settled = *SETTLED
        ))
        .bind(cutoff)
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db("finding results to forget"))?;
        if dry_run {
            return Ok(uids);
        }
        let mut forgotten = Vec::new();
        for uid in uids {
            if self.forget(&uid, cutoff).await? {
                forgotten.push(uid);
            }
        }
        Ok(forgotten)
    }

    async fn forget(&self, study: &str, cutoff: &str) -> Result<bool, ArchiveError> {
        const ACTION: &str = "forgetting a study's results";
        let Some(_gate) = self.gates.try_exclusive(study) else {
            return Ok(false);
        };
        let mut tx = self
            .pool
            .begin_with(crate::db::begin_write(&self.pool))
            .await
            .map_err(ArchiveError::db(ACTION))?;
        let still: Option<String> = sqlx::query_scalar(&format!(
            "SELECT st.study_instance_uid FROM studies st {settled}
               AND st.held_at IS NULL AND st.study_instance_uid = $1
               AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = st.study_instance_uid)
               AND COALESCE(j.updated_at, st.last_received_at) <= $2",
            settled = *SETTLED
        ))
        .bind(study)
        .bind(cutoff)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        if still.is_none() {
            return Ok(false);
        }
        let files = report_files(&mut tx, &self.dir, study)
            .await
            .map_err(ArchiveError::db(ACTION))?;
        for sql in [
            "DELETE FROM skipped_images WHERE job_id IN (SELECT id FROM jobs WHERE study_instance_uid = $1)",
            "DELETE FROM findings WHERE study_instance_uid = $1 OR job_id IN (SELECT id FROM jobs WHERE study_instance_uid = $1)",
            "DELETE FROM reviews WHERE study_instance_uid = $1",
            "DELETE FROM outbox WHERE study_instance_uid = $1",
            "DELETE FROM jobs WHERE study_instance_uid = $1",
            "DELETE FROM series WHERE study_instance_uid = $1",
            "DELETE FROM studies WHERE study_instance_uid = $1",
        ] {
            sqlx::query(sql)
                .bind(study)
                .execute(&mut *tx)
                .await
                .map_err(ArchiveError::db(ACTION))?;
        }
        self.remove(files, "delete report copies").await?;
        tx.commit().await.map_err(ArchiveError::db(ACTION))?;
        self.gates.totals.forgotten.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// [`remove_files`] off the async threads.
    async fn remove(&self, files: Vec<String>, action: &'static str) -> Result<(), ArchiveError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || remove_files(&dir, &files))
            .await
            .map_err(|e| ArchiveError::io(action, std::io::Error::other(e)))?
            .map_err(|e| ArchiveError::io(action, e))
    }

    /// Keep a study's instances whatever the policy. False if there is no
    /// such study.
    pub async fn hold(&self, study: &str, by: &str, reason: &str) -> Result<bool, ArchiveError> {
        let r = sqlx::query(&format!(
            "UPDATE studies SET held_at = {NOW}, held_by = $1, hold_reason = $2 WHERE study_instance_uid = $3"
        ))
        .bind(by)
        .bind(reason)
        .bind(study)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("holding a study"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Let the policy apply to a held study again. False if there is no
    /// such study.
    pub async fn release(&self, study: &str) -> Result<bool, ArchiveError> {
        let r = sqlx::query(
            "UPDATE studies SET held_at = NULL, held_by = NULL, hold_reason = NULL WHERE study_instance_uid = $1",
        )
        .bind(study)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("releasing a study"))?;
        Ok(r.rows_affected() == 1)
    }
}

/// A study's report copies in the outbox folder: every outbox row's file,
/// each job's report objects and their result documents, each finding's
/// heatmap capture (paths relative to `dir` or absolute).
async fn report_files(
    tx: &mut sqlx::AnyConnection,
    dir: &Path,
    study: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut files: BTreeSet<String> =
        sqlx::query_scalar("SELECT file_path FROM outbox WHERE study_instance_uid = $1")
            .bind(study)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let reports: Vec<Option<String>> =
        sqlx::query_scalar("SELECT report_uids FROM jobs WHERE study_instance_uid = $1")
            .bind(study)
            .fetch_all(&mut *tx)
            .await?;
    let heatmaps: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT heatmap_uid FROM findings WHERE study_instance_uid = $1 AND heatmap_uid IS NOT NULL",
    )
    .bind(study)
    .fetch_all(&mut *tx)
    .await?;
    for uid in reports
        .iter()
        .flatten()
        .flat_map(|r| r.split(','))
        .chain(heatmaps.iter().map(String::as_str))
    {
        if let Some(dcm) = kept_path(dir, uid) {
            files.insert(
                dcm.with_extension(crate::RESULT_EXTENSION)
                    .display()
                    .to_string(),
            );
            files.insert(dcm.display().to_string());
        }
    }
    Ok(files.into_iter().collect())
}

fn settled_of(r: &sqlx::any::AnyRow) -> Result<SettledStudy, sqlx::Error> {
    Ok(SettledStudy {
        study_instance_uid: r.try_get("study_instance_uid")?,
        settled_at: r.try_get("settled_at")?,
        instances: r.try_get("instances")?,
        bytes: r.try_get("bytes")?,
    })
}

/// Remove files (paths relative to `dir`, or absolute inside it), and
/// then their directories where they became empty (series, then study).
/// A file already gone is no error.
fn remove_files(dir: &Path, files: &[String]) -> std::io::Result<()> {
    let mut parents = BTreeSet::new();
    for f in files {
        let path = dir.join(f);
        if !path.starts_with(dir) {
            // A file queued by hand from elsewhere is not ours to delete.
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(p) = path.parent() {
            parents.insert(p.to_path_buf());
        }
    }
    // Deepest first: a series directory before its study's.
    for p in parents.iter().rev() {
        let mut d = p.as_path();
        while d != dir && d.starts_with(dir) && !d.ends_with(crate::outbox::FOLDER) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            match d.parent() {
                Some(up) => d = up,
                None => break,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::InMemDicomObject;
    use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    async fn store(a: &crate::Archive, study: &str) {
        let sop = format!("{study}.1.1");
        let mut obj = InMemDicomObject::new_empty();
        for (tag, vr, v) in [
            (tags::SOP_CLASS_UID, VR::UI, CT),
            (tags::SOP_INSTANCE_UID, VR::UI, sop.as_str()),
            (tags::STUDY_INSTANCE_UID, VR::UI, study),
            (tags::SERIES_INSTANCE_UID, VR::UI, &format!("{study}.1")),
            (tags::MODALITY, VR::CS, "CT"),
        ] {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        }
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        let mut p = a.begin(crate::Incoming {
            sop_class_uid: CT.into(),
            sop_instance_uid: sop,
            transfer_syntax_uid: EXPLICIT_VR_LITTLE_ENDIAN.uid().into(),
            calling_ae_title: "TESTSCU".into(),
            called_ae_title: "TRIAGED".into(),
            source: "test".into(),
            peer_address: "127.0.0.1".into(),
        });
        p.write(&bytes).await.unwrap();
        p.commit().await.unwrap();
    }

    /// A purge passes over a settled study whose shard a writer is in (a
    /// writer that may itself be waiting for this retention run, its disk
    /// full) instead of waiting for it; the next run takes the study.
    #[tokio::test]
    async fn a_purge_passes_over_a_study_whose_shard_a_writer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let a = crate::Archive::open(crate::ArchiveOptions::new(dir.path()))
            .await
            .unwrap();
        store(&a, "2.25.71").await;
        let retention = a.retention();
        // Analysed, no job: settled.
        sqlx::query("UPDATE studies SET analysed_at = last_received_at")
            .execute(&retention.pool)
            .await
            .unwrap();
        // A writer of another study in the same shard.
        let gates = &a.inner.gates;
        let other = (0..)
            .map(|i| format!("2.25.9.{i}"))
            .find(|s| std::ptr::eq(gates.shard(s), gates.shard("2.25.71")))
            .unwrap();
        let writer = gates.enter(&other).await;
        let policy = RetentionPolicy {
            delete_after: Some(Duration::ZERO),
            high_watermark: 1.0,
            low_watermark: 1.0,
            keep_results: None,
        };
        // (A deadline only to turn a wait into a failure.)
        let deadline = Duration::from_secs(120);
        let run = tokio::time::timeout(deadline, retention.run(&policy, false))
            .await
            .expect("the purge waited for the writer")
            .unwrap();
        assert!(run.purged.is_empty());
        assert_eq!(a.instance_count().await.unwrap(), 1);
        drop(writer);
        let run = retention.run(&policy, false).await.unwrap();
        assert_eq!(run.purged.len(), 1);
        assert_eq!(run.purged[0].study.study_instance_uid, "2.25.71");
        assert_eq!(a.instance_count().await.unwrap(), 0);
        a.close().await;
    }
}
