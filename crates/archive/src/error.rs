use std::io;

/// Why an instance could not be archived, or the archive not opened.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Disk full, unwritable directory, I/O error: the sender should retry
    /// later (DIMSE 0xA700).
    #[error("cannot {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// The index is unavailable (DIMSE 0xA700).
    #[error("database error while {action}: {source}")]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The index could not commit (DIMSE 0xA700).
    #[error("index unavailable: {0}")]
    IndexUnavailable(String),
    /// The index could not commit for want of disk space (DIMSE 0xA700,
    /// unless settled studies can make room).
    #[error("index unavailable, its disk is full: {0}")]
    IndexFull(String),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer triaged (DIMSE 0xA700 until
    /// this node is upgraded).
    #[error("the database's schema (migration {found}) is newer than this triaged knows (up to {known}): upgrade this node")]
    SchemaTooNew { found: i64, known: i64 },
    /// `[node] name` cannot name a node (it becomes a file name).
    #[error("node name {0:?}: use letters, digits, '.', '-' and '_' (at most 64, not starting with '.')")]
    BadNodeName(String),
    /// `[database] url` cannot be used.
    #[error("database url: {0}")]
    BadDatabaseUrl(String),
    /// The data set could not be parsed (DIMSE 0xC000).
    #[error("storage.flush = \"journal\" needs the SQLite index for now (a PostgreSQL cluster would need a survivor to replay a dead node's journal): use \"each\" or \"group\"")]
    JournalNeedsSqlite,
    #[error("data set cannot be parsed: {0}")]
    Unparsable(String),
    /// An attribute needed to file the instance is missing or unusable.
    #[error("{attribute} is missing or invalid")]
    BadAttribute { attribute: &'static str },
    /// The data set's SOP Instance UID is not the one announced.
    #[error("data set SOP Instance UID differs from the C-STORE command's")]
    InstanceMismatch,
    /// The job is no longer this worker's (another worker or node took it
    /// over): its results are not recorded.
    #[error("job {0} is no longer held by this worker")]
    JobNotHeld(i64),
    /// The data set's SOP Class UID is not the one announced.
    #[error("data set SOP Class UID differs from the C-STORE command's")]
    ClassMismatch,
}

impl ArchiveError {
    pub(crate) fn io(action: &'static str, source: io::Error) -> Self {
        ArchiveError::Io { action, source }
    }

    pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| ArchiveError::Database { action, source }
    }

    /// Whether the disk (or the user's quota, or the database's disk) is
    /// full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ArchiveError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                )
            }
            ArchiveError::Database { source, .. } => database_full(source),
            ArchiveError::IndexFull(_) => true,
            _ => false,
        }
    }

    /// Whether retrying later could succeed (resources), as opposed to a
    /// data set that will fail again however often it is sent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ArchiveError::Io { .. }
                | ArchiveError::Database { .. }
                | ArchiveError::IndexFull(_)
                | ArchiveError::Migrate(_)
                | ArchiveError::SchemaTooNew { .. }
        )
    }
}

/// SQLite's SQLITE_FULL (13) or PostgreSQL's disk_full (53100).
pub(crate) fn database_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("13") | Some("53100")))
}
