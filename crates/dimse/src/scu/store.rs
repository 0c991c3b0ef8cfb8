//! C-STORE SCU: deliver data sets to a peer over one association.
//!
//! Each distinct SOP class is proposed with explicit and implicit VR
//! little endian; every data set is encoded in the transfer syntax the
//! peer accepted for its class. One operation at a time (dicom-ul has no
//! asynchronous-operations window). A failure status for one instance is
//! reported for that instance and the others are still sent; only an
//! association problem ends the call early.

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::PresentationContextResultReason;
use tokio::io::AsyncWriteExt;

use dicom_ul::association::client::AsyncClientAssociation;

use super::{open, proposed_transfer_syntaxes, read_response, Opened, Peer, ScuError, ScuSettings};
use crate::command::{self, field};
use crate::pdv::Stream;
use crate::status::Status;

/// A data set to send (native pixel data only: it is re-encoded in the
/// accepted transfer syntax).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub dataset: InMemDicomObject,
}

/// The peer's answer for one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub sop_instance_uid: String,
    /// `None` when the peer accepted no context for the instance's class.
    pub status: Option<Status>,
}

/// Send every data set; returns one result per item, in order.
pub async fn store(
    settings: &ScuSettings,
    peer: &Peer,
    items: &[Outgoing],
) -> Result<Vec<Stored>, ScuError> {
    let mut classes: Vec<String> = items.iter().map(|i| i.sop_class_uid.clone()).collect();
    classes.sort();
    classes.dedup();
    let contexts: Vec<(String, Vec<String>)> = classes
        .iter()
        .map(|c| (c.clone(), proposed_transfer_syntaxes()))
        .collect();
    match open(settings, peer, &contexts).await? {
        Opened::Plain(assoc) => send_all(*assoc, peer, items, classes.len()).await,
        Opened::Tls(assoc) => send_all(*assoc, peer, items, classes.len()).await,
    }
}

/// Every item over an open association (proposing `classes` SOP classes),
/// then release.
async fn send_all<S: Stream>(
    mut assoc: AsyncClientAssociation<S>,
    peer: &Peer,
    items: &[Outgoing],
    classes: usize,
) -> Result<Vec<Stored>, ScuError> {
    let protocol = |reason: String| ScuError::Protocol {
        ae: peer.ae_title.clone(),
        reason,
    };
    let accepted: Vec<(String, u8, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| {
            (
                pc.abstract_syntax.trim_end_matches('\0').to_string(),
                pc.id,
                pc.transfer_syntax.trim_end_matches('\0').to_string(),
            )
        })
        .collect();
    let mut results = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let message_id = (n % 0xFFFF) as u16 + 1;
        // A peer that answers with only a transfer syntax list may leave
        // the abstract syntax out of its answer: fall back on the only
        // accepted context for a single-class association.
        let ctx = accepted
            .iter()
            .find(|(a, _, _)| *a == item.sop_class_uid)
            .or_else(|| (classes == 1).then(|| accepted.first()).flatten());
        let Some((_, ctx, ts_uid)) = ctx else {
            results.push(Stored {
                sop_instance_uid: item.sop_instance_uid.clone(),
                status: None,
            });
            continue;
        };
        let ts = TransferSyntaxRegistry
            .get(ts_uid)
            .ok_or_else(|| ScuError::Encode {
                sop: item.sop_instance_uid.clone(),
                detail: format!("unknown transfer syntax {ts_uid}"),
            })?;
        let mut bytes = Vec::new();
        item.dataset
            .write_dataset_with_ts(&mut bytes, ts)
            .map_err(|e| ScuError::Encode {
                sop: item.sop_instance_uid.clone(),
                detail: e.to_string(),
            })?;
        let rq = command::request(
            field::C_STORE_RQ,
            message_id,
            &item.sop_class_uid,
            Some(&item.sop_instance_uid),
            true,
        );
        crate::pdv::send_command(&mut assoc, *ctx, rq)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        {
            let mut writer = assoc.send_pdata(*ctx);
            writer
                .write_all(&bytes)
                .await
                .map_err(|e| protocol(e.to_string()))?;
            writer.finish().await.map_err(|e| protocol(e.to_string()))?;
        }
        let (id, status) = read_response(&mut assoc, peer).await?;
        if id != message_id {
            let _ = assoc.abort().await;
            return Err(protocol(format!(
                "response to message {id}, expected {message_id}"
            )));
        }
        results.push(Stored {
            sop_instance_uid: item.sop_instance_uid.clone(),
            status: Some(status),
        });
    }
    let _ = assoc.release().await;
    Ok(results)
}
