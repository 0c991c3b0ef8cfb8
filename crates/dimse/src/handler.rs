//! One association, from A-ASSOCIATE-RQ to release or abort.
//!
//! The handler reads PDUs one at a time and feeds their presentation data
//! values to a small state machine: a command set is collected (it may span
//! several fragments), then its data set, if any, is streamed to the storage
//! sink. A bad data set yields a failure status and the loop goes on; only a
//! protocol violation ends the association.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dicom_ul::association::server::{DefaultNegotiation, ServerAssociationOptions};
use dicom_ul::association::{AsyncServerAssociation, Error as UlError};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use tokio::net::TcpStream;

use crate::command::{self, field, Command};
use crate::listener::ListenerConfig;
use crate::listener::ListenerStats;
use crate::pdv::{send_command, Stream};
use crate::policy::{PeerAccess, Verdict};
use crate::shutdown::Shutdown;
use crate::sink::{StorageSink, StoreRequest};
use crate::sop;
use crate::status::Status;
use crate::store::StoreOp;
use crate::tls::TlsAcceptor;

/// How long closing a finished connection may take.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) struct Handler<S> {
    pub id: u64,
    pub peer: SocketAddr,
    /// Arrived on the TLS port.
    pub secure: bool,
    pub config: Arc<ListenerConfig>,
    pub sink: Arc<S>,
    pub shutdown: Shutdown,
}

/// What a data set that is arriving belongs to.
enum Pending<W> {
    Store(StoreOp<W>),
    /// A request we do not serve, with a data set to skip before answering.
    Unsupported {
        context_id: u8,
        cmd: Command,
    },
}

/// Why the loop ended, for the log.
enum End {
    Released,
    PeerAborted,
    Closed(String),
    Aborted(String),
}

struct Session<'a, S: StorageSink, T> {
    handler: &'a Handler<S>,
    assoc: AsyncServerAssociation<T>,
    calling_ae: String,
    /// Which of our AE titles the peer called.
    called_ae: String,
    source: String,
    command_buf: Vec<u8>,
    command_context: Option<u8>,
    pending: Option<Pending<S::Writer>>,
    stored: u64,
    failed: u64,
}

impl<S: StorageSink> Handler<S> {
    /// A connection to the plain port.
    pub async fn run(self, socket: TcpStream) {
        let verdict = Arc::new(Mutex::new(None));
        let options = self.options(&verdict);
        let established = self.within_deadline(options.establish_async(socket)).await;
        if let Some(assoc) = self.established(established, &verdict) {
            self.serve(assoc, &verdict).await;
        }
    }

    /// A connection to the TLS port: the handshake, then the association
    /// over the same stream, both within the negotiation's deadline.
    pub async fn run_tls(self, socket: TcpStream, acceptor: &TlsAcceptor) {
        let verdict = Arc::new(Mutex::new(None));
        let options = self.options(&verdict).tls_config(acceptor.config());
        let established = self
            .within_deadline(options.establish_tls_async(socket))
            .await;
        let Some(mut assoc) = self.established(established, &verdict) else {
            return;
        };
        let (_, session) = assoc.inner_stream().get_ref();
        tracing::debug!(
            assoc = self.id,
            peer = %self.peer,
            version = ?session.protocol_version(),
            cipher = ?session.negotiated_cipher_suite().map(|s| s.suite()),
            client_certificate = session.peer_certificates().is_some(),
            "TLS session established"
        );
        self.serve(assoc, &verdict).await;
    }

