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
        | ArchiveError::IndexFull(_)
        | ArchiveError::Migrate(_)
        | ArchiveError::SchemaTooNew { .. }
        | ArchiveError::BadDatabaseUrl(_)
        | ArchiveError::BadNodeName(_)
        | ArchiveError::JournalNeedsSqlite
        | ArchiveError::JobNotHeld(_) => {
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

/// STOW-RS into the archive: the same checks, durability and counters as
/// C-STORE. An instance arrives as a Part 10 file; its file meta group
/// says its identity and transfer syntax, as a C-STORE command would.
pub struct StowStore {
    pub archive: Archive,
    pub stats: Arc<Ingest>,
    pub stored: Arc<tokio::sync::Notify>,
    /// Recorded as the called AE title (routing rules see the main one).
    pub ae_title: String,
}

impl StowStore {
    async fn store_one(
        &self,
        part10: &[u8],
        study: Option<&str>,
        sender: &str,
        peer: std::net::IpAddr,
    ) -> Result<web::dicomweb::StoredInstance, web::dicomweb::StoreRefusal> {
        let refuse =
            |class: Option<&str>, instance: Option<&str>, status: Status, reason: String| {
                web::dicomweb::StoreRefusal {
                    sop_class_uid: class.map(str::to_string),
                    sop_instance_uid: instance.map(str::to_string),
                    status: status.0,
                    reason,
                }
            };
        if part10.len() < 132 || &part10[128..132] != b"DICM" {
            return Err(refuse(
                None,
                None,
                Status::CANNOT_UNDERSTAND,
                "not a DICOM Part 10 file (no DICM after the 128-byte preamble)".into(),
            ));
        }
        let mut rest = &part10[128..];
        let meta = dicom_object::meta::FileMetaTable::from_reader(&mut rest).map_err(|e| {
            refuse(
                None,
                None,
                Status::CANNOT_UNDERSTAND,
                format!("the file meta group does not parse: {e}"),
            )
        })?;
        let class = meta.media_storage_sop_class_uid().to_string();
        let instance = meta.media_storage_sop_instance_uid().to_string();
        let incoming = Incoming {
            sop_class_uid: class.clone(),
            sop_instance_uid: instance.clone(),
            transfer_syntax_uid: meta.transfer_syntax().to_string(),
            calling_ae_title: sender.to_string(),
            called_ae_title: self.ae_title.clone(),
            source: format!("dicomweb:{sender}"),
            peer_address: peer.to_string(),
        };
        let failed = |e: ArchiveError| {
            self.stats.failed.inc();
            let f = failure(e);
            refuse(Some(&class), Some(&instance), f.status, f.reason)
        };
        // The archive checks every instance as it commits it; only a request
        // for one study needs the data set read before (the other study's
        // instance must not be stored at all).
        if let Some(study) = study {
            let attributes = archive::check_received(&incoming, rest).map_err(failed)?;
            if attributes.study_instance_uid != study {
                self.stats.failed.inc();
                return Err(refuse(
                    Some(&class),
                    Some(&instance),
                    // PS3.18 10.5.3.2: an instance of another study.
                    Status(0xA900),
                    format!(
                        "its Study Instance UID is {}, not {study} (the request's study)",
                        attributes.study_instance_uid
                    ),
                ));
            }
        }
        let mut pending = self.archive.begin(incoming);
        pending.write(rest).await.map_err(failed)?;
        let stored = pending.commit().await.map_err(failed)?;
        self.stats.stored(sender, rest.len() as u64);
        self.stored.notify_one();
        Ok(web::dicomweb::StoredInstance {
            sop_class_uid: class,
            sop_instance_uid: instance,
            study_instance_uid: stored.attributes.study_instance_uid,
            series_instance_uid: stored.attributes.series_instance_uid,
        })
    }
}

impl web::dicomweb::InstanceStore for StowStore {
    fn store<'a>(
        &'a self,
        part10: &'a [u8],
        study: Option<&'a str>,
        sender: &'a str,
        peer: std::net::IpAddr,
    ) -> web::BoxFuture<'a, Result<web::dicomweb::StoredInstance, web::dicomweb::StoreRefusal>>
    {
        Box::pin(self.store_one(part10, study, sender, peer))
    }
}
