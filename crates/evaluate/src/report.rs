//! The evaluation report: per label, per grade and per subgroup.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::metrics::{auroc, auroc_interval, calibration, roc_curve, Bin, Confusion};

/// One image's model output and ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Model probability per label, in the setup's label order.
    pub scores: Vec<f32>,
    /// Ground truth per label (`None`: not labelled, left out).
    pub truth: Vec<Option<bool>>,
    /// Severity grade of a positive label, where the data set gives one.
    pub grades: Vec<Option<String>>,
    /// Subgroup values: (column, value), e.g. ("sex", "F").
    pub groups: Vec<(String, String)>,
}

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct Setup {
    pub labels: Vec<String>,
    /// The model's operating threshold per label.
    pub thresholds: Vec<f32>,
    pub bootstrap_rounds: usize,
    pub seed: u64,
    /// A subgroup is flagged when its AUROC is this far below the whole
    /// and its interval's upper end is below the whole's AUROC.
    pub flag_margin: f64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            labels: Vec::new(),
            thresholds: Vec::new(),
            bootstrap_rounds: 1000,
            seed: 1,
            flag_margin: 0.05,
        }
    }
}

/// Metrics of one set of images for one label.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    pub n: usize,
    pub positives: usize,
    pub auroc: Option<f64>,
    pub auroc_ci95: Option<(f64, f64)>,
    pub confusion: Confusion,
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
    pub ppv: Option<f64>,
    pub npv: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GradeMetrics {
    /// Positives of this grade against all negatives.
    pub grade: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubgroupMetrics {
    pub column: String,
    pub value: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Well below the whole (see [`Setup::flag_margin`]).
    pub flagged: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelReport {
    pub label: String,
    pub threshold: f32,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Expected calibration error (10 bins) and the reliability curve.
    pub ece: f64,
    pub reliability: Vec<Bin>,
    /// ROC curve, at most 200 points.
    pub roc: Vec<(f64, f64)>,
    pub by_grade: Vec<GradeMetrics>,
    pub subgroups: Vec<SubgroupMetrics>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub images: usize,
    pub bootstrap_rounds: usize,
    pub labels: Vec<LabelReport>,
}

fn metrics(setup: &Setup, scores: &[f32], truth: &[bool], threshold: f32, salt: u64) -> Metrics {
    let c = Confusion::at(scores, truth, threshold);
    Metrics {
        n: scores.len(),
        positives: truth.iter().filter(|t| **t).count(),
        auroc: auroc(scores, truth),
        auroc_ci95: auroc_interval(scores, truth, setup.bootstrap_rounds, setup.seed ^ salt),
        confusion: c,
        sensitivity: c.sensitivity(),
        specificity: c.specificity(),
        ppv: c.ppv(),
        npv: c.npv(),
    }
}

fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let step = (points.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|i| points[(i as f64 * step).round() as usize])
        .collect()
}

/// Evaluate every label over `samples`.
pub fn evaluate(setup: &Setup, samples: &[Sample]) -> Report {
    let mut labels = Vec::new();
    for (i, label) in setup.labels.iter().enumerate() {
        let threshold = setup.thresholds.get(i).copied().unwrap_or(0.5);
        let known: Vec<&Sample> = samples.iter().filter(|s| s.truth[i].is_some()).collect();
        let scores: Vec<f32> = known.iter().map(|s| s.scores[i]).collect();
        let truth: Vec<bool> = known.iter().map(|s| s.truth[i] == Some(true)).collect();
        let salt = 1 + i as u64 * 1000;
        let whole = metrics(setup, &scores, &truth, threshold, salt);
        let (ece, reliability) = calibration(&scores, &truth, 10);

        let mut grades: Vec<String> = known
            .iter()
            .filter_map(|s| s.grades[i].clone())
            .filter(|g| !g.is_empty())
            .collect();
        grades.sort();
        grades.dedup();
        let by_grade = grades
            .iter()
            .enumerate()
            .map(|(g, grade)| {
                let pick: Vec<&&Sample> = known
                    .iter()
                    .filter(|s| s.truth[i] == Some(false) || s.grades[i].as_deref() == Some(grade))
                    .collect();
                let sc: Vec<f32> = pick.iter().map(|s| s.scores[i]).collect();
                let tr: Vec<bool> = pick.iter().map(|s| s.truth[i] == Some(true)).collect();
                GradeMetrics {
                    grade: grade.clone(),
                    metrics: metrics(setup, &sc, &tr, threshold, salt + 100 + g as u64),
                }
            })
            .collect();

        let mut groups: BTreeMap<(String, String), (Vec<f32>, Vec<bool>)> = BTreeMap::new();
        for (s, (&score, &t)) in known.iter().zip(scores.iter().zip(&truth)) {
            for (column, value) in &s.groups {
                let e = groups.entry((column.clone(), value.clone())).or_default();
                e.0.push(score);
                e.1.push(t);
            }
        }
        let subgroups = groups
            .into_iter()
            .enumerate()
            .map(|(g, ((column, value), (sc, tr)))| {
                let m = metrics(setup, &sc, &tr, threshold, salt + 500 + g as u64);
                let flagged = match (whole.auroc, m.auroc, m.auroc_ci95) {
                    (Some(w), Some(a), Some((_, hi))) => a < w - setup.flag_margin && hi < w,
                    _ => false,
                };
                SubgroupMetrics {
                    column,
                    value,
                    metrics: m,
                    flagged,
                }
            })
            .collect();

        labels.push(LabelReport {
            label: label.clone(),
            threshold,
            roc: thin(roc_curve(&scores, &truth), 200),
            metrics: whole,
            ece,
            reliability,
            by_grade,
            subgroups,
        });
    }
    Report {
        images: samples.len(),
        bootstrap_rounds: setup.bootstrap_rounds,
        labels,
    }
}
