//! `[retention]`: when received instances and results are deleted.

use std::time::Duration;

use serde::Deserialize;

/// When a settled study's instances and, later, its results are deleted
/// (crates/archive/src/retention.rs says what settled means).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// `false`: nothing is ever deleted; a full disk refuses C-STOREs
    /// with 0xA700 until an admin makes room.
    pub enabled: bool,
    /// Days after a study settled (analysed, every report delivered) that
    /// its received instances are deleted; 0: never by age.
    pub delete_after_days: u32,
    /// Above this percentage of the storage filesystem in use, settled
    /// studies are purged oldest first ...
    pub high_watermark_percent: f64,
    /// ... down to this percentage.
    pub low_watermark_percent: f64,
    /// Days after a study settled that its findings, reviews and report
    /// copies are forgotten, once its instances are gone; 0: never.
    pub keep_results_days: u32,
    /// How often the age rules run (the watermark is also checked after
    /// every stored instance).
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            delete_after_days: 30,
            high_watermark_percent: 90.0,
            low_watermark_percent: 80.0,
            keep_results_days: 365,
            interval_secs: 600,
        }
    }
}

const DAY: u64 = 86_400;

impl RetentionConfig {
    /// The archive's policy (`None` when retention is off).
    pub fn policy(&self) -> Option<archive::RetentionPolicy> {
        let days = |d: u32| (d > 0).then(|| Duration::from_secs(d as u64 * DAY));
        self.enabled.then(|| archive::RetentionPolicy {
            delete_after: days(self.delete_after_days),
            high_watermark: self.high_watermark_percent / 100.0,
            low_watermark: self.low_watermark_percent / 100.0,
            keep_results: days(self.keep_results_days),
        })
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// Validation problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let high = self.high_watermark_percent;
        let low = self.low_watermark_percent;
        if !(1.0..=99.0).contains(&high) {
            p.push(format!(
                "retention.high_watermark_percent: {high} is outside 1..=99"
            ));
        }
        if !(low >= 1.0 && low < high) {
            p.push(format!(
                "retention.low_watermark_percent: {low} must lie in 1..retention.high_watermark_percent ({high})"
            ));
        }
        if !(1..=DAY).contains(&self.interval_secs) {
            p.push(format!(
                "retention.interval_secs: {} is outside 1..=86400",
                self.interval_secs
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_a_month_and_purge_from_ninety_to_eighty_percent() {
        let p = RetentionConfig::default().policy().unwrap();
        assert_eq!(p.delete_after, Some(Duration::from_secs(30 * DAY)));
        assert_eq!((p.high_watermark, p.low_watermark), (0.9, 0.8));
        assert_eq!(p.keep_results, Some(Duration::from_secs(365 * DAY)));
        let never = RetentionConfig {
            delete_after_days: 0,
            keep_results_days: 0,
            ..RetentionConfig::default()
        };
        let p = never.policy().unwrap();
        assert_eq!((p.delete_after, p.keep_results), (None, None));
        let off = RetentionConfig {
            enabled: false,
            ..RetentionConfig::default()
        };
        assert!(off.policy().is_none());
    }

    #[test]
    fn watermarks_out_of_order_are_named() {
        let c = RetentionConfig {
            high_watermark_percent: 70.0,
            low_watermark_percent: 75.0,
            interval_secs: 0,
            ..RetentionConfig::default()
        };
        let p = c.problems();
        let keys: Vec<&str> = p.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            ["retention.low_watermark_percent", "retention.interval_secs"],
            "{p:?}"
        );
    }
}
