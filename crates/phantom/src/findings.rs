//! The findings the phantom can show, their graded severity, and the
//! parameters drawn for each.

use crate::rng::Rng;

/// A finding the bundled model is trained to detect. Order is the model's
/// output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    Effusion,
    Pneumothorax,
    Cardiomegaly,
    /// A nodule (under 30 mm) or, at the severe grade, a mass.
    Nodule,
    Consolidation,
}

impl Label {
    pub const ALL: [Label; 5] = [
        Label::Effusion,
        Label::Pneumothorax,
        Label::Cardiomegaly,
        Label::Nodule,
        Label::Consolidation,
    ];

    /// The name used in manifests, CSV columns and reports (the
    /// torchxrayvision spelling where one exists).
    pub fn name(self) -> &'static str {
        match self {
            Label::Effusion => "Effusion",
            Label::Pneumothorax => "Pneumothorax",
            Label::Cardiomegaly => "Cardiomegaly",
            Label::Nodule => "Nodule",
            Label::Consolidation => "Consolidation",
        }
    }

    pub fn index(self) -> usize {
        Label::ALL.iter().position(|&l| l == self).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grade {
    Mild,
    Moderate,
    Severe,
}

impl Grade {
    pub const ALL: [Grade; 3] = [Grade::Mild, Grade::Moderate, Grade::Severe];

    pub fn name(self) -> &'static str {
        match self {
            Grade::Mild => "mild",
            Grade::Moderate => "moderate",
            Grade::Severe => "severe",
        }
    }

    /// Pick a value from the grade's range: `ranges[grade]`.
    fn pick(self, rng: &mut Rng, ranges: [(f64, f64); 3]) -> f64 {
        let (lo, hi) = ranges[self as usize];
        rng.range(lo, hi)
    }
}

/// Which side of the patient (right appears on the image's left in both
/// PA and AP views, by display convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Right,
    Left,
}

impl Side {
    /// -1 for the image's left (patient's right), +1 for its right.
    pub fn sign(self) -> f64 {
        match self {
            Side::Right => -1.0,
            Side::Left => 1.0,
        }
    }

    fn sample(rng: &mut Rng) -> Side {
        if rng.chance(0.5) {
            Side::Right
        } else {
            Side::Left
        }
    }
}

/// A finding with the parameters that draw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Fluid height above the costophrenic angle (mm), per side.
    Effusion {
        grade: Grade,
        sides: Vec<(Side, f64)>,
    },
    /// Distance the visceral pleura has fallen from the chest wall (mm),
    /// and the fraction of the lung's height the gap extends down.
    Pneumothorax {
        grade: Grade,
        side: Side,
        gap_mm: f64,
        extent: f64,
    },
    /// The cardiothoracic ratio (positive above 0.5).
    Cardiomegaly { grade: Grade, ratio: f64 },
    /// Nodules: side, position in the lung (lateral fraction, height
    /// fraction) and diameter in mm.
    Nodule {
        grade: Grade,
        nodules: Vec<(Side, f64, f64, f64)>,
    },
    /// A patchy airspace opacity: side, centre (lateral, height fractions),
    /// radius (mm), density (0..1) and a seed for its shape.
    Consolidation {
        grade: Grade,
        side: Side,
        centre: (f64, f64),
        radius_mm: f64,
        density: f64,
        shape_seed: u64,
    },
}

impl Finding {
    pub fn label(&self) -> Label {
        match self {
            Finding::Effusion { .. } => Label::Effusion,
            Finding::Pneumothorax { .. } => Label::Pneumothorax,
            Finding::Cardiomegaly { .. } => Label::Cardiomegaly,
            Finding::Nodule { .. } => Label::Nodule,
            Finding::Consolidation { .. } => Label::Consolidation,
        }
    }

    pub fn grade(&self) -> Grade {
        match self {
            Finding::Effusion { grade, .. }
            | Finding::Pneumothorax { grade, .. }
            | Finding::Cardiomegaly { grade, .. }
            | Finding::Nodule { grade, .. }
            | Finding::Consolidation { grade, .. } => *grade,
        }
    }

    /// Draw a finding of `label` at `grade`.
    pub fn sample(label: Label, grade: Grade, rng: &mut Rng) -> Finding {
        match label {
            Label::Effusion => {
                let height =
                    |rng: &mut Rng| grade.pick(rng, [(8.0, 18.0), (25.0, 55.0), (60.0, 120.0)]);
                let sides = match rng.below(4) {
                    0 => vec![(Side::Right, height(rng)), (Side::Left, height(rng))],
                    _ => vec![(Side::sample(rng), height(rng))],
                };
                Finding::Effusion { grade, sides }
            }
            Label::Pneumothorax => Finding::Pneumothorax {
                grade,
                side: Side::sample(rng),
                gap_mm: grade.pick(rng, [(5.0, 12.0), (16.0, 32.0), (38.0, 70.0)]),
                extent: grade.pick(rng, [(0.3, 0.5), (0.55, 0.8), (0.85, 1.0)]),
            },
            Label::Cardiomegaly => Finding::Cardiomegaly {
                grade,
                ratio: grade.pick(rng, [(0.515, 0.55), (0.55, 0.6), (0.6, 0.68)]),
            },
            Label::Nodule => {
                let count = 1 + rng.below(if grade == Grade::Severe { 1 } else { 3 });
                let nodules = (0..count)
                    .map(|_| {
                        (
                            Side::sample(rng),
                            rng.range(0.25, 0.85),
                            rng.range(0.15, 0.8),
                            grade.pick(rng, [(7.0, 11.0), (12.0, 22.0), (28.0, 50.0)]),
                        )
                    })
                    .collect();
                Finding::Nodule { grade, nodules }
            }
            Label::Consolidation => Finding::Consolidation {
                grade,
                side: Side::sample(rng),
                centre: (rng.range(0.35, 0.75), rng.range(0.25, 0.8)),
                radius_mm: grade.pick(rng, [(18.0, 28.0), (32.0, 50.0), (55.0, 80.0)]),
                density: grade.pick(rng, [(0.3, 0.45), (0.5, 0.7), (0.75, 0.9)]),
                shape_seed: rng.next_u64(),
            },
        }
    }
}

/// The cardiothoracic ratio of a heart without cardiomegaly.
pub(crate) fn normal_ratio(rng: &mut Rng) -> f64 {
    rng.range(0.38, 0.48)
}
