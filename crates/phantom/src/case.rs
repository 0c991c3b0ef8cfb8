//! A case: one subject with its findings, drawn from a seed, and its
//! rendering as a radiograph.

use crate::detector::expose;
use crate::findings::{normal_ratio, Finding, Grade, Label};
use crate::raster::Grid;
use crate::rng::Rng;
use crate::subject::Subject;

/// How findings are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Mix {
    /// Each label independently present with this probability, its grade
    /// uniform over mild, moderate and severe.
    Random { prevalence: f64 },
    /// Exactly these findings (none: a normal chest).
    Exactly(Vec<(Label, Grade)>),
}

impl Default for Mix {
    fn default() -> Self {
        Mix::Random { prevalence: 0.3 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub seed: u64,
    pub subject: Subject,
    pub findings: Vec<Finding>,
    ratio: f64,
}

/// A rendered radiograph: stored values as a CR/DX reader writes them.
#[derive(Debug, Clone)]
pub struct Radiograph {
    pub columns: usize,
    pub rows: usize,
    /// mm per pixel (square pixels).
    pub pixel_spacing: f64,
    pub bits_stored: u16,
    pub monochrome1: bool,
    pub pixels: Vec<u16>,
    /// Per present finding, its pixels.
    pub masks: Vec<(Label, Vec<bool>)>,
}

impl Case {
    /// The case of `seed`: everything about it follows from the seed.
    pub fn sample(seed: u64, mix: &Mix) -> Case {
        let subject = Subject::sample(&mut Rng::derive(seed, 0));
        let mut rng = Rng::derive(seed, 2);
        let chosen: Vec<(Label, Grade)> = match mix {
            Mix::Random { prevalence } => Label::ALL
                .iter()
                .filter_map(|&l| {
                    let present = rng.chance(*prevalence);
                    let grade = Grade::ALL[rng.below(3)];
                    present.then_some((l, grade))
                })
                .collect(),
            Mix::Exactly(list) => list.clone(),
        };
        let findings: Vec<Finding> = chosen
            .iter()
            .map(|&(l, g)| Finding::sample(l, g, &mut Rng::derive(seed, 10 + l.index() as u64)))
            .collect();
        let ratio = findings
            .iter()
            .find_map(|f| match f {
                Finding::Cardiomegaly { ratio, .. } => Some(*ratio),
                _ => None,
            })
            .unwrap_or_else(|| normal_ratio(&mut rng));
        Case {
            seed,
            subject,
            findings,
            ratio,
        }
    }

    /// The grade of `label`, or `None` where it is absent.
    pub fn grade(&self, label: Label) -> Option<Grade> {
        self.findings
            .iter()
            .find(|f| f.label() == label)
            .map(|f| f.grade())
    }

    /// Ground truth in model order: 1 present, 0 absent.
    pub fn targets(&self) -> Vec<f32> {
        Label::ALL
            .iter()
            .map(|&l| self.grade(l).is_some() as u8 as f32)
            .collect()
    }

    /// The cardiothoracic ratio (before any AP magnification).
    pub fn cardiothoracic_ratio(&self) -> f64 {
        self.ratio
    }

    /// Detector size in mm (width, height): a 35 x 43 cm CR cassette in
    /// portrait, or a 43 x 43 cm flat panel.
    pub fn detector_mm(&self) -> (f64, f64) {
        if self.subject.vendor.modality == "CR" {
            (350.0, 430.0)
        } else {
            (430.0, 430.0)
        }
    }

    /// Render at `pitch` mm per pixel (0.2-0.4 for a realistic
    /// instance, a few mm for training).
    pub fn render(&self, pitch: f64, with_masks: bool) -> Radiograph {
        let (w, h) = self.detector_mm();
        let grid = Grid::covering(w, h, pitch);
        let att = self.attenuation(grid, with_masks);
        let pixels = expose(
            &att.cm,
            &grid,
            &self.subject,
            &mut Rng::derive(self.seed, 3),
        );
        Radiograph {
            columns: grid.columns,
            rows: grid.rows,
            pixel_spacing: pitch,
            bits_stored: self.subject.vendor.bits_stored,
            monochrome1: self.subject.vendor.monochrome1,
            pixels,
            masks: att.masks,
        }
    }
}

impl Radiograph {
    /// An 8-bit greyscale PNG as a viewer shows it (white = dense).
    pub fn to_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let maxval = ((1u32 << self.bits_stored) - 1) as f64;
        let grey: Vec<u8> = self
            .pixels
            .iter()
            .map(|&p| {
                let v = p as f64 / maxval;
                let v = if self.monochrome1 { 1.0 - v } else { v };
                (v * 255.0).round() as u8
            })
            .collect();
        encode_png(&grey, self.columns, self.rows)
    }

    /// A finding's mask as a black-and-white PNG, if the finding is present.
    pub fn mask_png(&self, label: Label) -> Option<Result<Vec<u8>, png::EncodingError>> {
        let (_, mask) = self.masks.iter().find(|(l, _)| *l == label)?;
        let grey: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
        Some(encode_png(&grey, self.columns, self.rows))
    }
}

pub fn encode_png(grey: &[u8], columns: usize, rows: usize) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, columns as u32, rows as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(grey)?;
    }
    Ok(out)
}
