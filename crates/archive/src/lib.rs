//! The durable archive of received DICOM instances.
//!
//! Every instance is written as a Part 10 file (file meta with the transfer
//! syntax it arrived in, data set bytes exactly as received) to a temporary
//! file, fsynced, renamed to `<dir>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm`,
//! its directory fsynced, and indexed — all before
//! [`PendingInstance::commit`] returns; or, with [`Flush::Journal`], its
//! record appended to this node's ingest journal and flushed before
//! `commit` returns, the file and row made from it just after (and at the
//! next start, after a crash). A caller that answers a peer only after
//! `commit` therefore never acknowledges an instance it could lose.
//!
//! The index, jobs, findings and outbox live in one database: SQLite
//! (`triaged.db` in the storage directory, WAL mode with `synchronous =
//! FULL`) by default, or PostgreSQL ([`DatabaseOptions`]) for several
//! nodes sharing one storage folder. The migrations in the workspace's
//! `migrations/sqlite` or `migrations/postgres` folder are applied when
//! the archive opens.

#![forbid(unsafe_code)]

mod attributes;
mod audit;
mod catalog;
mod db;
mod error;
mod export;
mod flush;
mod fsutil;
mod index;
mod jobs;
mod journal;
mod lengths;
mod models;
mod monitoring;
mod nodes;
mod outbox;
mod peers;
mod query;
mod retention;
mod states;
mod worklist;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use attributes::InstanceAttributes;
pub use audit::{
    Audit, AuditAction, AuditEvent, AuditFilter, AuditOutcome, AuditRole, NewAuditEvent,
};
pub use catalog::{
    Catalog, DateRange, InstanceQuery, InstanceRecord, SeriesRecord, StudyQuery, StudyRecord,
    MAX_MATCHES,
};
pub use db::{Backend, DatabaseOptions, DATABASE_FILE};
pub use error::ArchiveError;
pub use export::StudyFiles;
pub use fsutil::is_safe_uid;
pub use jobs::{
    instance_set, Assembly, FindingRow, Job, Jobs, ModelSkips, QuietPeriods, SkippedImage,
    StudyInstance,
};
pub use models::{
    effective as effective_state, LabelComparison, ModelState, ModelStateRow, ModelStates,
    StateChange, UnknownState,
};
pub use monitoring::{psi, DayRate, LabelMonitor, Monitoring, ReferenceSource};
pub use nodes::NodeRow;
pub use outbox::{Kept, NewObject, Outbox, OutboxEntry, RetryPolicy, RESULT_EXTENSION};
pub use peers::{PeerKind, PeerOverride, Peers};
pub use query::StudySummary;
pub use retention::{
    PurgeReason, PurgeTotals, Purged, Retention, RetentionPolicy, RetentionRun, SettledStudy, Usage,
};
pub use states::{DeliveryState, JobState, UnknownStateName};
pub use worklist::{
    DeliveryRow, Feedback, FindingView, InstanceRow, JobRow, ReviewRow, SkippedRow, StudyDetail,
    Worklist, WorklistEntry, WorklistFilter, WorklistPage,
};
pub use writer::{check_received, parse_received, Incoming, PendingInstance, Stored};

pub use attrs::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};

/// How the archive is set up.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Storage directory: instance files and `triaged.db`.
    pub dir: PathBuf,
    /// An instance up to this size is held in memory until commit and
    /// written with one call; a larger one is spilled to its temporary
    /// file as it arrives, so memory stays bounded.
    pub spill_threshold: usize,
    /// Implementation Class UID and Version Name written into file meta.
    pub implementation_class_uid: String,
    pub implementation_version_name: String,
    /// When a write finds the disk full, purge settled studies down to
    /// this fraction in use and try once more (see [`Retention`]); `None`:
    /// fail the write at once.
    pub make_room_to: Option<f64>,
    /// The index's database (default: SQLite in the storage folder).
    pub database: DatabaseOptions,
    /// This node's name (default: the host name): who holds a claimed job
    /// or delivery; on PostgreSQL also its own lock and incoming folder
    /// in the shared storage folder.
    pub node: String,
    /// A node silent this long has its claims taken back by the others.
    pub lease: std::time::Duration,
    /// How a received instance is made durable before Success.
    pub flush: Flush,
    /// With [`Flush::Journal`]: how long the materialiser waits for more
    /// instances after the first of a batch, unless a query waits for
    /// them (default 20 ms). Longer: fewer directory flushes and index
    /// commits competing with the journal's; later visibility to the
    /// pipeline.
    pub journal_linger: std::time::Duration,
}

