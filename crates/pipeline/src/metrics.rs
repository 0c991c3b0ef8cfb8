//! Counters and a latency histogram for each pipeline stage, rendered in
//! the Prometheus text format (served by the HTTP layer as /metrics).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the analysis latency buckets.
const BOUNDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, c) in BOUNDS.iter().zip(&self.counts) {
            if s <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in BOUNDS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// What the pipeline has done since start-up.
#[derive(Debug, Default)]
pub struct Metrics {
    pub jobs_created: AtomicU64,
    pub jobs_done: AtomicU64,
    pub jobs_not_applicable: AtomicU64,
    pub jobs_failed: AtomicU64,
    pub images_analysed: AtomicU64,
    pub images_skipped: AtomicU64,
    pub objects_queued: AtomicU64,
    /// From claiming a job to its results queued.
    pub analysis: Histogram,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "triaged_jobs_created_total",
                "Analysis jobs made by study assembly.",
                &self.jobs_created,
            ),
            (
                "triaged_jobs_done_total",
                "Jobs analysed with results queued.",
                &self.jobs_done,
            ),
            (
                "triaged_jobs_not_applicable_total",
                "Jobs no model applied to.",
                &self.jobs_not_applicable,
            ),
            (
                "triaged_jobs_failed_total",
                "Jobs that failed, with a reason in the database.",
                &self.jobs_failed,
            ),
            (
                "triaged_images_analysed_total",
                "Images run through a model.",
                &self.images_analysed,
            ),
            (
                "triaged_images_skipped_total",
                "Images that could not be read or decoded.",
                &self.images_skipped,
            ),
            (
                "triaged_results_queued_total",
                "Report objects put in the outbox.",
                &self.objects_queued,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        self.analysis.render(
            "triaged_analysis_seconds",
            "Time from claiming a job to its results queued.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_and_buckets() {
        let m = Metrics::default();
        Metrics::add(&m.jobs_done, 2);
        m.analysis.observe(Duration::from_millis(300));
        m.analysis.observe(Duration::from_secs(3));
        let t = m.prometheus();
        assert!(t.contains("triaged_jobs_done_total 2\n"), "{t}");
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
        assert!(t.contains("triaged_analysis_seconds_count 2\n"), "{t}");
        assert!(t.contains("triaged_analysis_seconds_sum 3.3\n"), "{t}");
    }
}
