//! Watching models in use: per model version and label, how often it flags
//! (per day), how often radiologists agree with it (an estimate of its
//! positive predictive value, and of the findings it missed), and whether
//! its scores drift (this week's score distribution against a reference,
//! by the population stability index).
//!
//! A study's result for a label is its job's: flagged if any image was,
//! scored by its highest probability. Verdicts are the latest per job and
//! label; a verdict is on what the radiologist saw (the active version's
//! flag), so "present" means agree-with-a-flag or disagree-with-no-flag.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::db::Pool;

use crate::ArchiveError;

/// Score bins for drift: ten of width 0.1 over [0, 1].
pub const BINS: usize = 10;

/// One day's analyses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayRate {
    /// UTC date, YYYY-MM-DD.
    pub day: String,
    pub studies: i64,
    pub flagged: i64,
}

/// Where the drift reference comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The model's validation set (its manifest's `reference_scores`).
    Validation,
    /// The version's first 28 days of use here.
    Baseline,
}

/// One model version and label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMonitor {
    pub model: String,
    pub version: String,
    /// Findings recorded in shadow (never reported).
    pub shadow: bool,
    pub label: String,
    /// The last `days` days, oldest first (days without analyses left out).
    pub days: Vec<DayRate>,
    /// Studies and flags over the last 7 days.
    pub studies_7d: i64,
    pub flagged_7d: i64,
    /// Flagged studies with a verdict, and those the radiologist agreed
    /// with: `ppv` = agreed / reviewed.
    pub flagged_reviewed: i64,
    pub flagged_confirmed: i64,
    pub ppv: Option<f64>,
    /// Unflagged studies with a verdict, and those where the radiologist
    /// said the finding is there: `missed_rate` = missed / reviewed.
    pub clear_reviewed: i64,
    pub missed: i64,
    pub missed_rate: Option<f64>,
    /// This week's score histogram (counts per bin of 0.1).
    pub scores_7d: Vec<i64>,
    /// The reference histogram (fractions), and where it is from.
    pub reference: Option<Vec<f64>>,
    pub reference_source: Option<ReferenceSource>,
    /// Population stability index of this week against the reference
    /// (none without a reference or without scores this week).
    pub psi: Option<f64>,
    /// Whether `psi` is above the alert threshold.
    pub drift_alert: bool,
}

