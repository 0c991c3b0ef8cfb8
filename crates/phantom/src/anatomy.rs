//! The normal chest: geometry drawn from a subject, in patient millimetres
//! (x to the image's right, y down), and the lung-field query every
//! finding is drawn against.

use crate::findings::Side;
use crate::raster::smoothstep;
use crate::rng::Rng;
use crate::subject::{AgeBand, Sex, Subject, View};

/// Where a point lies in one lung field.
#[derive(Debug, Clone, Copy, Default)]
pub struct LungPoint {
    /// 0 outside, 1 well inside (soft over about 4 mm).
    pub occupancy: f64,
    /// Lung thickness along the beam (cm), before occupancy.
    pub depth: f64,
    /// 0 at the mediastinal edge, 1 at the chest wall.
    pub lateral: f64,
    /// 0 at the apex, 1 at the dome's top.
    pub height: f64,
    /// Distance (mm) inside the outer (chest wall and apical) boundary.
    pub outer_margin: f64,
}

/// The normal anatomy of one subject.
#[derive(Debug, Clone)]
pub struct Anatomy {
    /// Spine midline and mediastinal midline (rotation shifts the latter).
    pub spine_x: f64,
    pub mid_x: f64,
    pub apex_y: f64,
    pub lung_height: f64,
    /// Lung outer half-width at the base (thoracic half-width), mm.
    pub half_width: f64,
    /// Half-width of the mediastinum, mm.
    pub mediastinum: f64,
    /// Dome tops: right (image left) and left.
    pub dome_y: [f64; 2],
    pub dome_depth: f64,
    pub body_half: f64,
    pub neck_half: f64,
    /// Soft tissue thickness at the midline (cm).
    pub body_depth: f64,
    pub lung_depth: f64,
    /// Heart ellipse: centre and half-axes (mm), and its thickness (cm).
    pub heart: (f64, f64, f64, f64),
    pub heart_depth: f64,
    pub aorta: (f64, f64, f64),
    pub breast: Option<f64>,
    pub gastric_bubble: bool,
    pub bone_density: f64,
    pub rib_spacing: f64,
    pub clavicle_lift: f64,
    pub scapula_overlap: f64,
}

impl Anatomy {
    /// Draw the anatomy for `subject` on a detector `width x height` mm,
    /// with the heart at cardiothoracic ratio `ratio`.
    pub fn new(subject: &Subject, ratio: f64, width: f64, height: f64, rng: &mut Rng) -> Anatomy {
        let sex = match subject.sex {
            Sex::Male => 1.05,
            Sex::Female => 0.95,
        };
        let size = subject.size;
        let half_width = rng.gauss(138.0, 6.0) * size * sex;
        let lung_height = rng.gauss(255.0, 10.0) * subject.inspiration * size.sqrt() * sex;
        let spine_x = width / 2.0 + subject.offset_mm[0];
        let mid_x = spine_x + subject.rotation_mm;
        let apex_y = height / 2.0 - 0.55 * lung_height + subject.offset_mm[1];
        let dome_r = apex_y + lung_height;
        let dome_l = dome_r + rng.range(10.0, 25.0);
        // The projected heart: magnified in AP (further from the detector).
        let magnify = if subject.view == View::Ap { 1.06 } else { 1.0 };
        let heart_half = ratio * half_width * magnify;
        let heart_h = heart_half * rng.range(0.95, 1.1);
        let heart = (
            mid_x + 0.3 * heart_half,
            dome_l - 0.4 * heart_h,
            heart_half,
            heart_h,
        );
        let old = subject.age_band == AgeBand::Old;
        let aorta_r = rng.range(13.0, 17.0) * if old { 1.2 } else { 1.0 };
        let mediastinum = rng.gauss(24.0, 2.0) * size;
        Anatomy {
            spine_x,
            mid_x,
            apex_y,
            lung_height,
            half_width,
            mediastinum,
            dome_y: [dome_r, dome_l],
            dome_depth: rng.range(30.0, 48.0),
            body_half: half_width + rng.range(15.0, 40.0) * size,
            neck_half: rng.range(50.0, 62.0) * size,
            body_depth: rng.gauss(21.0, 1.5) * size,
            lung_depth: rng.gauss(13.5, 1.0) * size,
            heart,
            heart_depth: rng.range(6.5, 8.0),
            aorta: (
                mid_x + mediastinum + 0.35 * aorta_r,
                apex_y + 0.2 * lung_height,
                aorta_r,
            ),
            breast: (subject.sex == Sex::Female).then(|| rng.range(0.6, 1.3)),
            gastric_bubble: rng.chance(0.7),
            bone_density: if old { 0.8 } else { 1.0 } * rng.range(0.9, 1.1),
            rib_spacing: lung_height / rng.range(8.6, 9.6),
            clavicle_lift: if subject.view == View::Ap { 14.0 } else { 0.0 },
            scapula_overlap: if subject.view == View::Ap {
                30.0
            } else {
                -25.0
            },
        }
    }