/// How a received instance is made durable before its Success: its file,
/// and its directory entry, on stable storage either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flush {
    /// One `syncfs(2)` of the storage filesystem for every instance
    /// waiting at that moment (one flush for many under load; but also of
    /// every other writer's data on that filesystem: for a filesystem of
    /// its own).
    Group,
    /// An `fsync` of each instance's file, then of its series directory:
    /// a cost that depends on this instance alone.
    #[default]
    Each,
    /// One `fdatasync`'d append to this node's ingest journal for every
    /// instance waiting at that moment; the file and its index row are
    /// made (and flushed) after Success, and replayed at the next start
    /// after a crash (docs/ingest-journal.md). SQLite only, for now.
    /// Instances above the spill threshold are stored as with `Each`.
    Journal,
}

impl ArchiveOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArchiveOptions {
            dir: dir.into(),
            spill_threshold: 16 << 20,
            implementation_class_uid: IMPLEMENTATION_CLASS_UID.into(),
            implementation_version_name: IMPLEMENTATION_VERSION_NAME.into(),
            make_room_to: None,
            database: DatabaseOptions::default(),
            node: host_name(),
            lease: std::time::Duration::from_secs(30),
            flush: Flush::default(),
            journal_linger: std::time::Duration::from_millis(20),
        }
    }

    /// With the index in `database`.
    pub fn with_database(mut self, database: DatabaseOptions) -> Self {
        self.database = database;
        self
    }

    fn target(&self) -> Result<db::Target, ArchiveError> {
        db::Target::resolve(&self.database, &self.dir)
    }

    fn lease(&self) -> nodes::Lease {
        nodes::Lease {
            node: self.node.as_str().into(),
            duration: self.lease,
        }
    }
}

/// This machine's host name (`localhost` if it has none usable as a node
/// name).
pub fn host_name() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if is_safe_uid(&name) {
        name
    } else {
        "localhost".into()
    }
}

/// A handle to the archive; cheap to clone.
#[derive(Clone)]
pub struct Archive {
    inner: Arc<Inner>,
}

struct Inner {
    options: ArchiveOptions,
    tmp_dir: PathBuf,
    db: db::Db,
    index: index::IndexWriter,
    /// `Some` when instances are flushed in groups ([`Flush::Group`]).
    flusher: Option<flush::Flusher>,
    /// `Some` when instances go through the journal ([`Flush::Journal`]).
    journal: Option<journal::Journal>,
    /// Writers and purges of one study meet here (see `retention`).
    gates: Arc<retention::Gates>,
    /// Held until `close`: one process per storage folder (SQLite), or
    /// per node name (PostgreSQL).
    lock: std::sync::Mutex<Option<Vec<std::fs::File>>>,
    lease: nodes::Lease,
    heartbeat: tokio::task::JoinHandle<()>,
}

const TMP_DIR: &str = ".incoming";
/// Each node's journal segments, in `<dir>/.journal/<node>`.
const JOURNAL_DIR: &str = ".journal";
/// The size of a journal segment, at least (a larger spill threshold
/// makes them larger: an instance held in memory must fit in half).
const JOURNAL_SEGMENT: u64 = 64 << 20;

