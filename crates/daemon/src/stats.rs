//! The daemon's own counters (ingest by calling AE, deliveries), rendered
//! with the listener's and the pipeline's for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dimse::ListenerStats;

/// Instances and bytes stored, per calling AE title. The set of keys is
/// bounded by the AE policy (only accepted callers store).
#[derive(Debug, Default)]
pub struct Ingest {
    by_ae: Mutex<BTreeMap<String, (u64, u64)>>,
    pub failed: AtomicU64,
}

impl Ingest {
    pub fn stored(&self, calling_ae: &str, bytes: u64) {
        let mut m = self.by_ae.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(calling_ae.to_string()).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
}

/// Deliveries by outcome.
#[derive(Debug, Default)]
pub struct Delivery {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
}

/// Everything `/metrics` shows that lives in memory.
#[derive(Clone, Default)]
pub struct Stats {
    pub ingest: Arc<Ingest>,
    pub delivery: Arc<Delivery>,
    pub listener: Arc<ListenerStats>,
    pub pipeline: Arc<pipeline::metrics::Metrics>,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Stats {
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let by_ae = self
            .ingest
            .by_ae
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let _ = writeln!(out, "# HELP triaged_instances_received_total Instances stored and acknowledged, by calling AE title.\n# TYPE triaged_instances_received_total counter");
        for (ae, (n, _)) in &by_ae {
            let _ = writeln!(
                out,
                "triaged_instances_received_total{{calling_ae=\"{}\"}} {n}",
                label(ae)
            );
        }
        let _ = writeln!(out, "# HELP triaged_bytes_received_total Bytes of instances stored, by calling AE title.\n# TYPE triaged_bytes_received_total counter");
        for (ae, (_, b)) in &by_ae {
            let _ = writeln!(
                out,
                "triaged_bytes_received_total{{calling_ae=\"{}\"}} {b}",
                label(ae)
            );
        }
        let l = &self.listener;
        let d = &self.delivery;
        let counters = [
            (
                "triaged_instances_failed_total",
                "Instances answered with a failure status.",
                self.ingest.failed.load(Ordering::Relaxed),
            ),
            (
                "triaged_associations_accepted_total",
                "Associations accepted.",
                ListenerStats::get(&l.associations_accepted),
            ),
            (
                "triaged_associations_rejected_total",
                "Associations rejected by the AE-title policy or not established.",
                ListenerStats::get(&l.associations_rejected),
            ),
            (
                "triaged_associations_over_limit_total",
                "Associations refused because max_associations were open.",
                ListenerStats::get(&l.associations_over_limit),
            ),
            (
                "triaged_connections_dropped_total",
                "Connections closed unanswered: max_associations open and as many refusals under way.",
                ListenerStats::get(&l.connections_dropped),
            ),
            (
                "triaged_deliveries_total",
                "Result objects delivered to a destination.",
                d.delivered.load(Ordering::Relaxed),
            ),
            (
                "triaged_delivery_failures_total",
                "Delivery attempts that failed and will be retried.",
                d.retried.load(Ordering::Relaxed),
            ),
            (
                "triaged_deliveries_dead_total",
                "Result objects given up on.",
                d.dead.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out.push_str(&self.pipeline.prometheus());
        out
    }
}