/// Population stability index of `actual` counts against `expected`
/// fractions: Σ (a − e) ln(a / e), with empty bins floored at 1e-4.
pub fn psi(actual: &[i64], expected: &[f64]) -> Option<f64> {
    let total: i64 = actual.iter().sum();
    let expected_total: f64 = expected.iter().sum();
    if total == 0 || expected_total <= 0.0 || actual.len() != expected.len() {
        return None;
    }
    let floor = 1e-4;
    Some(
        actual
            .iter()
            .zip(expected)
            .map(|(&a, &e)| {
                let a = (a as f64 / total as f64).max(floor);
                let e = (e / expected_total).max(floor);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// Reads for monitoring.
#[derive(Clone)]
pub struct Monitoring {
    read: Pool,
}

/// Each analysis's result per model version and label.
const PER_JOB: &str = "per AS (
    SELECT job_id, model, model_version AS version, shadow, label,
           MAX(flagged) AS flagged, MAX(probability) AS p, MIN(created_at) AS at
    FROM findings GROUP BY job_id, model, model_version, shadow, label)";

type Key = (String, String, bool, String);

fn key(r: &sqlx::any::AnyRow) -> Result<Key, sqlx::Error> {
    Ok((
        r.try_get("model")?,
        r.try_get("version")?,
        r.try_get::<i64, _>("shadow")? != 0,
        r.try_get("label")?,
    ))
}

fn bin(p: f64) -> usize {
    ((p * BINS as f64).floor().max(0.0) as usize).min(BINS - 1)
}

impl Monitoring {
    pub(crate) fn new(read: Pool) -> Monitoring {
        Monitoring { read }
    }

    /// Every model version and label with findings, over the last `days`
    /// days. `references` holds validation histograms by (model, version,
    /// label); others are compared with their first 28 days here.
    /// `alert` is the PSI above which drift is flagged.
    pub async fn report(
        &self,
        days: u32,
        references: &BTreeMap<(String, String, String), Vec<f64>>,
        alert: f64,
    ) -> Result<Vec<LabelMonitor>, ArchiveError> {
        const ACTION: &str = "monitoring models";
        let db = ArchiveError::db(ACTION);
        let mut out: BTreeMap<Key, LabelMonitor> = BTreeMap::new();
        let rows = sqlx::query(&format!(
            "WITH {PER_JOB}
             SELECT model, version, shadow, label, substr(at, 1, 10) AS day,
                    COUNT(*) AS studies, CAST(SUM(flagged) AS BIGINT) AS flagged
             FROM per WHERE at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $1)
             GROUP BY model, version, shadow, label, day
             ORDER BY day"
        ))
        .bind(format!("-{days} days"))
        .fetch_all(&self.read)
        .await
        .map_err(db)?;
        for r in &rows {
            let k = key(r).map_err(ArchiveError::db(ACTION))?;
            let m = out.entry(k.clone()).or_insert_with(|| empty(&k));
            let d = DayRate {
                day: r.try_get("day").map_err(ArchiveError::db(ACTION))?,
                studies: r.try_get("studies").map_err(ArchiveError::db(ACTION))?,
                flagged: r.try_get("flagged").map_err(ArchiveError::db(ACTION))?,
            };
            m.days.push(d);
        }
        // The last 7 days (a day's rows may straddle the limit: count anew).
        let recent = sqlx::query(&format!(
            "WITH {PER_JOB}
             SELECT model, version, shadow, label, COUNT(*) AS studies, CAST(SUM(flagged) AS BIGINT) AS flagged
             FROM per WHERE at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7 days')
             GROUP BY model, version, shadow, label"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        for r in &recent {
            let k = key(r).map_err(ArchiveError::db(ACTION))?;
            let m = out.entry(k.clone()).or_insert_with(|| empty(&k));
            m.studies_7d = r.try_get("studies").map_err(ArchiveError::db(ACTION))?;
            m.flagged_7d = r.try_get("flagged").map_err(ArchiveError::db(ACTION))?;
        }
        // Verdicts, on every analysis in the window.
        let verdicts = sqlx::query(&format!(
            "WITH {PER_JOB},
             reference AS (SELECT job_id, model, label, flagged FROM per WHERE shadow = 0),
             verdict AS (
                 SELECT ref.model, r.job_id, r.label,
                        CASE r.verdict WHEN 'agree' THEN ref.flagged ELSE 1 - ref.flagged END AS present
                 FROM reviews r JOIN reference ref ON ref.job_id = r.job_id AND ref.label = r.label
                 WHERE r.kind = 'feedback' AND r.id = (
                     SELECT MAX(id) FROM reviews l
                     WHERE l.kind = 'feedback' AND l.job_id = r.job_id AND l.label = r.label))
             SELECT per.model, per.version, per.shadow, per.label,
                    CAST(SUM(CASE WHEN per.flagged = 1 THEN 1 ELSE 0 END) AS BIGINT) AS flagged_reviewed,
                    CAST(SUM(CASE WHEN per.flagged = 1 AND v.present = 1 THEN 1 ELSE 0 END) AS BIGINT) AS flagged_confirmed,
                    CAST(SUM(CASE WHEN per.flagged = 0 THEN 1 ELSE 0 END) AS BIGINT) AS clear_reviewed,
                    CAST(SUM(CASE WHEN per.flagged = 0 AND v.present = 1 THEN 1 ELSE 0 END) AS BIGINT) AS missed
             FROM per JOIN verdict v ON v.job_id = per.job_id AND v.label = per.label AND v.model = per.model
             WHERE per.at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', $1)
             GROUP BY per.model, per.version, per.shadow, per.label"
        ))
        .bind(format!("-{days} days"))
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        for r in &verdicts {
            let k = key(r).map_err(ArchiveError::db(ACTION))?;
            let m = out.entry(k.clone()).or_insert_with(|| empty(&k));
            let get = |c: &str| r.try_get::<i64, _>(c).map_err(ArchiveError::db(ACTION));
            m.flagged_reviewed = get("flagged_reviewed")?;
            m.flagged_confirmed = get("flagged_confirmed")?;
            m.clear_reviewed = get("clear_reviewed")?;
            m.missed = get("missed")?;
        }
        // Score histograms: this week, and each version's first 28 days.
        let scores = sqlx::query(&format!(
            "WITH {PER_JOB},
             start AS (SELECT model, version, shadow, label, MIN(at) AS first FROM per
                       GROUP BY model, version, shadow, label)
             SELECT per.model, per.version, per.shadow, per.label, per.p,
                    CASE WHEN per.at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7 days') THEN 1 ELSE 0 END AS recent,
                    CASE WHEN per.at < strftime('%Y-%m-%dT%H:%M:%fZ', start.first, '+28 days') THEN 1 ELSE 0 END AS baseline
             FROM per JOIN start USING (model, version, shadow, label)"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(ArchiveError::db(ACTION))?;
        let mut baseline: BTreeMap<Key, Vec<i64>> = BTreeMap::new();
        for r in &scores {
            let k = key(r).map_err(ArchiveError::db(ACTION))?;
            let p: f64 = r.try_get("p").map_err(ArchiveError::db(ACTION))?;
            let recent: i64 = r.try_get("recent").map_err(ArchiveError::db(ACTION))?;
            let first: i64 = r.try_get("baseline").map_err(ArchiveError::db(ACTION))?;
            if recent != 0 {
                let m = out.entry(k.clone()).or_insert_with(|| empty(&k));
                m.scores_7d[bin(p)] += 1;
            }
            if first != 0 {
                baseline.entry(k).or_insert_with(|| vec![0; BINS])[bin(p)] += 1;
            }
        }
        for (k, m) in out.iter_mut() {
            m.ppv = ratio(m.flagged_confirmed, m.flagged_reviewed);
            m.missed_rate = ratio(m.missed, m.clear_reviewed);
            let validation = references.get(&(k.0.clone(), k.1.clone(), k.3.clone()));
            let (reference, source) = match (validation, baseline.get(k)) {
                (Some(v), _) => (Some(v.clone()), Some(ReferenceSource::Validation)),
                (None, Some(b)) => {
                    let total: i64 = b.iter().sum();
                    let fractions = b.iter().map(|&c| c as f64 / total.max(1) as f64).collect();
                    (Some(fractions), Some(ReferenceSource::Baseline))
                }
                (None, None) => (None, None),
            };
            m.psi = reference.as_deref().and_then(|r| psi(&m.scores_7d, r));
            m.drift_alert = m.psi.is_some_and(|p| p > alert);
            m.reference = reference;
            m.reference_source = source;
        }
        Ok(out.into_values().collect())
    }
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn empty(k: &Key) -> LabelMonitor {
    LabelMonitor {
        model: k.0.clone(),
        version: k.1.clone(),
        shadow: k.2,
        label: k.3.clone(),
        days: Vec::new(),
        studies_7d: 0,
        flagged_7d: 0,
        flagged_reviewed: 0,
        flagged_confirmed: 0,
        ppv: None,
        clear_reviewed: 0,
        missed: 0,
        missed_rate: None,
        scores_7d: vec![0; BINS],
        reference: None,
        reference_source: None,
        psi: None,
        drift_alert: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_is_zero_for_the_same_distribution_and_grows_with_a_shift() {
        let reference = [0.5, 0.3, 0.2];
        assert!(psi(&[50, 30, 20], &reference).unwrap().abs() < 1e-12);
        let shifted = psi(&[20, 30, 50], &reference).unwrap();
        // Σ (a-e) ln(a/e): 2 × 0.3 × ln(2.5) ≈ 0.5498.
        assert!((shifted - 0.6 * 2.5f64.ln()).abs() < 1e-9, "{shifted}");
        assert_eq!(psi(&[0, 0, 0], &reference), None);
    }
}
