//! `[monitoring]`: watching the models in use.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Days of daily flag rates (and of verdicts) shown.
    pub days: u32,
    /// Population stability index of this week's scores against the
    /// reference above which a label's drift is flagged (0.1: a slight
    /// shift, 0.25: a significant one, by the usual reading).
    pub drift_alert_psi: f64,
    /// How often the Prometheus series are recomputed.
    pub interval_secs: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            days: 30,
            drift_alert_psi: 0.25,
            interval_secs: 300,
        }
    }
}

impl MonitoringConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=366).contains(&self.days) {
            p.push(format!("monitoring.days: {} is outside 1..=366", self.days));
        }
        if !(self.drift_alert_psi > 0.0 && self.drift_alert_psi <= 10.0) {
            p.push(format!(
                "monitoring.drift_alert_psi: {} is outside (0, 10]",
                self.drift_alert_psi
            ));
        }
        if !(10..=86_400).contains(&self.interval_secs) {
            p.push(format!(
                "monitoring.interval_secs: {} is outside 10..=86400",
                self.interval_secs
            ));
        }
        p
    }
}