impl Archive {
    /// Open (creating if needed) the archive: directories, database,
    /// migrations. Temporary files left by a crash are removed: they were
    /// never acknowledged, so the sender still has them.
    ///
    /// On SQLite the storage folder is this process's alone. On
    /// PostgreSQL several nodes share it: each locks its own name
    /// (`.nodes/<node>.lock`) and receives into `.incoming/<node>`, so a
    /// node clears only its own partial files.
    pub async fn open(options: ArchiveOptions) -> Result<Archive, ArchiveError> {
        if !is_safe_uid(&options.node) {
            return Err(ArchiveError::BadNodeName(options.node.clone()));
        }
        let target = options.target()?;
        let shared = target.backend() == Backend::Postgres;
        if shared && options.flush == Flush::Journal {
            return Err(ArchiveError::JournalNeedsSqlite);
        }
        let dir = options.dir.clone();
        let tmp_dir = match shared {
            true => dir.join(TMP_DIR).join(&options.node),
            false => dir.join(TMP_DIR),
        };
        let tmp = tmp_dir.clone();
        let node = options.node.clone();
        let lock = tokio::task::spawn_blocking(move || {
            let lock = match shared {
                true => fsutil::lock_node(&dir, &node),
                false => fsutil::lock_storage(&dir).map(|f| vec![f]),
            }
            .map_err(|e| ArchiveError::io("lock the storage folder", e))?;
            fsutil::prepare_dirs(&dir, &tmp)?;
            Ok::<_, ArchiveError>(lock)
        })
        .await
        .map_err(|e| ArchiveError::io("prepare storage directory", std::io::Error::other(e)))??;
        let db = db::Db::open(&target).await?;
        let lease = options.lease();
        // A node that cannot beat now (a full disk under SQLite) still
        // starts: it beats again in a moment, and making room needs it up.
        if let Err(e) = nodes::beat(&db.write, &lease, true).await {
            tracing::warn!(node = %lease.node, error = %e, "first heartbeat failed");
        }
        let heartbeat = nodes::spawn_heartbeat(db.write.clone(), lease.clone());
        let index = index::IndexWriter::start(db.write.clone(), lease.node.clone());
        let flusher = match options.flush {
            Flush::Group => Some(
                flush::Flusher::start(&options.dir)
                    .map_err(|e| ArchiveError::io("open the storage folder", e))?,
            ),
            Flush::Each | Flush::Journal => None,
        };
        let gates = Arc::new(retention::Gates::new());
        let journal = match options.flush {
            Flush::Journal => {
                let cx = journal::Context {
                    root: options.dir.clone(),
                    tmp_dir: tmp_dir.clone(),
                    journal_dir: options.dir.join(JOURNAL_DIR).join(&options.node),
                    write: db.write.clone(),
                    node: lease.node.clone(),
                    gates: gates.clone(),
                    make_room: options.make_room_to.map(|low| {
                        let retention = Retention::new(
                            db.write.clone(),
                            db.read.clone(),
                            options.dir.clone(),
                            gates.clone(),
                            true,
                        );
                        (retention, low)
                    }),
                    removed_below: Default::default(),
                };
                let size = JOURNAL_SEGMENT.max(4 * options.spill_threshold as u64);
                Some(journal::Journal::open(cx, size, options.journal_linger).await?)
            }
            Flush::Each | Flush::Group => None,
        };
        Ok(Archive {
            inner: Arc::new(Inner {
                options,
                tmp_dir,
                db,
                index,
                flusher,
                journal,
                gates,
                lock: std::sync::Mutex::new(Some(lock)),
                lease,
                heartbeat,
            }),
        })
    }

    /// Whether this node can write to its storage folder now (a file
    /// created and removed in its incoming folder).
    pub fn probe_storage(&self) -> std::io::Result<()> {
        let probe = self.inner.tmp_dir.join(".ready-probe");
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.lease.node
    }