    /// What we accept: the policy (which records its verdict), our AE
    /// title, verification and every storage class.
    fn options(
        &self,
        verdict: &Arc<Mutex<Option<Verdict>>>,
    ) -> ServerAssociationOptions<'static, PeerAccess, DefaultNegotiation> {
        let policy = self.config.policy.current();
        let access = PeerAccess {
            policy: policy.clone(),
            peer: self.peer.ip(),
            verdict: verdict.clone(),
        };
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(access)
            .ae_title(policy.ae_title.clone())
            .with_abstract_syntax(sop::VERIFICATION)
            .max_pdu_length(self.config.max_pdu)
            .read_timeout(self.config.idle_timeout)
            .write_timeout(self.config.idle_timeout);
        for uid in sop::storage_sop_classes() {
            options = options.with_abstract_syntax(uid);
        }
        options
    }

    /// The whole negotiation (and a TLS handshake) has one deadline: a
    /// peer trickling a byte at a time (slowloris) never resets a per-read
    /// timeout enough to hold a slot for longer than this.
    async fn within_deadline<T>(
        &self,
        negotiation: impl std::future::Future<Output = Result<T, UlError>>,
    ) -> Option<Result<T, UlError>> {
        tokio::time::timeout(self.config.idle_timeout, negotiation)
            .await
            .ok()
    }

    /// The association, or `None` after logging and counting why not.
    fn established<T>(
        &self,
        outcome: Option<Result<AsyncServerAssociation<T>, UlError>>,
        verdict: &Mutex<Option<Verdict>>,
    ) -> Option<AsyncServerAssociation<T>> {
        match outcome {
            Some(Ok(a)) => {
                ListenerStats::add(&self.config.stats.associations_accepted);
                return Some(a);
            }
            Some(Err(e @ UlError::TlsHandshake { .. })) => tracing::warn!(
                assoc = self.id,
                peer = %self.peer,
                error = %chain(&e),
                "TLS handshake failed: connection closed"
            ),
            Some(Err(e)) => self.log_refusal(&read_verdict(verdict), &e),
            None => tracing::warn!(
                assoc = self.id,
                peer = %self.peer,
                secs = self.config.idle_timeout.as_secs(),
                "association not established in time: connection closed"
            ),
        }
        ListenerStats::add(&self.config.stats.associations_rejected);
        None
    }

    async fn serve<T: Stream>(
        &self,
        assoc: AsyncServerAssociation<T>,
        verdict: &Mutex<Option<Verdict>>,
    ) {
        let calling_ae = dicom_ul::association::Association::peer_ae_title(&assoc)
            .trim()
            .to_string();
        let source = read_verdict(verdict)
            .and_then(|v| v.result.ok())
            .unwrap_or_else(|| calling_ae.clone());
        let accepted = assoc
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .count();
        tracing::info!(
            assoc = self.id,
            peer = %self.peer,
            tls = self.secure,
            calling_ae = %calling_ae,
            called_ae = %assoc.called_ae_title().trim(),
            source = %source,
            contexts_accepted = accepted,
            "association accepted"
        );
        let started = Instant::now();
        let called_ae = assoc.called_ae_title().trim().to_string();
        let mut session = Session {
            handler: self,
            assoc,
            calling_ae,
            called_ae,
            source,
            command_buf: Vec::new(),
            command_context: None,
            pending: None,
            stored: 0,
            failed: 0,
        };
        let end = session.serve().await;
        let (stored, failed) = (session.stored, session.failed);
        if let Some(Pending::Store(op)) = session.pending.take() {
            tracing::warn!(
                assoc = self.id,
                sop_instance_uid = %op.sop_instance_uid,
                "association ended during a data set; instance discarded"
            );
            op.abandon().await;
        }
        let mut assoc = session.assoc;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if !matches!(end, End::Aborted(_)) {
            // Close our side: over TLS, the peer gets its close_notify.
            let closing = tokio::io::AsyncWriteExt::shutdown(assoc.inner_stream());
            let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
        }
        match end {
            End::Released => {
                tracing::info!(assoc = self.id, peer = %self.peer, stored, failed, elapsed_ms, "association released")
            }
            End::PeerAborted => {
                tracing::warn!(assoc = self.id, peer = %self.peer, stored, failed, elapsed_ms, "association aborted by peer")
            }
            End::Closed(why) => {
                tracing::warn!(assoc = self.id, peer = %self.peer, stored, failed, reason = %why, "association closed without release")
            }
            End::Aborted(why) => {
                tracing::warn!(assoc = self.id, peer = %self.peer, stored, failed, reason = %why, "association aborted");
                let _ = assoc.abort().await;
            }
        }
    }

    fn log_refusal(&self, verdict: &Option<Verdict>, e: &UlError) {
        match verdict {
            Some(Verdict {
                calling_ae,
                called_ae,
                result: Err(refusal),
            }) => tracing::warn!(
                assoc = self.id,
                peer = %self.peer,
                calling_ae = %calling_ae,
                called_ae = %called_ae,
                reason = %refusal,
                "association rejected"
            ),
            _ => {
                tracing::warn!(assoc = self.id, peer = %self.peer, error = %e, "association not established")
            }
        }
    }
}

