//! Counters and a latency histogram for the pipeline's stages, registered
//! with the daemon's Prometheus registry (prometheus-client) and served by
//! the HTTP layer as /metrics.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the analysis latency buckets.
const BOUNDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// What the pipeline has done since start-up.
#[derive(Debug)]
pub struct Metrics {
    pub jobs_created: Counter,
    pub jobs_done: Counter,
    pub jobs_not_applicable: Counter,
    pub jobs_failed: Counter,
    pub images_analysed: Counter,
    pub images_skipped: Counter,
    pub objects_queued: Counter,
    /// From claiming a job to its results queued.
    pub analysis: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            jobs_created: Counter::default(),
            jobs_done: Counter::default(),
            jobs_not_applicable: Counter::default(),
            jobs_failed: Counter::default(),
            images_analysed: Counter::default(),
            images_skipped: Counter::default(),
            objects_queued: Counter::default(),
            analysis: Histogram::new(BOUNDS),
        }
    }
}

impl Metrics {
    pub(crate) fn observe_analysis(&self, took: Duration) {
        self.analysis.observe(took.as_secs_f64());
    }

    /// Register every metric (the registry shares them: later counts show
    /// at the next scrape). Counters get their `_total` suffix there.
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "triaged_jobs_created",
                "Analysis jobs made by study assembly",
                &self.jobs_created,
            ),
            (
                "triaged_jobs_done",
                "Jobs analysed with results queued",
                &self.jobs_done,
            ),
            (
                "triaged_jobs_not_applicable",
                "Jobs no model applied to",
                &self.jobs_not_applicable,
            ),
            (
                "triaged_jobs_failed",
                "Jobs that failed, with a reason in the database",
                &self.jobs_failed,
            ),
            (
                "triaged_images_analysed",
                "Images run through a model",
                &self.images_analysed,
            ),
            (
                "triaged_images_skipped",
                "Images that could not be read or decoded",
                &self.images_skipped,
            ),
            (
                "triaged_results_queued",
                "Report objects put in the outbox",
                &self.objects_queued,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "triaged_analysis_seconds",
            "Time from claiming a job to its results queued",
            self.analysis.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text::encode;

    #[test]
    fn the_exposition_counts_and_buckets() {
        let m = Metrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.jobs_done.inc_by(2);
        m.observe_analysis(Duration::from_millis(300));
        m.observe_analysis(Duration::from_secs(3));
        let mut t = String::new();
        encode(&mut t, &registry).unwrap();
        assert!(
            t.contains("# TYPE triaged_jobs_done_total counter\n"),
            "{t}"
        );
        assert!(t.contains("triaged_jobs_done_total 2\n"), "{t}");
        assert!(t.contains("triaged_jobs_failed_total 0\n"), "{t}");
        assert!(
            t.contains("triaged_analysis_seconds_bucket{le=\"0.25\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("triaged_analysis_seconds_bucket{le=\"0.5\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("triaged_analysis_seconds_bucket{le=\"5\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("triaged_analysis_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("triaged_analysis_seconds_count 2\n"), "{t}");
        assert!(t.contains("triaged_analysis_seconds_sum 3.3\n"), "{t}");
    }
}
