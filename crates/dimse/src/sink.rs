//! Where received instances go.
//!
//! The C-STORE SCP streams each data set, one P-DATA fragment at a time, into
//! an [`InstanceWriter`] obtained from the [`StorageSink`]; the DIMSE
//! response is sent only after [`InstanceWriter::commit`] returns. That is
//! the hook for durability: a sink that answers `Ok` promises the instance
//! is safe. Memory per association is thus bounded by what the writer
//! buffers, never by the size of a study.

use std::future::Future;
use std::net::SocketAddr;

use crate::status::Status;

/// What is known about an instance when its data set starts to arrive.
#[derive(Debug, Clone)]
pub struct StoreRequest {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    /// The transfer syntax the data set is encoded in (the presentation
    /// context's): stored as received.
    pub transfer_syntax_uid: String,
    pub calling_ae_title: String,
    pub called_ae_title: String,
    /// The configured source the association was accepted for.
    pub source: String,
    pub peer: SocketAddr,
}

/// The result of a successful store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    /// Success, or a warning status (the instance was stored).
    pub status: Status,
    /// Whether the SOP Instance UID was already stored (a resend).
    pub duplicate: bool,
}

/// A refused store: the status to answer and a short reason for the peer's
/// Error Comment and our log. The reason must carry no patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct StoreFailure {
    pub status: Status,
    pub reason: String,
}

impl StoreFailure {
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        StoreFailure {
            status,
            reason: reason.into(),
        }
    }
}

/// Receives one instance's data set bytes.
pub trait InstanceWriter: Send {
    /// Append the next fragment of the encoded data set.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), StoreFailure>> + Send;
    /// The whole data set has arrived: make it durable and index it.
    fn commit(self) -> impl Future<Output = Result<StoreOutcome, StoreFailure>> + Send;
    /// The data set will not be completed (association aborted, earlier
    /// failure): remove whatever was written.
    fn abort(self) -> impl Future<Output = ()> + Send;
}

/// Creates a writer per incoming instance.
pub trait StorageSink: Send + Sync + 'static {
    type Writer: InstanceWriter + 'static;

    fn begin(
        &self,
        request: &StoreRequest,
    ) -> impl Future<Output = Result<Self::Writer, StoreFailure>> + Send;
}
