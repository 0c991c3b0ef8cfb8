//! The daemon's own counters (ingest by calling AE, deliveries) and the
//! one Prometheus registry (prometheus-client) that `/metrics` encodes,
//! holding them with the listener's and the pipeline's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dimse::ListenerStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallingAe {
    calling_ae: String,
}

/// Instances and bytes stored, per calling AE title. The set of keys is
/// bounded by the AE policy (only accepted callers store).
#[derive(Debug, Default)]
pub struct Ingest {
    instances: Family<CallingAe, Counter>,
    bytes: Family<CallingAe, Counter>,
    pub failed: Counter,
}

impl Ingest {
    pub fn stored(&self, calling_ae: &str, bytes: u64) {
        let ae = CallingAe {
            calling_ae: calling_ae.to_string(),
        };
        self.instances.get_or_create(&ae).inc();
        self.bytes.get_or_create(&ae).inc_by(bytes);
    }
}

/// Deliveries by outcome.
#[derive(Debug, Default)]
pub struct Delivery {
    pub delivered: Counter,
    pub retried: Counter,
    pub dead: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
    version: String,
    label: String,
    shadow: &'static str,
}

/// Per model version and label, from the last monitoring report.
#[derive(Debug, Default)]
pub struct Models {
    flag_rate: Family<ModelLabel, Gauge<f64, AtomicU64>>,
    ppv: Family<ModelLabel, Gauge<f64, AtomicU64>>,
    missed_rate: Family<ModelLabel, Gauge<f64, AtomicU64>>,
    psi: Family<ModelLabel, Gauge<f64, AtomicU64>>,
    drift_alert: Family<ModelLabel, Gauge<f64, AtomicU64>>,
}

impl Models {
    pub fn set(&self, report: &[archive::LabelMonitor]) {
        for m in report {
            let k = ModelLabel {
                model: m.model.clone(),
                version: m.version.clone(),
                label: m.label.clone(),
                shadow: if m.shadow { "true" } else { "false" },
            };
            if m.studies_7d > 0 {
                self.flag_rate
                    .get_or_create(&k)
                    .set(m.flagged_7d as f64 / m.studies_7d as f64);
            }
            if let Some(v) = m.ppv {
                self.ppv.get_or_create(&k).set(v);
            }
            if let Some(v) = m.missed_rate {
                self.missed_rate.get_or_create(&k).set(v);
            }
            if let Some(v) = m.psi {
                self.psi.get_or_create(&k).set(v);
            }
            self.drift_alert
                .get_or_create(&k)
                .set(if m.drift_alert { 1.0 } else { 0.0 });
        }
    }
}

/// Retention's counters live in the archive (which counts what it
/// deletes, whoever asked: the periodic task or a write that found the
/// disk full); read at each scrape once the archive is open.
#[derive(Debug, Default)]
pub struct Retention {
    archive: std::sync::OnceLock<archive::Retention>,
    failed: AtomicU64,
    /// The fraction of the storage in use, as f64 bits.
    used: AtomicU64,
}