    /// The nodes sharing this archive's database, most recently seen
    /// first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, ArchiveError> {
        nodes::list(&self.inner.db.read).await
    }

    /// Open an existing archive's database for reading only (CLI queries
    /// while the daemon runs). Fails if there is none.
    pub async fn open_read_only(options: &ArchiveOptions) -> Result<ArchiveReader, ArchiveError> {
        let pool = db::Db::open_read_only(&options.target()?).await?;
        Ok(ArchiveReader {
            pool,
            dir: options.dir.clone(),
        })
    }

    /// Which database holds the index.
    pub fn backend(&self) -> Backend {
        self.inner.db.backend
    }

    pub fn dir(&self) -> &Path {
        &self.inner.options.dir
    }

    /// Start receiving one instance.
    pub fn begin(&self, incoming: Incoming) -> PendingInstance {
        PendingInstance::new(self.clone(), incoming)
    }

    /// The outbox of results to deliver (sharing the archive's writer).
    pub fn outbox(&self) -> Outbox {
        let outbox = Outbox::new(
            self.inner.db.write.clone(),
            self.inner.options.dir.clone(),
            self.inner.lease.clone(),
        );
        match self.inner.options.make_room_to {
            Some(low) => outbox.making_room(self.retention(), low),
            None => outbox,
        }
    }

    /// Analysis jobs and findings (sharing the archive's writer).
    pub fn jobs(&self) -> Jobs {
        Jobs::new(
            self.inner.db.write.clone(),
            &self.inner.options.dir,
            self.inner.lease.clone(),
        )
    }

    /// Sources and destinations set at run time.
    pub fn peers(&self) -> Peers {
        Peers::new(self.inner.db.write.clone())
    }

    /// The state of each model version (active, shadow, disabled).
    pub fn models(&self) -> ModelStates {
        ModelStates::new(self.inner.db.write.clone())
    }

    /// Flag rates, agreement and drift of the models in use.
    pub fn monitoring(&self) -> Monitoring {
        Monitoring::new(self.inner.db.read.clone())
    }

    /// The audit trail (append-only).
    pub fn audit(&self) -> Audit {
        Audit::new(self.inner.db.write.clone(), self.inner.db.read.clone())
    }

    /// Retention: holds, purges by age and by watermark.
    pub fn retention(&self) -> Retention {
        Retention::new(
            self.inner.db.write.clone(),
            self.inner.db.read.clone(),
            self.inner.options.dir.clone(),
            self.inner.gates.clone(),
            true,
        )
    }

    /// Queries and files for DICOMweb (QIDO-RS, WADO-RS): each sees every
    /// instance acknowledged before it began.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(
            self.inner.db.read.clone(),
            &self.inner.options.dir,
            self.inner.journal.as_ref().map(|j| j.visibility()),
        )
    }

    /// Resolves once every instance acknowledged before the call is in
    /// the index (at once unless `storage.flush` is the journal).
    pub async fn caught_up(&self) {
        if let Some(journal) = &self.inner.journal {
            journal.visibility().caught_up().await;
        }
    }

    /// The radiologists' worklist and reviews.
    pub fn worklist(&self) -> Worklist {
        Worklist::new(
            self.inner.db.read.clone(),
            self.inner.db.write.clone(),
            &self.inner.options.dir,
        )
    }

    /// Studies, most recently received first (every instance acknowledged
    /// before the call counted).
    pub async fn studies(&self) -> Result<Vec<StudySummary>, ArchiveError> {
        self.caught_up().await;
        query::studies(&self.inner.db.read).await
    }

    /// The number of instances indexed (every one acknowledged before the
    /// call counted).
    pub async fn instance_count(&self) -> Result<i64, ArchiveError> {
        self.caught_up().await;
        query::instance_count(&self.inner.db.read).await
    }

    /// Commit what is queued, then close the database (checkpoints the WAL)
    /// and release the storage folder.
    pub async fn close(&self) {
        self.inner.heartbeat.abort();
        if let Some(f) = &self.inner.flusher {
            f.close().await;
        }
        if let Some(j) = &self.inner.journal {
            j.close().await;
        }
        self.inner.index.close().await;
        self.inner.db.close().await;
        self.inner
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

/// Read-only access to an archive's index.
pub struct ArchiveReader {
    pool: crate::db::Pool,
    dir: PathBuf,
}

impl ArchiveReader {
    /// The outbox, for admin commands while the daemon runs (a write
    /// connection of its own; SQLite serialises it with the daemon's).
    pub async fn outbox(options: &ArchiveOptions) -> Result<Outbox, ArchiveError> {
        let pool = db::Db::open_admin(&options.target()?).await?;
        Ok(Outbox::new(pool, options.dir.clone(), options.lease()))
    }

    /// Model states, for admin commands while the daemon runs (a write
    /// connection of its own).
    pub async fn models(options: &ArchiveOptions) -> Result<ModelStates, ArchiveError> {
        let pool = db::Db::open_admin(&options.target()?).await?;
        Ok(ModelStates::new(pool))
    }

    /// The audit trail, for admin commands while the daemon runs (a write
    /// connection of its own: the CLI's actions are recorded too).
    pub async fn audit(options: &ArchiveOptions) -> Result<Audit, ArchiveError> {
        let pool = db::Db::open_admin(&options.target()?).await?;
        Ok(Audit::new(pool.clone(), pool))
    }

    /// Retention, for admin commands while the daemon runs (a write
    /// connection of its own): holds and dry runs; only the daemon purges.
    pub async fn retention(options: &ArchiveOptions) -> Result<Retention, ArchiveError> {
        let pool = db::Db::open_admin(&options.target()?).await?;
        Ok(Retention::new(
            pool.clone(),
            pool,
            options.dir.clone(),
            Arc::new(retention::Gates::new()),
            false,
        ))
    }

    pub async fn studies(&self) -> Result<Vec<StudySummary>, ArchiveError> {
        query::studies(&self.pool).await
    }

    /// What an export of `study` copies; `None` if there is no such study.
    pub async fn study_files(&self, study: &str) -> Result<Option<StudyFiles>, ArchiveError> {
        export::study_files(&self.pool, &self.dir, study).await
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}
