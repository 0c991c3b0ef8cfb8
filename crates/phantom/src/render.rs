//! From a case to a map of attenuation (cm of water-equivalent tissue along
//! each ray) and the findings' ground-truth masks.

use std::f64::consts::PI;

use crate::anatomy::Anatomy;
use crate::case::Case;
use crate::findings::{Finding, Label, Side};
use crate::raster::{chord_cm, smoothstep, stroke, value_noise, Grid};
use crate::rng::Rng;

/// Bone attenuates about twice as much as soft tissue per cm.
const BONE: f64 = 1.9;
/// The fraction of the lung's volume that is air (the rest is tissue).
const AIR_FRACTION: f64 = 0.8;

/// Attenuation and masks on one grid.
pub struct Attenuation {
    pub grid: Grid,
    /// cm water equivalent, row-major.
    pub cm: Vec<f32>,
    /// Per present finding, the pixels it covers.
    pub masks: Vec<(Label, Vec<bool>)>,
}

/// A rigid map between detector (image) and patient millimetres: the
/// patient's tilt about the detector's centre.
struct Placement {
    centre: (f64, f64),
    cos: f64,
    sin: f64,
}

impl Placement {
    fn to_patient(&self, p: (f64, f64)) -> (f64, f64) {
        let (dx, dy) = (p.0 - self.centre.0, p.1 - self.centre.1);
        (
            self.centre.0 + self.cos * dx + self.sin * dy,
            self.centre.1 - self.sin * dx + self.cos * dy,
        )
    }

    fn to_image(&self, p: (f64, f64)) -> (f64, f64) {
        let (dx, dy) = (p.0 - self.centre.0, p.1 - self.centre.1);
        (
            self.centre.0 + self.cos * dx - self.sin * dy,
            self.centre.1 + self.sin * dx + self.cos * dy,
        )
    }
}

fn bone_tube(d: f64, r: f64) -> f64 {
    // Cortex denser than marrow: a tube minus part of its core.
    chord_cm(r, d) - 0.55 * chord_cm(0.7 * r, d)
}

fn vessel_tube(d: f64, r: f64) -> f64 {
    // The vessel and the interstitium around it.
    2.0 * chord_cm(r, d)
}

/// Draw ribs, clavicles and (later, per pixel) spine and scapulae.
fn draw_bones(a: &Anatomy, place: &Placement, grid: &Grid, buf: &mut [f32]) {
    let img = |pts: Vec<(f64, f64)>| {
        pts.into_iter()
            .map(|p| place.to_image(p))
            .collect::<Vec<_>>()
    };
    for side in [Side::Right, Side::Left] {
        let s = side.sign();
        let wall = a.half_width + 8.0;
        for i in 0..12 {
            let y0 = a.apex_y - 14.0 + i as f64 * a.rib_spacing;
            let post = |d: f64| y0 - 0.12 * d + 0.0024 * d * d;
            let back: Vec<_> = (0..=12)
                .map(|k| {
                    let d = 14.0 + (wall - 14.0) * k as f64 / 12.0;
                    (a.spine_x + s * d, post(d))
                })
                .collect();
            stroke(grid, buf, &img(back), 5.5, 5.0, bone_tube);
            let y_end = post(wall);
            let front: Vec<_> = (0..=8)
                .map(|k| {
                    let d = wall - (wall - 45.0) * k as f64 / 8.0;
                    (a.spine_x + s * d, y_end + 0.5 * (wall - d))
                })
                .collect();
            stroke(grid, buf, &img(front), 6.0, 5.0, |d, r| {
                0.45 * bone_tube(d, r)
            });
        }
        let lift = a.clavicle_lift;
        let clavicle: Vec<_> = (0..=12)
            .map(|k| {
                let f = k as f64 / 12.0;
                let d = 18.0 + (a.half_width + 10.0) * f;
                let y =
                    a.apex_y + 18.0 - lift - (30.0 - 0.5 * lift) * f + 5.0 * (2.0 * PI * f).sin();
                (a.mid_x + s * d, y)
            })
            .collect();
        stroke(grid, buf, &img(clavicle), 7.0, 6.0, bone_tube);
    }
}

