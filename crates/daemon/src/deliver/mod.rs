//! Delivering the outbox: each destination by its kind — DICOM objects by
//! C-STORE ([`dicom`]), HL7 v2 over MLLP ([`mllp`]), FHIR and webhooks over
//! HTTP ([`http`]) — with retries and dead letter common to all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use archive::{DeliveryState, Jobs, Outbox, OutboxEntry, RetryPolicy};
use dimse::{Shutdown, Status};
use tokio::sync::Notify;

use crate::config::{Config, DestinationConfig, DestinationKind};

mod dicom;
pub mod http;
pub mod mllp;

pub use dicom::{deidentifier, load, load_for, send};

/// What happened to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored (Success or Warning), possibly as a fallback object.
    Delivered {
        status: Status,
        note: Option<String>,
    },
    Failed {
        status: Option<Status>,
        error: String,
        permanent: bool,
    },
}

/// The delivery loop of `serve`.
#[derive(Clone)]
pub struct Delivery {
    pub outbox: Outbox,
    pub jobs: Jobs,
    /// Destinations are looked up in the configuration in force for each
    /// batch, so one added or changed from the console is used at once.
    pub live: Arc<crate::live::Live>,
    pub wake: Arc<Notify>,
    pub stats: Arc<crate::stats::Delivery>,
}

impl Delivery {
    /// Claim due rows, send them grouped by destination, record the
    /// outcome; until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        match self.outbox.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "outbox: attempts interrupted by a stop will be retried"
            ),
            Err(e) => tracing::error!(error = %e, "outbox: cannot recover interrupted attempts"),
        }
        let mut stopping = shutdown.clone();
        // Jobs a stop left `sending` whose rows were settled meanwhile.
        self.settle().await;
        loop {
            if stopping.is_triggered() {
                return;
            }
            let due = match self.outbox.claim_due(64).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "outbox: cannot claim due results");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    // Retries come due without a wake-up.
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = stopping.wait() => return,
                }
            }
            let mut groups: BTreeMap<String, Vec<OutboxEntry>> = BTreeMap::new();
            for e in due {
                groups.entry(e.destination.clone()).or_default().push(e);
            }
            // Destinations at once: a slow RIS never holds up an alert.
            let config = self.live.config();
            let mut sending = tokio::task::JoinSet::new();
            for (name, entries) in groups {
                let (this, config) = (self.clone(), config.clone());
                sending.spawn(async move { this.deliver_group(&config, &name, entries).await });
            }
            while let Some(done) = sending.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "outbox: a delivery task failed");
                }
            }
            // Only outcomes change a job's state: settle after a batch, not
            // on every idle wake-up (the writer connection is ingest's too).
            self.settle().await;
        }
    }

    /// Jobs whose reports have all left the outbox are done (or failed).
    async fn settle(&self) {
        if let Err(e) = self.jobs.settle().await {
            tracing::error!(error = %e, "outbox: cannot settle delivered jobs");
        }
    }

    async fn deliver_group(&self, config: &Config, name: &str, entries: Vec<OutboxEntry>) {
        let policy = config.outbox.policy();
        let Some(dest) = config.destination(name) else {
            for e in &entries {
                self.record(
                    &policy,
                    e,
                    Outcome::Failed {
                        status: None,
                        error: format!("destination '{name}' is not configured"),
                        permanent: true,
                    },
                )
                .await;
            }
            return;
        };
        match dest.kind {
            DestinationKind::Dicom => self.deliver_objects(config, dest, &policy, entries).await,
            DestinationKind::Dicomweb => {
                let timeout = Duration::from_secs(config.outbox.timeout_secs);
                for e in entries {
                    let outcome = match is_result_document(&e) {
                        true => Outcome::Failed {
                            status: None,
                            error: format!(
                                "this row holds a result document, but destination '{}' is now of kind dicomweb",
                                dest.name
                            ),
                            permanent: true,
                        },
                        false => http::stow(dest, &e.file_path, &e.sop_instance_uid, timeout).await,
                    };
                    self.record(&policy, &e, outcome).await;
                }
            }
            _ => {
                for e in entries {
                    let outcome = deliver_message(config, dest, &e).await;
                    self.record(&policy, &e, outcome).await;
                }
            }
        }
    }

    /// DICOM objects over one association.
    async fn deliver_objects(
        &self,
        config: &Config,
        dest: &DestinationConfig,
        policy: &RetryPolicy,
        entries: Vec<OutboxEntry>,
    ) {
        let mut ready = Vec::new();
        let mut items = Vec::new();
        let deid = deidentifier(&config.storage.dir, dest).map_err(|err| format!("{err:#}"));
        for e in entries {
            let loaded = match (is_result_document(&e), &deid) {
                (true, _) => Err(format!(
                    "this row holds a result document, but destination '{}' is now of kind dicom",
                    dest.name
                )),
                (false, Err(error)) => Err(error.clone()),
                // Rows an analysis queued hold triaged's own reports.
                (false, Ok(deid)) => {
                    let source = match e.job_id {
                        Some(_) => deid::Source::Triaged,
                        None => deid::Source::Received,
                    };
                    load_for(&e.file_path, deid.as_ref(), source, &dest.name)
                        .map_err(|err| format!("{err:#}"))
                }
            };
            match loaded {
                Ok(o) => {
                    items.push(o);
                    ready.push(e);
                }
                Err(error) => {
                    self.record(
                        policy,
                        &e,
                        Outcome::Failed {
                            status: None,
                            error,
                            permanent: true,
                        },
                    )
                    .await
                }
            }
        }
        if items.is_empty() {
            return;
        }
        let outcomes = send(&config.scu_settings(), &dest.peer(), &items).await;
        for ((e, o), item) in ready.iter().zip(outcomes).zip(&items) {
            let o = match o {
                Outcome::Delivered { status, note: None } if dest.deidentify => {
                    Outcome::Delivered {
                        status,
                        note: Some(format!("de-identified as {}", item.sop_instance_uid)),
                    }
                }
                o => o,
            };
            self.record(policy, e, o).await;
        }
    }

    async fn record(&self, policy: &RetryPolicy, e: &OutboxEntry, outcome: Outcome) {
        let counter = match record(&self.outbox, policy, e, outcome).await {
            Some(DeliveryState::Delivered) => &self.stats.delivered,
            Some(DeliveryState::Dead) => &self.stats.dead,
            Some(_) => &self.stats.retried,
            None => return,
        };
        counter.inc();
    }
}

