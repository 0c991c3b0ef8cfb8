//! C-ECHO SCU: is a destination there and willing to talk to us?

use std::time::{Duration, Instant};

use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::pdu::PresentationContextResultReason;

use super::{open, proposed_transfer_syntaxes, read_response, Opened, Peer, ScuError, ScuSettings};
use crate::command::{self, field};
use crate::pdv::Stream;
use crate::sop::VERIFICATION;

/// Send one C-ECHO and return the round-trip time of the whole exchange.
pub async fn echo(settings: &ScuSettings, peer: &Peer) -> Result<Duration, ScuError> {
    let started = Instant::now();
    let contexts = [(VERIFICATION.to_string(), proposed_transfer_syntaxes())];
    match open(settings, peer, &contexts).await? {
        Opened::Plain(assoc) => exchange(*assoc, peer).await?,
        Opened::Tls(assoc) => exchange(*assoc, peer).await?,
    }
    Ok(started.elapsed())
}

/// One C-ECHO over an open association, then release.
async fn exchange<S: Stream>(
    mut assoc: AsyncClientAssociation<S>,
    peer: &Peer,
) -> Result<(), ScuError> {
    let ctx = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| pc.id);
    let Some(ctx) = ctx else {
        let _ = assoc.abort().await;
        return Err(ScuError::NotAccepted {
            ae: peer.ae_title.clone(),
            what: "Verification".into(),
        });
    };
    let message_id = 1;
    let rq = command::request(field::C_ECHO_RQ, message_id, VERIFICATION, None, false);
    crate::pdv::send_command(&mut assoc, ctx, rq)
        .await
        .map_err(|e| ScuError::Protocol {
            ae: peer.ae_title.clone(),
            reason: e.to_string(),
        })?;
    let (id, status) = read_response(&mut assoc, peer).await?;
    let _ = assoc.release().await;
    if id != message_id {
        return Err(ScuError::Protocol {
            ae: peer.ae_title.clone(),
            reason: format!("response to message {id}, expected {message_id}"),
        });
    }
    if status.is_ok() {
        Ok(())
    } else {
        Err(ScuError::Status {
            ae: peer.ae_title.clone(),
            status,
        })
    }
}