/// Pulmonary vessels (into `vessels`) and the bronchi beside the larger
/// ones (into `bronchi`, seen only as air bronchograms in consolidation).
fn draw_airways(
    a: &Anatomy,
    place: &Placement,
    grid: &Grid,
    vessels: &mut [f32],
    bronchi: &mut [f32],
    rng: &mut Rng,
) {
    for side in [Side::Right, Side::Left] {
        let s = side.sign();
        let hilum = a.lung_to_patient(side, 0.08, 0.42);
        for k in 0..6 {
            let angle = (-65.0 + 28.0 * k as f64 + rng.range(-8.0, 8.0)).to_radians();
            let mut stack = vec![(hilum, angle, rng.range(40.0, 55.0), 4.5, 0)];
            while let Some((p, ang, len, r, depth)) = stack.pop() {
                let q = (p.0 + s * len * ang.cos(), p.1 + len * ang.sin());
                let seg = [place.to_image(p), place.to_image(q)];
                stroke(grid, vessels, &seg, r, r * 0.8, vessel_tube);
                if depth < 2 {
                    let off = (-(ang.sin()) * s * 2.2 * r, ang.cos() * 2.2 * r);
                    let b = [
                        place.to_image((p.0 + off.0, p.1 + off.1)),
                        place.to_image((q.0 + off.0, q.1 + off.1)),
                    ];
                    stroke(grid, bronchi, &b, 0.9 * r, 0.7 * r, vessel_tube);
                }
                if depth < 3 {
                    for turn in [-1.0, 1.0] {
                        let da = turn * rng.range(15.0, 35.0).to_radians();
                        stack.push((q, ang + da, len * rng.range(0.65, 0.8), r * 0.68, depth + 1));
                    }
                }
            }
        }
    }
}

