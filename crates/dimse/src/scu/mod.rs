//! The SCU side: triaged calling other DICOM nodes.

use std::time::{Duration, Instant};

use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValueType, Pdu, PresentationContextResultReason};

use crate::command::{self, field};
use crate::sop::VERIFICATION;
use crate::status::Status;

/// A remote application entity.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

/// Our side of an association we open.
#[derive(Debug, Clone)]
pub struct ScuSettings {
    pub calling_ae_title: String,
    pub timeout: Duration,
    pub max_pdu: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ScuError {
    #[error("cannot associate with {ae}@{addr}: {source}")]
    Associate {
        ae: String,
        addr: String,
        #[source]
        source: dicom_ul::association::Error,
    },
    #[error("{0} did not accept the Verification SOP class")]
    NotAccepted(String),
    #[error("association with {ae} failed: {reason}")]
    Protocol { ae: String, reason: String },
    #[error("{ae} answered C-ECHO with status {status}")]
    Status { ae: String, status: Status },
}

/// Send one C-ECHO and return the round-trip time of the whole exchange.
pub async fn echo(settings: &ScuSettings, peer: &Peer) -> Result<Duration, ScuError> {
    let started = Instant::now();
    let addr = format!("{}:{}", peer.host, peer.port);
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title(settings.calling_ae_title.clone())
        .called_ae_title(peer.ae_title.clone())
        .with_abstract_syntax(VERIFICATION)
        .max_pdu_length(settings.max_pdu)
        .connection_timeout(settings.timeout)
        .read_timeout(settings.timeout)
        .write_timeout(settings.timeout)
        .establish_async(addr.as_str())
        .await
        .map_err(|source| ScuError::Associate {
            ae: peer.ae_title.clone(),
            addr: addr.clone(),
            source,
        })?;
    let _ = assoc.inner_stream().set_nodelay(true);
    let protocol = |reason: String| ScuError::Protocol {
        ae: peer.ae_title.clone(),
        reason,
    };
    let ctx = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| pc.id)
        .ok_or_else(|| ScuError::NotAccepted(peer.ae_title.clone()));
    let ctx = match ctx {
        Ok(c) => c,
        Err(e) => {
            let _ = assoc.abort().await;
            return Err(e);
        }
    };
    let message_id = 1;
    let rq = command::request(field::C_ECHO_RQ, message_id, VERIFICATION, None, false);
    crate::pdv::send_command(&mut assoc, ctx, rq)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    let mut buf = Vec::new();
    let status = loop {
        match assoc.receive().await.map_err(|e| protocol(e.to_string()))? {
            Pdu::PData { data } => {
                let mut done = false;
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        buf.extend_from_slice(&pdv.data);
                        done |= pdv.is_last;
                    }
                }
                if done {
                    let (id, status) =
                        command::response_status(&buf).map_err(|e| protocol(e.to_string()))?;
                    if id != message_id {
                        return Err(protocol(format!(
                            "response to message {id}, expected {message_id}"
                        )));
                    }
                    break status;
                }
            }
            other => {
                return Err(protocol(format!(
                    "unexpected PDU {}",
                    other.short_description()
                )))
            }
        }
    };
    let _ = assoc.release().await;
    if status.is_ok() {
        Ok(started.elapsed())
    } else {
        Err(ScuError::Status {
            ae: peer.ae_title.clone(),
            status,
        })
    }
}