impl Retention {
    pub fn watch(&self, retention: archive::Retention) {
        let _ = self.archive.set(retention);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn used(&self, fraction: f64) {
        self.used.store(fraction.to_bits(), Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct RetentionCollector(Arc<Retention>);

impl Collector for RetentionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.0;
        let failed = ConstCounter::new(r.failed.load(Ordering::Relaxed));
        failed.encode(encoder.encode_descriptor(
            "triaged_retention_failures",
            "Retention runs that failed",
            None,
            failed.metric_type(),
        )?)?;
        let used = ConstGauge::new(f64::from_bits(r.used.load(Ordering::Relaxed)));
        used.encode(encoder.encode_descriptor(
            "triaged_storage_used_ratio",
            "Fraction of the storage filesystem in use",
            None,
            used.metric_type(),
        )?)?;
        let Some(archive) = r.archive.get() else {
            return Ok(());
        };
        let (by_reason, forgotten) = archive.totals();
        type Pick = fn(&archive::PurgeTotals) -> u64;
        let series: [(&str, &str, Pick); 3] = [
            (
                "triaged_retention_purged_studies",
                "Studies whose instances retention deleted, by reason",
                |t| t.studies,
            ),
            (
                "triaged_retention_purged_instances",
                "Instances retention deleted, by reason",
                |t| t.instances,
            ),
            (
                "triaged_retention_purged_bytes",
                "Bytes of instance files retention deleted, by reason",
                |t| t.bytes,
            ),
        ];
        for (name, help, pick) in series {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for t in &by_reason {
                let c = ConstCounter::new(pick(t));
                c.encode(family.encode_family(&[("reason", t.reason.as_str())])?)?;
            }
        }
        let f = ConstCounter::new(forgotten);
        f.encode(encoder.encode_descriptor(
            "triaged_retention_forgotten_studies",
            "Purged studies whose results were forgotten after keep_results_days",
            None,
            f.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The listener's counters live in `dimse` (which knows nothing of
/// Prometheus): read at each scrape.
#[derive(Debug)]
struct Listener(Arc<ListenerStats>);

impl Collector for Listener {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let l = &self.0;
        let counters: [(&str, &str, &AtomicU64); 4] = [
            (
                "triaged_associations_accepted",
                "Associations accepted",
                &l.associations_accepted,
            ),
            (
                "triaged_associations_rejected",
                "Associations rejected by the AE-title policy or not established",
                &l.associations_rejected,
            ),
            (
                "triaged_associations_over_limit",
                "Associations refused because max_associations were open",
                &l.associations_over_limit,
            ),
            (
                "triaged_connections_dropped",
                "Connections closed unanswered: max_associations open and as many refusals under way",
                &l.connections_dropped,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(ListenerStats::get(v));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

/// Everything `/metrics` shows that lives in memory.
#[derive(Clone)]
pub struct Stats {
    pub ingest: Arc<Ingest>,
    pub delivery: Arc<Delivery>,
    pub listener: Arc<ListenerStats>,
    pub pipeline: Arc<pipeline::metrics::Metrics>,
    pub retention: Arc<Retention>,
    pub models: Arc<Models>,
    registry: Arc<Registry>,
}

impl Default for Stats {
    fn default() -> Stats {
        let ingest = Arc::new(Ingest::default());
        let delivery = Arc::new(Delivery::default());
        let listener = Arc::new(ListenerStats::default());
        let pipeline = Arc::new(pipeline::metrics::Metrics::default());
        let mut r = Registry::default();
        r.register(
            "triaged_instances_received",
            "Instances stored and acknowledged, by calling AE title",
            ingest.instances.clone(),
        );
        r.register(
            "triaged_bytes_received",
            "Bytes of instances stored, by calling AE title",
            ingest.bytes.clone(),
        );
        r.register(
            "triaged_instances_failed",
            "Instances answered with a failure status",
            ingest.failed.clone(),
        );
        r.register_collector(Box::new(Listener(listener.clone())));
        r.register(
            "triaged_deliveries",
            "Result objects delivered to a destination",
            delivery.delivered.clone(),
        );
        r.register(
            "triaged_delivery_failures",
            "Delivery attempts that failed and will be retried",
            delivery.retried.clone(),
        );
        r.register(
            "triaged_deliveries_dead",
            "Result objects given up on",
            delivery.dead.clone(),
        );
        pipeline.register(&mut r);
        let retention = Arc::new(Retention::default());
        r.register_collector(Box::new(RetentionCollector(retention.clone())));
        let models = Arc::new(Models::default());
        for (name, help, family) in [
            (
                "triaged_model_flag_rate_7d",
                "Share of the last 7 days' analyses a model version flagged, by label",
                &models.flag_rate,
            ),
            (
                "triaged_model_ppv_estimate",
                "Share of flagged analyses radiologists confirmed, by label",
                &models.ppv,
            ),
            (
                "triaged_model_missed_rate_estimate",
                "Share of unflagged analyses where radiologists found the label",
                &models.missed_rate,
            ),
            (
                "triaged_model_drift_psi",
                "Population stability index of this week's scores against the reference",
                &models.psi,
            ),
            (
                "triaged_model_drift_alert",
                "1 when the drift index is above [monitoring] drift_alert_psi",
                &models.drift_alert,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        Stats {
            ingest,
            delivery,
            listener,
            pipeline,
            retention,
            models,
            registry: Arc::new(r),
        }
    }
}

impl Stats {
    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_shows_in_one_exposition() {
        let s = Stats::default();
        s.ingest.stored("MODALITY \"1\"", 100);
        s.ingest.stored("MODALITY \"1\"", 50);
        s.delivery.dead.inc();
        s.listener
            .connections_dropped
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        s.pipeline.jobs_created.inc_by(4);
        let t = s.prometheus();
        assert!(
            t.contains("triaged_instances_received_total{calling_ae=\"MODALITY \\\"1\\\"\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("triaged_bytes_received_total{calling_ae=\"MODALITY \\\"1\\\"\"} 150\n"),
            "{t}"
        );
        assert!(t.contains("triaged_deliveries_dead_total 1\n"), "{t}");
        assert!(
            t.contains("# TYPE triaged_connections_dropped_total counter\n"),
            "{t}"
        );
        assert!(t.contains("triaged_connections_dropped_total 3\n"), "{t}");
        assert!(t.contains("triaged_jobs_created_total 4\n"), "{t}");
        assert_eq!(t.matches("# TYPE ").count(), t.matches("# HELP ").count());
    }
}
