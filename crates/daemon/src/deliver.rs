//! Delivering the outbox: results go to their destinations by C-STORE,
//! with retries, dead letter and the SR class fallback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use archive::{Jobs, Outbox, OutboxEntry, RetryPolicy};
use dicom_dictionary_std::tags;
use dimse::scu::{self, Outgoing, Peer, ScuSettings};
use dimse::{Shutdown, Status};
use tokio::sync::Notify;

use crate::config::Config;
use crate::Error;

/// Read a DICOM file into what the C-STORE SCU sends.
pub fn load(path: &std::path::Path) -> Result<Outgoing, Error> {
    let unreadable = |detail: String| Error::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let obj = dicom_object::open_file(path).map_err(|e| unreadable(e.to_string()))?;
    let text = |t| attrs::text(&obj, t);
    let class = text(tags::SOP_CLASS_UID).ok_or_else(|| unreadable("no SOP Class UID".into()))?;
    let instance =
        text(tags::SOP_INSTANCE_UID).ok_or_else(|| unreadable("no SOP Instance UID".into()))?;
    Ok(Outgoing {
        sop_class_uid: class,
        sop_instance_uid: instance,
        dataset: obj.into_inner(),
    })
}

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

/// Send objects to one destination over one association. A Comprehensive
/// 3D SR the peer has no context for is sent again as Comprehensive SR
/// (a deterministic new UID, so retries never duplicate it).
pub async fn send(settings: &ScuSettings, peer: &Peer, items: &[Outgoing]) -> Vec<Outcome> {
    let statuses: Vec<Option<Status>> = match scu::store(settings, peer, items).await {
        Ok(r) => r.into_iter().map(|s| s.status).collect(),
        // Not one class accepted: each item is handled as "no context".
        Err(scu::ScuError::NotAccepted { .. }) => vec![None; items.len()],
        Err(e) => {
            return items
                .iter()
                .map(|_| Outcome::Failed {
                    status: None,
                    error: e.to_string(),
                    permanent: false,
                })
                .collect()
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (item, status) in items.iter().zip(statuses) {
        out.push(match status {
            Some(s) if s.is_ok() => Outcome::Delivered { status: s, note: None },
            Some(s) => Outcome::Failed {
                status: Some(s),
                error: format!("{} answered C-STORE with status {s}", peer.ae_title),
                permanent: s.is_permanent_failure(),
            },
            None => match report::sr::as_comprehensive(&item.dataset) {
                Some((dataset, uid)) => {
                    let fallback = Outgoing {
                        sop_class_uid: report::sr::COMPREHENSIVE_SR.into(),
                        sop_instance_uid: uid.clone(),
                        dataset,
                    };
                    match Box::pin(send(settings, peer, std::slice::from_ref(&fallback))).await.pop() {
                        Some(Outcome::Delivered { status, .. }) => Outcome::Delivered {
                            status,
                            note: Some(format!(
                                "sent as Comprehensive SR {uid}: the peer does not take Comprehensive 3D SR"
                            )),
                        },
                        Some(failed) => failed,
                        None => Outcome::Failed { status: None, error: "no result".into(), permanent: false },
                    }
                }
                None => Outcome::Failed {
                    status: None,
                    error: format!("{} accepted no presentation context for {}", peer.ae_title, item.sop_class_uid),
                    permanent: true,
                },
            },
        });
    }
    out
}

/// The delivery loop of `serve`.
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
            let config = self.live.config();
            for (name, entries) in groups {
                self.deliver_group(&config, &name, entries).await;
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
        let mut ready = Vec::new();
        let mut items = Vec::new();
        for e in entries {
            match load(&e.file_path) {
                Ok(o) => {
                    items.push(o);
                    ready.push(e);
                }
                Err(err) => {
                    self.record(
                        &policy,
                        &e,
                        Outcome::Failed {
                            status: None,
                            error: format!("{err:#}"),
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
        for (e, o) in ready.iter().zip(outcomes) {
            self.record(&policy, e, o).await;
        }
    }

    async fn record(&self, policy: &RetryPolicy, e: &OutboxEntry, outcome: Outcome) {
        let counter = match record(&self.outbox, policy, e, outcome).await {
            Some("delivered") => &self.stats.delivered,
            Some("dead") => &self.stats.dead,
            Some(_) => &self.stats.retried,
            None => return,
        };
        counter.inc();
    }
}

/// Record one outcome; returns the row's new state, or `None` if it could
/// not be recorded.
async fn record(
    outbox: &Outbox,
    policy: &RetryPolicy,
    e: &OutboxEntry,
    outcome: Outcome,
) -> Option<&'static str> {
    let result = match &outcome {
        Outcome::Delivered { status, note } => {
            tracing::info!(id = e.id, sop_instance_uid = %e.sop_instance_uid, destination = %e.destination, status = %status, "result delivered");
            outbox
                .delivered(e.id, status.0, note.as_deref())
                .await
                .map(|_| "delivered")
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
                    tracing::warn!(id = e.id, sop_instance_uid = %e.sop_instance_uid, destination = %e.destination, error = %error, state, "result not delivered");
                    Ok(state)
                }
                Err(err) => Err(err),
            }
        }
    };
    match result {
        Ok(state) => Some(state),
        Err(err) => {
            tracing::error!(id = e.id, error = %err, "outbox: cannot record a delivery outcome");
            None
        }
    }
}