impl Case {
    /// Attenuation of this case on `grid`; masks when asked.
    pub fn attenuation(&self, grid: Grid, with_masks: bool) -> Attenuation {
        let (width, height) = self.detector_mm();
        let mut rng = Rng::derive(self.seed, 1);
        let a = Anatomy::new(
            &self.subject,
            self.cardiothoracic_ratio(),
            width,
            height,
            &mut rng,
        );
        let theta = self.subject.tilt_deg.to_radians();
        let place = Placement {
            centre: (width / 2.0, height / 2.0),
            cos: theta.cos(),
            sin: theta.sin(),
        };
        let mut bones = vec![0f32; grid.len()];
        let mut vessels = vec![0f32; grid.len()];
        let mut bronchi = vec![0f32; grid.len()];
        draw_bones(&a, &place, &grid, &mut bones);
        draw_airways(&a, &place, &grid, &mut vessels, &mut bronchi, &mut rng);

        let mut masks: Vec<(Label, Vec<bool>)> = if with_masks {
            self.findings
                .iter()
                .map(|f| f.label())
                .fold(Vec::new(), |mut v, l| {
                    if !v.iter().any(|(x, _)| *x == l) {
                        v.push((l, vec![false; grid.len()]));
                    }
                    v
                })
        } else {
            Vec::new()
        };
        let mut mark = |label: Label, k: usize| {
            if let Some((_, m)) = masks.iter_mut().find(|(l, _)| *l == label) {
                m[k] = true;
            }
        };

        let mut cm = vec![0f32; grid.len()];
        for row in 0..grid.rows {
            for col in 0..grid.columns {
                let k = row * grid.columns + col;
                let (x, y) = place.to_patient(grid.centre(col, row));
                let mut soft = a.body(x, y);
                if soft <= 0.0 {
                    continue;
                }
                let mut bone = bones[k] as f64 + spine(&a, x, y) + scapulae(&a, x, y);
                let mut air = 0.0;
                let mut extra = 0.0;
                for side in [Side::Right, Side::Left] {
                    let lp = a.lung(side, x, y);
                    if lp.occupancy <= 0.0 {
                        continue;
                    }
                    let mut lung = lp.occupancy * lp.depth * AIR_FRACTION;
                    let mut vessel = vessels[k] as f64;
                    for f in &self.findings {
                        match f {
                            Finding::Pneumothorax {
                                side: s,
                                gap_mm,
                                extent,
                                ..
                            } if *s == side => {
                                let taper =
                                    1.0 - smoothstep(extent - 0.1, extent + 0.02, lp.height);
                                let r =
                                    smoothstep(gap_mm + 1.5, gap_mm - 1.5, lp.outer_margin) * taper;
                                // No lung in the gap: all air, no markings;
                                // the collapsed lung a little denser.
                                lung = lung * (1.0 - r) * 0.97 + r * lp.occupancy * lp.depth;
                                vessel *= 1.0 - r;
                                extra += 0.3
                                    * taper
                                    * lp.occupancy
                                    * (-((lp.outer_margin - gap_mm) / 0.9).powi(2)).exp();
                                if r > 0.5 {
                                    mark(Label::Pneumothorax, k);
                                }
                            }
                            _ => {}
                        }
                    }
                    lung -= vessel * lp.occupancy;
                    for f in &self.findings {
                        match f {
                            Finding::Effusion { sides, .. } => {
                                for &(s, h) in sides.iter().filter(|(s, _)| *s == side) {
                                    let _ = s;
                                    let level =
                                        a.costophrenic_y(side) - h - 0.4 * h * lp.lateral.powi(2);
                                    let w = smoothstep(level - 6.0, level + 14.0, y);
                                    let fluid =
                                        w * lp.occupancy * (4.0 + 0.08 * (y - level).max(0.0));
                                    lung -= fluid;
                                    if w > 0.5 && lp.occupancy > 0.5 {
                                        mark(Label::Effusion, k);
                                    }
                                }
                            }
                            Finding::Consolidation {
                                side: s,
                                centre,
                                radius_mm,
                                density,
                                shape_seed,
                                ..
                            } if *s == side => {
                                let (cx, cy) = a.lung_to_patient(side, centre.0, centre.1);
                                let rho = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() / radius_mm;
                                if rho < 1.0 {
                                    let n = 0.65 * value_noise(*shape_seed, x / 14.0, y / 14.0)
                                        + 0.35 * value_noise(shape_seed ^ 1, x / 6.0, y / 6.0);
                                    let o = smoothstep(0.1, 0.6, 0.8 * (1.0 - rho) + 0.5 * n - 0.2)
                                        * lp.occupancy;
                                    let before = lung.max(0.0);
                                    lung -= o * density * before;
                                    lung += o * density * bronchi[k] as f64;
                                    if o > 0.3 {
                                        mark(Label::Consolidation, k);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    air += lung.max(0.0);
                }
                // Mediastinal and cardiac soft tissue displaces the lung
                // behind and in front of it.
                air = (air - a.heart(x, y) - aorta_and_hila(&a, x, y)).max(0.0);
                for f in &self.findings {
                    if let Finding::Nodule { nodules, .. } = f {
                        for &(side, lf, lt, diameter) in nodules {
                            let (cx, cy) = a.lung_to_patient(side, lf, lt);
                            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                            let chord = chord_cm(diameter / 2.0, d);
                            if chord > 0.0 {
                                air = (air - chord).max(0.0);
                                soft += 0.2 * chord;
                                mark(Label::Nodule, k);
                            }
                        }
                    }
                }
                if with_masks
                    && self
                        .findings
                        .iter()
                        .any(|f| f.label() == Label::Cardiomegaly)
                    && a.in_heart(x, y)
                {
                    mark(Label::Cardiomegaly, k);
                }
                air += trachea_and_bubble(&a, x, y);
                soft += breasts(&a, x, y);
                bone *= a.bone_density;
                cm[k] = (soft + BONE * bone + extra - air).max(0.0) as f32;
            }
        }
        Attenuation { grid, cm, masks }
    }
}

fn spine(a: &Anatomy, x: f64, y: f64) -> f64 {
    let body = chord_cm(20.0, (x - a.spine_x).abs());
    if body <= 0.0 {
        return 0.0;
    }
    // Vertebral bodies with fainter discs between them.
    let phase = ((y - a.apex_y) / 26.0 * PI).sin().powi(2);
    0.45 * body * (0.7 + 0.3 * phase)
}

fn scapulae(a: &Anatomy, x: f64, y: f64) -> f64 {
    let mut b = 0.0;
    for s in [-1.0, 1.0] {
        let cx = a.spine_x + s * (a.half_width + 25.0 - a.scapula_overlap);
        let cy = a.apex_y + 0.3 * a.lung_height;
        let r2 = ((x - cx) / 32.0).powi(2) + ((y - cy) / 75.0).powi(2);
        if r2 < 1.0 {
            b += 0.35 * (1.0 - r2).sqrt();
        }
    }
    b
}

fn aorta_and_hila(a: &Anatomy, x: f64, y: f64) -> f64 {
    let (ax, ay, ar) = a.aorta;
    let mut t = 2.5 * chord_cm(ar, ((x - ax).powi(2) + (y - ay).powi(2)).sqrt()) / (0.2 * ar);
    for side in [Side::Right, Side::Left] {
        let (hx, hy) = a.lung_to_patient(side, 0.05, 0.42);
        let d = ((x - hx).powi(2) + (y - hy).powi(2)).sqrt();
        t += 2.0 * chord_cm(16.0, d) / 3.2;
    }
    t
}

fn trachea_and_bubble(a: &Anatomy, x: f64, y: f64) -> f64 {
    let carina = a.apex_y + 0.33 * a.lung_height;
    let mut air = chord_cm(8.0, (x - a.mid_x).abs()) * (1.0 - smoothstep(carina - 10.0, carina, y));
    if a.gastric_bubble {
        let (cx, cy) = (a.spine_x + 0.45 * a.half_width, a.dome_y[1] + 25.0);
        let r2 = ((x - cx) / 28.0).powi(2) + ((y - cy) / 15.0).powi(2);
        if r2 < 1.0 {
            air += 3.0 * (1.0 - r2).sqrt();
        }
    }
    air
}

fn breasts(a: &Anatomy, x: f64, y: f64) -> f64 {
    let Some(b) = a.breast else { return 0.0 };
    let mut t = 0.0;
    for s in [-1.0, 1.0] {
        let cx = a.spine_x + s * 0.55 * a.half_width;
        let cy = a.dome_y[0] + 5.0;
        let r2 =
            ((x - cx) / (0.5 * a.half_width * b.sqrt())).powi(2) + ((y - cy) / (60.0 * b)).powi(2);
        if r2 < 1.0 {
            t += 3.5 * b * (1.0 - r2).sqrt();
        }
    }
    t
}
