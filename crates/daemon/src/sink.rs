//! The bridge between the DICOM listener and the archive: maps archive
//! outcomes to DIMSE statuses.

use std::sync::Arc;

use archive::{Archive, ArchiveError, Incoming, PendingInstance};
use dimse::{InstanceWriter, Status, StorageSink, StoreFailure, StoreOutcome, StoreRequest};

use crate::stats::Ingest;

pub struct ArchiveSink {
    pub archive: Archive,
    pub stats: Arc<Ingest>,
    /// Told after every stored instance (retention checks the watermark).
    pub stored: Arc<tokio::sync::Notify>,
}

pub struct ArchiveWriter {
    pending: PendingInstance,
    calling_ae: String,
    bytes: u64,
    stats: Arc<Ingest>,
    stored: Arc<tokio::sync::Notify>,
}

fn failure(e: ArchiveError) -> StoreFailure {
    let status = match &e {
        ArchiveError::Io { .. }
        | ArchiveError::Database { .. }
        | ArchiveError::IndexUnavailable(_)
        | ArchiveError::Migrate(_) => {
            tracing::error!(error = %e, "archive cannot store");
            Status::OUT_OF_RESOURCES
        }
        ArchiveError::Unparsable(_) => Status::CANNOT_UNDERSTAND,
        ArchiveError::BadAttribute { .. } => Status::MISSING_ATTRIBUTE,
        ArchiveError::InstanceMismatch => Status::UID_MISMATCH,
        ArchiveError::ClassMismatch => Status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
    };
    StoreFailure::new(status, e.to_string())
}

impl StorageSink for ArchiveSink {
    type Writer = ArchiveWriter;

    async fn begin(&self, r: &StoreRequest) -> Result<ArchiveWriter, StoreFailure> {
        let pending = self.archive.begin(Incoming {
            sop_class_uid: r.sop_class_uid.clone(),
            sop_instance_uid: r.sop_instance_uid.clone(),
            transfer_syntax_uid: r.transfer_syntax_uid.clone(),
            calling_ae_title: r.calling_ae_title.clone(),
            called_ae_title: r.called_ae_title.clone(),
            source: r.source.clone(),
            peer_address: r.peer.ip().to_string(),
        });
        Ok(ArchiveWriter {
            pending,
            calling_ae: r.calling_ae_title.clone(),
            bytes: 0,
            stats: self.stats.clone(),
            stored: self.stored.clone(),
        })
    }
}

impl InstanceWriter for ArchiveWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreFailure> {
        self.bytes += chunk.len() as u64;
        let r = self.pending.write(chunk).await.map_err(failure);
        if r.is_err() {
            self.stats.failed.inc();
        }
        r
    }

    async fn commit(self) -> Result<StoreOutcome, StoreFailure> {
        let stats = self.stats.clone();
        let stored = self.pending.commit().await.map_err(|e| {
            stats.failed.inc();
            failure(e)
        })?;
        stats.stored(&self.calling_ae, self.bytes);
        self.stored.notify_one();
        if stored.duplicate {
            tracing::info!(sop_instance_uid = %stored.attributes.sop_instance_uid, "resent instance replaced");
        }
        Ok(StoreOutcome {
            status: Status::SUCCESS,
            duplicate: stored.duplicate,
        })
    }

    async fn abort(self) {
        self.pending.abort().await
    }
}
