//! Model monitoring: the archive's report with the loaded models' reference
//! score distributions, for the console's `/api/monitoring` and, every
//! `[monitoring] interval_secs`, as Prometheus series.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use archive::{Archive, ArchiveError, LabelMonitor};
use dimse::Shutdown;
use pipeline::lifecycle::Registry;

use crate::config::monitoring::MonitoringConfig;
use crate::stats;

/// The report now.
pub async fn report(
    archive: &Archive,
    models: &Registry,
    config: &MonitoringConfig,
) -> Result<Vec<LabelMonitor>, ArchiveError> {
    let mut references = BTreeMap::new();
    for m in models.loaded() {
        for (label, bins) in &m.manifest.reference_scores {
            references.insert(
                (
                    m.manifest.name.clone(),
                    m.manifest.version.clone(),
                    label.clone(),
                ),
                bins.clone(),
            );
        }
    }
    archive
        .monitoring()
        .report(config.days, &references, config.drift_alert_psi)
        .await
}

/// Keeps the Prometheus series up to date.
pub struct MonitoringTask {
    pub archive: Archive,
    pub models: Arc<Registry>,
    pub config: MonitoringConfig,
    pub stats: Arc<stats::Models>,
}

impl MonitoringTask {
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            match report(&self.archive, &self.models, &self.config).await {
                Ok(r) => self.stats.set(&r),
                Err(e) => tracing::error!(error = %e, "model monitoring failed"),
            }
        }
    }
}
