//! The SCU side: triaged calling other DICOM nodes (C-ECHO to check a
//! destination, C-STORE to deliver results).

mod echo;
mod store;

use std::time::Duration;

use dicom_ul::association::client::{
    AsyncClientAssociation, AsyncTlsStream, ClientAssociationOptions,
};
use dicom_ul::pdu::{PDataValueType, Pdu};
use tokio::net::TcpStream;

use crate::command;
use crate::handler::chain;
use crate::pdv::Stream;
use crate::status::Status;
use crate::tls::{ClientTlsSettings, TlsError};

pub use echo::echo;
pub use store::{store, Outgoing, Stored};

/// What the SCU proposes for every abstract syntax, in order of preference:
/// Explicit VR Little Endian, then Implicit VR Little Endian (every peer
/// must accept it). Data sets are re-encoded in the accepted one.
pub const PROPOSED_TRANSFER_SYNTAXES: [&str; 2] = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"];

fn proposed_transfer_syntaxes() -> Vec<String> {
    PROPOSED_TRANSFER_SYNTAXES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A remote application entity.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// Call it over TLS, trusting these authorities; plain TCP when `None`.
    pub tls: Option<ClientTlsSettings>,
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
    /// `detail` is the upper layer's error with its causes (for TLS, the
    /// certificate problem).
    #[error("cannot associate with {ae}@{addr}: {detail}")]
    Associate {
        ae: String,
        addr: String,
        detail: String,
    },
    #[error("TLS to {ae}: {source}")]
    Tls {
        ae: String,
        #[source]
        source: TlsError,
    },
    #[error("{ae} accepted none of the proposed presentation contexts for {what}")]
    NotAccepted { ae: String, what: String },
    #[error("association with {ae} failed: {reason}")]
    Protocol { ae: String, reason: String },
    #[error("{ae} answered C-ECHO with status {status}")]
    Status { ae: String, status: Status },
    #[error("cannot encode {sop} for sending: {detail}")]
    Encode { sop: String, detail: String },
}

/// An open association, over TCP or over TLS.
pub(crate) enum Opened {
    Plain(Box<AsyncClientAssociation<TcpStream>>),
    Tls(Box<AsyncClientAssociation<AsyncTlsStream>>),
}

/// An open association to `peer` proposing `contexts` (abstract syntax,
/// transfer syntaxes), with TCP_NODELAY set; over TLS when the peer says
/// so, the TLS handshake within the connection timeout.
pub(crate) async fn open(
    settings: &ScuSettings,
    peer: &Peer,
    contexts: &[(String, Vec<String>)],
) -> Result<Opened, ScuError> {
    let addr = format!("{}:{}", peer.host, peer.port);
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(settings.calling_ae_title.clone())
        .called_ae_title(peer.ae_title.clone())
        .max_pdu_length(settings.max_pdu)
        .connection_timeout(settings.timeout)
        .read_timeout(settings.timeout)
        .write_timeout(settings.timeout);
    for (abstract_syntax, transfer_syntaxes) in contexts {
        options =
            options.with_presentation_context(abstract_syntax.clone(), transfer_syntaxes.clone());
    }
    let failed = |source: dicom_ul::association::Error| match source {
        dicom_ul::association::Error::NoAcceptedPresentationContexts { .. } => {
            ScuError::NotAccepted {
                ae: peer.ae_title.clone(),
                what: contexts
                    .iter()
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        }
        source => ScuError::Associate {
            ae: peer.ae_title.clone(),
            addr: addr.clone(),
            detail: chain(&source),
        },
    };
    // Without TCP_NODELAY every exchange waits on Nagle and delayed ACKs.
    match &peer.tls {
        None => {
            let mut assoc = options
                .establish_async(addr.as_str())
                .await
                .map_err(failed)?;
            let _ = assoc.inner_stream().set_nodelay(true);
            Ok(Opened::Plain(Box::new(assoc)))
        }
        Some(tls) => {
            let config = tls.client_config().map_err(|source| ScuError::Tls {
                ae: peer.ae_title.clone(),
                source,
            })?;
            let options = options.tls_config(config).server_name(&peer.host);
            // The handshake has no timeout of its own in dicom-ul: it and
            // the negotiation get one deadline.
            let mut assoc =
                tokio::time::timeout(settings.timeout, options.establish_tls_async(addr.as_str()))
                    .await
                    .map_err(|_| ScuError::Associate {
                        ae: peer.ae_title.clone(),
                        addr: addr.clone(),
                        detail: format!(
                            "TLS handshake and association not done within {} s",
                            settings.timeout.as_secs()
                        ),
                    })?
                    .map_err(failed)?;
            let _ = assoc.inner_stream().get_ref().0.set_nodelay(true);
            Ok(Opened::Tls(Box::new(assoc)))
        }
    }
}

/// Read one response command set; returns its message id and status.
pub(crate) async fn read_response<S: Stream>(
    assoc: &mut AsyncClientAssociation<S>,
    peer: &Peer,
) -> Result<(u16, Status), ScuError> {
    let protocol = |reason: String| ScuError::Protocol {
        ae: peer.ae_title.clone(),
        reason,
    };
    let mut buf = Vec::new();
    loop {
        match assoc.receive().await.map_err(|e| protocol(e.to_string()))? {
            Pdu::PData { data } => {
                let mut done = false;
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        buf.extend_from_slice(&pdv.data);
                        done |= pdv.is_last;
                    }
                }
                // A peer that never ends its response is cut off, not
                // buffered without bound (data set fragments, which no
                // response of ours has, are not kept at all).
                if buf.len() > command::MAX_COMMAND_SET {
                    return Err(protocol("response command set larger than 1 MiB".into()));
                }
                if done {
                    return command::response_status(&buf).map_err(|e| protocol(e.to_string()));
                }
            }
            other => {
                return Err(protocol(format!(
                    "unexpected PDU {}",
                    other.short_description()
                )))
            }
        }
    }
}
