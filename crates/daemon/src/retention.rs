//! The retention task: applies `[retention]` every `interval_secs`, and at
//! once when the storage passes its high watermark (checked after every
//! stored instance and every few seconds; at most one such run a second).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use archive::{Retention, RetentionPolicy, RetentionRun};
use dimse::Shutdown;
use tokio::sync::Notify;

use crate::stats;

pub struct RetentionTask {
    pub retention: Retention,
    pub policy: RetentionPolicy,
    pub interval: Duration,
    /// Notified after every stored instance.
    pub stored: Arc<Notify>,
    pub stats: Arc<stats::Retention>,
}

/// Watermark runs at most this often: a store after each instance while
/// nothing is purgeable must not rescan the index each time.
const WATERMARK_PAUSE: Duration = Duration::from_secs(1);
/// How often the watermark is checked when nothing is stored (the
/// pipeline's report copies and the database grow the storage too).
const WATERMARK_CHECK: Duration = Duration::from_secs(5);
/// How often "above the high watermark, nothing to purge" is repeated.
const WARN_EVERY: Duration = Duration::from_secs(60);

impl RetentionTask {
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(WATERMARK_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_watermark_run = Instant::now();
        // A store came while watermark runs paused: check when they resume.
        let mut pending = false;
        let mut warned: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {
                    if let Some(run) = self.apply("interval").await {
                        log_run("interval", &run);
                    }
                }
                _ = self.stored.notified() => pending = true,
                _ = check.tick() => pending = true,
                _ = tokio::time::sleep_until(next_watermark_run), if pending => {}
            }
            if !pending || Instant::now() < next_watermark_run {
                continue;
            }
            pending = false;
            next_watermark_run = Instant::now() + WATERMARK_PAUSE;
            let used = match self.retention.usage() {
                Ok(u) => u.fraction(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot measure the storage");
                    continue;
                }
            };
            self.stats.used(used);
            if used <= self.policy.high_watermark {
                continue;
            }
            let Some(run) = self.apply("high watermark").await else {
                continue;
            };
            if !run.purged.is_empty() {
                log_run("high watermark", &run);
            } else if warned.is_none_or(|w| w.elapsed() >= WARN_EVERY) {
                warned = Some(Instant::now());
                tracing::warn!(
                    used_percent = format!("{:.1}", used * 100.0),
                    high_watermark_percent = format!("{:.1}", self.policy.high_watermark * 100.0),
                    "storage above its high watermark and no settled study to purge \
                     (studies waiting, analysing, undelivered or held)"
                );
            }
        }
    }

    async fn apply(&self, trigger: &'static str) -> Option<RetentionRun> {
        match self.retention.run(&self.policy, false).await {
            Ok(run) => {
                self.stats.used(run.used_after);
                Some(run)
            }
            Err(e) => {
                self.stats.failed();
                tracing::error!(trigger, error = %e, "retention run failed");
                None
            }
        }
    }
}

/// One line per run: what went, and how full the storage is.
pub fn log_run(trigger: &str, run: &RetentionRun) {
    tracing::info!(
        trigger,
        dry_run = run.dry_run,
        studies = run.purged.len(),
        instances = run.instances(),
        bytes = run.bytes(),
        results_forgotten = run.forgotten.len(),
        used_before_percent = format!("{:.1}", run.used_before * 100.0),
        used_after_percent = format!("{:.1}", run.used_after * 100.0),
        "retention run"
    );
}
