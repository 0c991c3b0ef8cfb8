//! C-STORE SCP: one storage operation, from its command to its response.

use crate::command::{self, field, Command};
use crate::sink::{InstanceWriter, StorageSink, StoreFailure, StoreRequest};
use crate::status::Status;

/// A C-STORE whose data set is arriving.
///
/// Once a failure is known (bad command, sink refused, write failed) the
/// rest of the data set is still read and dropped, so the association stays
/// in step and the peer gets a proper failure status for this instance only.
pub(crate) struct StoreOp<W> {
    pub context_id: u8,
    pub message_id: u16,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    writer: Option<W>,
    failure: Option<StoreFailure>,
    pub bytes: u64,
}

impl<W: InstanceWriter> StoreOp<W> {
    /// Start a store for `cmd` on a context whose abstract syntax is
    /// `context_sop_class`.
    pub async fn begin<S: StorageSink<Writer = W>>(
        sink: &S,
        cmd: &Command,
        context_id: u8,
        context_sop_class: &str,
        mut request: StoreRequest,
    ) -> Self {
        let sop_class_uid = cmd.affected_sop_class_uid.clone().unwrap_or_default();
        let sop_instance_uid = cmd.affected_sop_instance_uid.clone().unwrap_or_default();
        let mut op = StoreOp {
            context_id,
            message_id: cmd.message_id,
            sop_class_uid: sop_class_uid.clone(),
            sop_instance_uid: sop_instance_uid.clone(),
            writer: None,
            failure: None,
            bytes: 0,
        };
        if sop_instance_uid.is_empty() {
            op.failure = Some(StoreFailure::new(
                Status::MISSING_ATTRIBUTE,
                "C-STORE-RQ lacks Affected SOP Instance UID",
            ));
        } else if sop_class_uid != context_sop_class {
            op.failure = Some(StoreFailure::new(
                Status::SOP_CLASS_NOT_SUPPORTED,
                "Affected SOP Class UID differs from the presentation context",
            ));
        } else {
            request.sop_class_uid = sop_class_uid;
            request.sop_instance_uid = sop_instance_uid;
            match sink.begin(&request).await {
                Ok(w) => op.writer = Some(w),
                Err(f) => op.failure = Some(f),
            }
        }
        op
    }

    pub async fn write(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if let Some(w) = self.writer.as_mut() {
            if let Err(f) = w.write(chunk).await {
                self.failure = Some(f);
                if let Some(w) = self.writer.take() {
                    w.abort().await;
                }
            }
        }
    }

    /// The data set is complete: commit it and build the C-STORE-RSP.
    pub async fn finish(mut self) -> (Vec<u8>, Result<Status, StoreFailure>) {
        let result = match (self.failure.take(), self.writer.take()) {
            (Some(f), _) => Err(f),
            (None, Some(w)) => w.commit().await.map(|o| o.status),
            (None, None) => Err(StoreFailure::new(Status::PROCESSING_FAILURE, "no writer")),
        };
        let (status, comment) = match &result {
            Ok(s) => (*s, None),
            Err(f) => (f.status, Some(f.reason.as_str())),
        };
        let rsp = command::response(
            field::C_STORE_RSP,
            self.message_id,
            Some(&self.sop_class_uid),
            Some(&self.sop_instance_uid),
            status,
            comment,
        );
        (rsp, result)
    }

    /// The association ended before the data set did.
    pub async fn abandon(mut self) {
        if let Some(w) = self.writer.take() {
            w.abort().await;
        }
    }
}