fn is_result_document(e: &OutboxEntry) -> bool {
    e.file_path
        .to_string_lossy()
        .ends_with(archive::RESULT_EXTENSION)
}

/// Read the result document of `e`.
fn read_result(e: &OutboxEntry, dest: &DestinationConfig) -> Result<report::StudyResult, String> {
    if !is_result_document(e) {
        return Err(format!(
            "this row holds a DICOM object, but destination '{}' is now of kind {}",
            dest.name,
            dest.kind.as_str()
        ));
    }
    let bytes = std::fs::read(&e.file_path)
        .map_err(|err| format!("cannot read {}: {err}", e.file_path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|err| format!("{} is not a result document: {err}", e.file_path.display()))
}

/// One message to an HL7, FHIR or webhook destination.
async fn deliver_message(config: &Config, dest: &DestinationConfig, e: &OutboxEntry) -> Outcome {
    let result = match read_result(e, dest) {
        Ok(r) => r,
        Err(error) => {
            return Outcome::Failed {
                status: None,
                error,
                permanent: true,
            }
        }
    };
    let timeout = Duration::from_secs(config.outbox.timeout_secs);
    match dest.kind {
        DestinationKind::Hl7 => {
            let id = result.message_id(&dest.name);
            let message = report::hl7::oru(&result, &dest.hl7_header(), &id);
            mllp::deliver(&dest.host, dest.port, &message, &id, timeout).await
        }
        DestinationKind::Fhir => http::fhir(dest, &result, timeout).await,
        DestinationKind::Webhook => {
            http::webhook(dest, &result, &config.http.public_url(), timeout).await
        }
        DestinationKind::Dicom | DestinationKind::Dicomweb => Outcome::Failed {
            status: None,
            error: "a DICOM destination takes objects, not messages".into(),
            permanent: true,
        },
    }
}

/// Whether a destination answers, without sending a result: C-ECHO for
/// DICOM, a connection for HL7, the CapabilityStatement for FHIR. A
/// webhook cannot be tried without sending an alert.
pub async fn probe(config: &Config, d: &DestinationConfig) -> Result<String, String> {
    let timeout = Duration::from_secs(config.outbox.timeout_secs);
    match d.kind {
        DestinationKind::Dicom => match dimse::scu::echo(&config.scu_settings(), &d.peer()).await {
            Ok(rtt) => Ok(format!(
                "{} answered C-ECHO in {} ms",
                d.address(),
                rtt.as_millis()
            )),
            Err(e) => Err(format!("C-ECHO failed: {e}")),
        },
        DestinationKind::Hl7 => {
            let started = std::time::Instant::now();
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((d.host.as_str(), d.port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(format!(
                    "{} accepted a connection in {} ms (no message sent)",
                    d.address(),
                    started.elapsed().as_millis()
                )),
                Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", d.address())),
                Err(_) => Err(format!(
                    "{} did not accept within {} s",
                    d.address(),
                    timeout.as_secs()
                )),
            }
        }
        DestinationKind::Fhir => http::capabilities(d, timeout).await,
        DestinationKind::Dicomweb => http::qido_probe(d, timeout).await,
        DestinationKind::Webhook => Err(
            "a webhook cannot be tried without sending an alert: watch its row in the outbox"
                .into(),
        ),
    }
}

/// Record one outcome; returns the row's new state, or `None` if it could
/// not be recorded.
async fn record(
    outbox: &Outbox,
    policy: &RetryPolicy,
    e: &OutboxEntry,
    outcome: Outcome,
) -> Option<DeliveryState> {
    let result = match &outcome {
        Outcome::Delivered { status, note } => {
            tracing::info!(id = e.id, sop_instance_uid = %e.sop_instance_uid, destination = %e.destination, status = %status, "result delivered");
            outbox.delivered(e.id, status.0, note.as_deref()).await
        }
        Outcome::Failed {
            status,
            error,
            permanent,
        } => {
            match outbox
                .failed(e.id, status.map(|s| s.0), error, *permanent, policy)
                .await
            {
                Ok(state) => {
                    tracing::warn!(id = e.id, sop_instance_uid = %e.sop_instance_uid, destination = %e.destination, error = %error, state = ?state, "result not delivered");
                    Ok(state)
                }
                Err(err) => Err(err),
            }
        }
    };
    match result {
        Ok(None) => {
            tracing::warn!(
                id = e.id,
                "outbox: the row was no longer being sent: outcome not recorded"
            );
            None
        }
        Ok(state) => state,
        Err(err) => {
            tracing::error!(id = e.id, error = %err, "outbox: cannot record a delivery outcome");
            None
        }
    }
}