    /// The outer (lateral) boundary's distance from the midline at height
    /// fraction `t`: narrow at the apex, full width from mid-lung down.
    pub fn lateral_extent(&self, t: f64) -> f64 {
        let m = self.mediastinum;
        m + (self.half_width - m) * (0.3 + 0.7 * (t.clamp(0.0, 1.0) / 0.6).min(1.0).sqrt())
    }

    /// The dome's height at lateral distance `d` on `side`.
    pub fn dome(&self, side: Side, d: f64) -> f64 {
        let top = self.dome_y[(side == Side::Left) as usize];
        let m = self.mediastinum;
        let peak = m + 0.45 * (self.half_width - m);
        if d > peak {
            top + self.dome_depth * ((d - peak) / (self.half_width - peak)).powi(2)
        } else {
            top + 0.6 * self.dome_depth * ((peak - d) / (peak - m)).powi(2)
        }
    }

    /// The lowest point of the costophrenic angle on `side`.
    pub fn costophrenic_y(&self, side: Side) -> f64 {
        self.dome(side, self.half_width)
    }

    /// The patient point at lateral fraction `f` and height fraction `t`
    /// of a lung.
    pub fn lung_to_patient(&self, side: Side, f: f64, t: f64) -> (f64, f64) {
        let y = self.apex_y + t * self.lung_height;
        let m = self.mediastinum;
        let d = m + f * (self.lateral_extent(t) - m);
        (self.lung_midline(side) + side.sign() * d, y)
    }

    fn lung_midline(&self, side: Side) -> f64 {
        // The lateral walls follow the spine; the medial edges the
        // mediastinum. Use their mean so rotation shifts both a little.
        match side {
            Side::Right => 0.5 * (self.spine_x + self.mid_x),
            Side::Left => 0.5 * (self.spine_x + self.mid_x),
        }
    }

    /// Where (x, y) lies in the lung on `side`.
    pub fn lung(&self, side: Side, x: f64, y: f64) -> LungPoint {
        let d = side.sign() * (x - self.lung_midline(side));
        let t = (y - self.apex_y) / self.lung_height;
        let m = self.mediastinum;
        if d < m - 6.0 || t < -0.1 {
            return LungPoint::default();
        }
        let lat = self.lateral_extent(t);
        // The apex is a rounded dome between the mediastinum and the wall.
        let mid = 0.5 * (m + lat);
        let half = 0.5 * (lat - m).max(1.0);
        let top = self.apex_y + 30.0 * ((d - mid) / half).powi(2);
        let bottom = self.dome(side, d);
        let outer = (lat - d).min(y - top);
        let margin = outer.min(d - m).min(bottom - y);
        let occupancy = smoothstep(-1.5, 2.5, margin);
        if occupancy <= 0.0 {
            return LungPoint::default();
        }
        let lateral = ((d - m) / (lat - m)).clamp(0.0, 1.0);
        let profile = (std::f64::consts::PI * lateral).sin().max(0.0).sqrt();
        let base = smoothstep(0.0, 40.0, bottom - y);
        LungPoint {
            occupancy,
            depth: self.lung_depth * (0.35 + 0.65 * profile) * (0.5 + 0.5 * base),
            lateral,
            height: t,
            outer_margin: outer,
        }
    }

    /// Soft tissue thickness (cm) of the body at (x, y).
    pub fn body(&self, x: f64, y: f64) -> f64 {
        let k = smoothstep(self.apex_y - 60.0, self.apex_y + 20.0, y);
        let half = self.neck_half + (self.body_half - self.neck_half) * k;
        let depth = self.body_depth * (0.55 + 0.45 * k);
        let dx = (x - self.spine_x) / half;
        if dx.abs() >= 1.0 {
            0.0
        } else {
            depth * (1.0 - dx * dx).sqrt()
        }
    }

    /// Heart thickness (cm) at (x, y).
    pub fn heart(&self, x: f64, y: f64) -> f64 {
        let (cx, cy, rx, ry) = self.heart;
        let r2 = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2);
        if r2 >= 1.0 {
            0.0
        } else {
            self.heart_depth * ((1.0 - r2).sqrt() / 0.35).min(1.0)
        }
    }

    /// Is (x, y) inside the heart's silhouette (for the cardiomegaly mask)?
    pub fn in_heart(&self, x: f64, y: f64) -> bool {
        let (cx, cy, rx, ry) = self.heart;
        ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) < 1.0
    }
}
