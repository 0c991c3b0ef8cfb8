//! What can stop the daemon from starting, or a command that shares its
//! runtime; each message says what to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the archive in {}", dir.display())]
    Archive {
        dir: PathBuf,
        #[source]
        source: archive::ArchiveError,
    },
    #[error(transparent)]
    Database(#[from] archive::ArchiveError),
    /// `[database]` cannot be used as configured (its password file).
    #[error("{0}")]
    DatabaseConfig(String),
    /// A socket the configuration names cannot be bound.
    #[error("cannot listen on {addr} ({key})")]
    Listen {
        key: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("dicom.tls")]
    Tls(#[source] dimse::TlsError),
    #[error("models.dir: {} is not a folder", .0.display())]
    NoModelsFolder(PathBuf),
    #[error(transparent)]
    Manifest(#[from] infer::ManifestError),
    /// The models folder holds versions that cannot serve together.
    #[error("models: {}", .0.join("; "))]
    Lifecycle(Vec<String>),
    /// A file the daemon reads or writes for itself.
    #[error("{}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A DICOM file that cannot be read or lacks its SOP identity.
    #[error("{}: {detail}", path.display())]
    Unreadable { path: PathBuf, detail: String },
    /// An object a de-identifying destination cannot be sent (burned-in
    /// annotation), or its key cannot be read.
    #[error("destination '{destination}' de-identifies: {detail}")]
    Deidentify { destination: String, detail: String },
    /// A task of the running daemon panicked or ended on its own: the
    /// daemon stopped (its log says why).
    #[error("the daemon's {0} task failed; stopped (see the log)")]
    TaskFailed(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