fn read_verdict(v: &Mutex<Option<Verdict>>) -> Option<Verdict> {
    v.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// An error and its causes, in one line (the TLS reason is a cause).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl<S: StorageSink, T: Stream> Session<'_, S, T> {
    async fn serve(&mut self) -> End {
        let mut shutdown = self.handler.shutdown.clone();
        loop {
            // Between operations a shutdown ends the association; during one,
            // the instance in flight is finished first.
            let pdu = if self.pending.is_none() && self.command_buf.is_empty() {
                tokio::select! {
                    _ = shutdown.wait() => return End::Aborted("daemon shutting down".into()),
                    pdu = self.assoc.receive() => pdu,
                }
            } else {
                self.assoc.receive().await
            };
            let pdu = match pdu {
                Ok(p) => p,
                // A silent peer gets an A-ABORT, as DCMTK's SCPs do.
                Err(UlError::Timeout { .. }) => {
                    return End::Aborted(format!(
                        "idle timeout: nothing received for {} s",
                        self.handler.config.idle_timeout.as_secs()
                    ))
                }
                Err(e) => return End::Closed(e.to_string()),
            };
            match pdu {
                Pdu::PData { data } => {
                    for pdv in data {
                        if let Err(why) = self.on_pdv(pdv).await {
                            return End::Aborted(why);
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    if let Some(Pending::Store(op)) = self.pending.take() {
                        op.abandon().await;
                    }
                    let _ = self.assoc.send(&Pdu::ReleaseRP).await;
                    return End::Released;
                }
                Pdu::AbortRQ { .. } => return End::PeerAborted,
                other => {
                    return End::Aborted(format!("unexpected PDU: {}", other.short_description()))
                }
            }
        }
    }

    async fn on_pdv(&mut self, pdv: PDataValue) -> Result<(), String> {
        match pdv.value_type {
            PDataValueType::Command => {
                if self.pending.is_some() {
                    return Err("command fragment while a data set was expected".into());
                }
                if let Some(ctx) = self.command_context {
                    if ctx != pdv.presentation_context_id {
                        return Err("command fragments on different presentation contexts".into());
                    }
                }
                self.command_context = Some(pdv.presentation_context_id);
                self.command_buf.extend_from_slice(&pdv.data);
                if self.command_buf.len() > command::MAX_COMMAND_SET {
                    return Err("command set larger than 1 MiB".into());
                }
                if pdv.is_last {
                    let bytes = std::mem::take(&mut self.command_buf);
                    self.command_context = None;
                    let cmd = Command::decode(&bytes).map_err(|e| e.to_string())?;
                    self.on_command(pdv.presentation_context_id, cmd).await?;
                }
                Ok(())
            }
            PDataValueType::Data => {
                let ctx = match &self.pending {
                    Some(Pending::Store(op)) => op.context_id,
                    Some(Pending::Unsupported { context_id, .. }) => *context_id,
                    None => return Err("data set fragment without a command".into()),
                };
                if ctx != pdv.presentation_context_id {
                    return Err("data set fragment on another presentation context".into());
                }
                if let Some(Pending::Store(op)) = self.pending.as_mut() {
                    op.write(&pdv.data).await;
                }
                if pdv.is_last {
                    match self.pending.take() {
                        Some(Pending::Store(op)) => self.finish_store(op).await?,
                        Some(Pending::Unsupported { context_id, cmd }) => {
                            self.reply_unsupported(context_id, &cmd).await?
                        }
                        None => {}
                    }
                }
                Ok(())
            }
        }
    }

    async fn on_command(&mut self, context_id: u8, cmd: Command) -> Result<(), String> {
        let context = self
            .assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.id == context_id && pc.reason == PresentationContextResultReason::Acceptance
            })
            .cloned()
            .ok_or_else(|| {
                format!("command on presentation context {context_id}, which was not accepted")
            })?;
        match cmd.field {
            field::C_ECHO_RQ => {
                tracing::debug!(
                    assoc = self.handler.id,
                    message_id = cmd.message_id,
                    "C-ECHO"
                );
                self.send(context_id, crate::echo::response(&cmd)).await
            }
            field::C_STORE_RQ if cmd.has_data_set => {
                let request = StoreRequest {
                    sop_class_uid: String::new(),
                    sop_instance_uid: String::new(),
                    transfer_syntax_uid: context
                        .transfer_syntax
                        .trim_end_matches(['\0', ' '])
                        .to_string(),
                    calling_ae_title: self.calling_ae.clone(),
                    called_ae_title: self.called_ae.clone(),
                    source: self.source.clone(),
                    peer: self.handler.peer,
                };
                let abstract_syntax = context.abstract_syntax.trim_end_matches(['\0', ' ']);
                let op = StoreOp::begin(
                    &*self.handler.sink,
                    &cmd,
                    context_id,
                    abstract_syntax,
                    request,
                )
                .await;
                self.pending = Some(Pending::Store(op));
                Ok(())
            }
            field::C_CANCEL_RQ => Ok(()),
            _ if cmd.has_data_set => {
                self.pending = Some(Pending::Unsupported { context_id, cmd });
                Ok(())
            }
            _ => self.reply_unsupported(context_id, &cmd).await,
        }
    }

    async fn finish_store(&mut self, op: StoreOp<S::Writer>) -> Result<(), String> {
        let (context_id, uid, bytes) = (op.context_id, op.sop_instance_uid.clone(), op.bytes);
        let (rsp, result) = op.finish().await;
        match &result {
            Ok(status) => {
                self.stored += 1;
                tracing::info!(assoc = self.handler.id, sop_instance_uid = %uid, bytes, status = %status, "instance stored");
            }
            Err(f) => {
                self.failed += 1;
                tracing::warn!(
                    assoc = self.handler.id,
                    sop_instance_uid = %uid,
                    bytes,
                    status = %f.status,
                    reason = %f.reason,
                    "instance refused"
                );
            }
        }
        self.send(context_id, rsp).await
    }

    async fn reply_unsupported(&mut self, context_id: u8, cmd: &Command) -> Result<(), String> {
        tracing::warn!(
            assoc = self.handler.id,
            command_field = format!("0x{:04X}", cmd.field),
            "unsupported DIMSE operation"
        );
        let rsp = command::response(
            cmd.field | 0x8000,
            cmd.message_id,
            cmd.affected_sop_class_uid.as_deref(),
            cmd.affected_sop_instance_uid.as_deref(),
            Status::UNRECOGNIZED_OPERATION,
            Some("operation not supported by triaged"),
        );
        self.send(context_id, rsp).await
    }

    async fn send(&mut self, context_id: u8, command: Vec<u8>) -> Result<(), String> {
        send_command(&mut self.assoc, context_id, command)
            .await
            .map_err(|e| format!("cannot send response: {e}"))
    }
}
