//! Synthetic non-contrast head CT: axial slices in Hounsfield units with
//! intracranial haemorrhage of five types and three sizes, and mimics that
//! are not bleeding.
//!
//! The head is analytic, in patient coordinates (LPS, mm; x to the
//! patient's left, y posterior, z superior): scalp, skull with diploë,
//! a thin CSF layer under the inner table, cortex with sulci, white
//! matter, deep grey nuclei, lateral, third and fourth ventricles, the
//! falx, basal cisterns, frontal and sphenoid sinuses and mastoid air
//! cells. A slice averages the field over its thickness (partial volume);
//! the vendor's kernel blurs in plane and adds noise; the skull base gets
//! beam-hardening-like dark streaks. Acute blood is 50-90 HU; a large
//! bleed shifts the midline away from itself and compresses the
//! ipsilateral ventricle. Everything follows from a seed.

use crate::rng::Rng;

/// A haemorrhage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bleed {
    Intraparenchymal,
    Subdural,
    Epidural,
    Subarachnoid,
    Intraventricular,
}

impl Bleed {
    pub const ALL: [Bleed; 5] = [
        Bleed::Intraparenchymal,
        Bleed::Subdural,
        Bleed::Epidural,
        Bleed::Subarachnoid,
        Bleed::Intraventricular,
    ];

    /// The short name used in labels.csv and model labels.
    pub fn name(self) -> &'static str {
        match self {
            Bleed::Intraparenchymal => "intraparenchymal",
            Bleed::Subdural => "subdural",
            Bleed::Epidural => "epidural",
            Bleed::Subarachnoid => "subarachnoid",
            Bleed::Intraventricular => "intraventricular",
        }
    }
}

/// A bleed's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

/// Dense or dark things that are not bleeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mimic {
    PinealCalcification,
    ChoroidPlexusCalcification,
    FalxCalcification,
    Streaks,
}

impl Mimic {
    pub const ALL: [Mimic; 4] = [
        Mimic::PinealCalcification,
        Mimic::ChoroidPlexusCalcification,
        Mimic::FalxCalcification,
        Mimic::Streaks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mimic::PinealCalcification => "pineal_calcification",
            Mimic::ChoroidPlexusCalcification => "choroid_calcification",
            Mimic::FalxCalcification => "falx_calcification",
            Mimic::Streaks => "streaks",
        }
    }
}

/// One bleed: where, how big, how dense.
#[derive(Debug, Clone, PartialEq)]
pub struct Haemorrhage {
    pub kind: Bleed,
    pub size: Size,
    /// -1: the patient's right, +1: left.
    pub side: f64,
    /// A reference point (mm, patient coordinates).
    pub centre: [f64; 3],
    /// Radius, thickness or extent in mm, by type.
    pub extent: f64,
    pub hu: f64,
}

/// A fictitious CT scanner and reconstruction kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtVendor {
    pub manufacturer: &'static str,
    pub model: &'static str,
    pub kernel: &'static str,
    /// Noise standard deviation in HU.
    pub noise: f64,
    /// Weight of the centre pixel in the 3 x 3 kernel (1: no blur).
    pub sharpness: f64,
    /// Signed storage with intercept 0, or unsigned with -1024.
    pub signed: bool,
}

pub const CT_VENDORS: [CtVendor; 3] = [
    CtVendor {
        manufacturer: "Phantom Tomography",
        model: "PT-64",
        kernel: "H30s",
        noise: 4.0,
        sharpness: 0.5,
        signed: false,
    },
    CtVendor {
        manufacturer: "Imaginary Medical",
        model: "IM Axial 128",
        kernel: "BRAIN",
        noise: 6.0,
        sharpness: 0.7,
        signed: true,
    },
    CtVendor {
        manufacturer: "Notional Systems",
        model: "NS Spiral",
        kernel: "FC21",
        noise: 3.0,
        sharpness: 0.35,
        signed: false,
    },
];

/// Slice thicknesses: the routine 5 mm series and thin reconstructions.
pub const THICKNESSES: [f64; 4] = [5.0, 0.625, 1.0, 1.25];

/// What to draw cases from.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadMix {
    /// Probability that a study has a haemorrhage.
    pub bleed: f64,
    /// Probability of each mimic.
    pub mimic: f64,
    /// Probability that the study also has a thin series (beside the
    /// routine 5 mm one).
    pub thin: f64,
    /// Image side in pixels (512 in practice; smaller for tests).
    pub matrix: usize,
}

impl Default for HeadMix {
    fn default() -> Self {
        HeadMix {
            bleed: 0.5,
            mimic: 0.3,
            thin: 0.3,
            matrix: 512,
        }
    }
}

/// One study: a subject, a scanner, and what is in the head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadCase {
    pub seed: u64,
    pub vendor: CtVendor,
    pub age: u32,
    pub female: bool,
    /// The slice thickness this case renders (the routine 5 mm series;
    /// [`HeadCase::thin_series`] gives the same head at the thin one).
    pub thickness: f64,
    /// The thin reconstruction's thickness, if the study has one.
    pub thin: Option<f64>,
    pub matrix: usize,
    /// Field of view (mm, square).
    pub fov: f64,
    /// Head size factor (1 = the reference adult).
    pub scale: f64,
    pub bleeds: Vec<Haemorrhage>,
    pub mimics: Vec<Mimic>,
    /// Midline shift (mm, + towards the patient's left).
    pub shift: f64,
}

/// First and last slice positions (z, mm): skull base to vertex.
const Z_FIRST: f64 = -55.0;
const Z_LAST: f64 = 85.0;
/// The brain's half-axes (mm) and centre height.
const BRAIN: [f64; 3] = [68.0, 86.0, 70.0];
const BRAIN_Z: f64 = 12.0;
const SKULL: f64 = 6.5;
const SCALP: f64 = 5.0;

/// Tissue values (HU).
const CSF: f64 = 6.0;
const GREY: f64 = 38.0;
const WHITE: f64 = 28.0;
const DEEP_GREY: f64 = 35.0;
const BONE: f64 = 1250.0;
const DIPLOE: f64 = 650.0;
const SOFT: f64 = 35.0;
const FAT: f64 = -90.0;
const AIR: f64 = -1000.0;

/// One rendered slice.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSlice {
    /// Slice centre (z, mm).
    pub z: f64,
    /// `matrix x matrix` HU, rows anterior to posterior, columns the
    /// patient's right to left.
    pub hu: Vec<i16>,
    /// Each bleed's mask on this slice (pixels whose column through the
    /// slice's thickness meets it).
    pub masks: Vec<(Bleed, Vec<bool>)>,
}

impl HeadCase {
    pub fn sample(seed: u64, mix: &HeadMix) -> HeadCase {
        let mut r = Rng::derive(seed, 0x4EAD);
        let vendor = CT_VENDORS[r.below(CT_VENDORS.len())];
        let thin = r.chance(mix.thin).then(|| THICKNESSES[1 + r.below(3)]);
        let scale = r.range(0.9, 1.08);
        let mut bleeds = Vec::new();
        if r.chance(mix.bleed) {
            let n = if r.chance(0.15) { 2 } else { 1 };
            for _ in 0..n {
                let kind = Bleed::ALL[r.below(5)];
                let size = Size::ALL[r.below(3)];
                bleeds.push(haemorrhage(&mut r, kind, size, scale));
            }
        }
        let mimics = Mimic::ALL
            .iter()
            .copied()
            .filter(|_| r.chance(mix.mimic))
            .collect();
        // Mass effect: a large bleed (other than blood in the ventricles
        // or sulci) pushes the midline away from itself.
        let shift = bleeds
            .iter()
            .filter(|b| {
                b.size == Size::Large
                    && matches!(
                        b.kind,
                        Bleed::Intraparenchymal | Bleed::Subdural | Bleed::Epidural
                    )
            })
            .map(|b| -b.side * r.range(4.0, 10.0))
            .next()
            .unwrap_or(0.0);
        HeadCase {
            seed,
            vendor,
            age: 18 + r.below(72) as u32,
            female: r.chance(0.5),
            thickness: THICKNESSES[0],
            thin,
            matrix: mix.matrix,
            fov: 230.0,
            scale,
            bleeds,
            mimics,
            shift,
        }
    }

    /// The same head as the study's thin series, if it has one.
    pub fn thin_series(&self) -> Option<HeadCase> {
        self.thin.map(|t| HeadCase {
            thickness: t,
            ..self.clone()
        })
    }

    /// Series Number of the series this case renders: 2 for the routine
    /// series, 3 for the thin one.
    pub fn series_number(&self) -> u32 {
        if self.thickness >= THICKNESSES[0] {
            2
        } else {
            3
        }
    }

    pub fn any(&self) -> bool {
        !self.bleeds.is_empty()
    }

    /// The largest size of a type (none: the type is absent).
    pub fn size(&self, kind: Bleed) -> Option<Size> {
        self.bleeds
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| b.size)
            .max()
    }

    /// The largest bleed's size.
    pub fn largest(&self) -> Option<Size> {
        self.bleeds.iter().map(|b| b.size).max()
    }

    pub fn pixel_spacing(&self) -> f64 {
        self.fov / self.matrix as f64
    }

    /// Slice centres, skull base to vertex, contiguous.
    pub fn slice_positions(&self) -> Vec<f64> {
        let n = ((Z_LAST - Z_FIRST) / self.thickness).round() as usize;
        (0..n)
            .map(|i| Z_FIRST + (i as f64 + 0.5) * self.thickness)
            .collect()
    }

    /// The (x, y) of pixel (row, column) centres.
    fn xy(&self, row: usize, column: usize) -> (f64, f64) {
        let s = self.pixel_spacing();
        let half = self.fov / 2.0;
        (
            -half + (column as f64 + 0.5) * s,
            -half + (row as f64 + 0.5) * s,
        )
    }

    /// Render slice `index` of [`HeadCase::slice_positions`].
    pub fn render_slice(&self, index: usize) -> CtSlice {
        let z = self.slice_positions()[index];
        let n = self.matrix;
        // Partial volume: the field averaged at 1.25 mm steps over the
        // slice's thickness.
        let steps = (self.thickness / 1.25).ceil().max(1.0) as usize;
        let zs: Vec<f64> = (0..steps)
            .map(|k| z - self.thickness / 2.0 + (k as f64 + 0.5) * self.thickness / steps as f64)
            .collect();
        let mut field = vec![0f64; n * n];
        let mut masks: Vec<(Bleed, Vec<bool>)> = self
            .bleeds
            .iter()
            .map(|b| (b.kind, vec![false; n * n]))
            .collect();
        for row in 0..n {
            for column in 0..n {
                let (x, y) = self.xy(row, column);
                let mut sum = 0.0;
                for &zz in &zs {
                    let (hu, inside) = self.hu_at([x, y, zz]);
                    sum += hu;
                    for i in inside {
                        masks[i].1[row * n + column] = true;
                    }
                }
                field[row * n + column] = sum / steps as f64;
            }
        }
        let mut rng = Rng::derive(self.seed, 0x511C_E000 + index as u64);
        let hu = self.scanner(&field, z, &mut rng);
        CtSlice { z, hu, masks }
    }

    /// The vendor's kernel (a 3 x 3 blur), streaks at the skull base,
    /// noise, rounding to the scanner's range.
    fn scanner(&self, field: &[f64], z: f64, rng: &mut Rng) -> Vec<i16> {
        let n = self.matrix;
        let w = self.vendor.sharpness;
        let side = (1.0 - w) / 8.0;
        let streaks = self.streaks(z, rng);
        let mut out = vec![0i16; n * n];
        for row in 0..n {
            for column in 0..n {
                let mut v = 0.0;
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let rr = (row as i64 + dy).clamp(0, n as i64 - 1) as usize;
                        let cc = (column as i64 + dx).clamp(0, n as i64 - 1) as usize;
                        let k = if dx == 0 && dy == 0 { w } else { side };
                        v += k * field[rr * n + cc];
                    }
                }
                let (x, y) = self.xy(row, column);
                for &(a, b, c, depth) in &streaks {
                    // Distance from the line a x + b y = c.
                    let d = (a * x + b * y - c).abs();
                    v += depth * (-d * d / 2.0).exp();
                }
                if v > -990.0 {
                    v += rng.gauss(0.0, self.vendor.noise);
                }
                out[row * n + column] = v.round().clamp(-1024.0, 3071.0) as i16;
            }
        }
        out
    }

    /// Dark lines (a, b, c, depth HU): between the petrous bones at the
    /// skull base in every head; across the brain with the streaks mimic.
    fn streaks(&self, z: f64, rng: &mut Rng) -> Vec<(f64, f64, f64, f64)> {
        let mut lines = Vec::new();
        let line = |angle: f64, offset: f64, depth: f64| (angle.sin(), -angle.cos(), offset, depth);
        if (-45.0..-15.0).contains(&z) {
            lines.push(line(0.0, 25.0 * self.scale, -45.0));
            lines.push(line(0.12, 18.0 * self.scale, -30.0));
        }
        if self.mimics.contains(&Mimic::Streaks) {
            for _ in 0..3 {
                let depth = if rng.chance(0.5) { -60.0 } else { 45.0 };
                lines.push(line(
                    rng.range(0.0, std::f64::consts::PI),
                    rng.range(-40.0, 40.0),
                    depth,
                ));
            }
        }
        lines
    }

    /// The field at a point, and the indices of the bleeds it lies in.
    pub fn hu_at(&self, p: [f64; 3]) -> (f64, Vec<usize>) {
        let s = self.scale;
        let [x, y, z] = p;
        let (a, b, c) = (BRAIN[0] * s, BRAIN[1] * s, BRAIN[2] * s);
        let zc = z - BRAIN_Z;
        let r = ((x / a).powi(2) + (y / b).powi(2) + (zc / c).powi(2)).sqrt();
        let radius = (x * x + y * y + zc * zc).sqrt();
        let local = if r > 0.0 { radius / r } else { a };
        let depth = (1.0 - r) * local; // mm under the inner table
        if depth < 0.0 {
            let out = -depth;
            return (self.outside(p, out), Vec::new());
        }
        let mut inside = Vec::new();
        let mut hu = self.brain(p, depth);
        for (i, bl) in self.bleeds.iter().enumerate() {
            if let Some(v) = self.bleed_at(bl, p, depth, hu) {
                hu = v;
                inside.push(i);
            }
        }
        (hu, inside)
    }

    /// Outside the inner table: skull (with diploë, sinuses and mastoid
    /// air cells), scalp, air.
    fn outside(&self, p: [f64; 3], out: f64) -> f64 {
        let s = self.scale;
        let [x, y, z] = p;
        // The skull base is thicker.
        let skull = SKULL * if z < -20.0 { 2.2 } else { 1.0 };
        if out < skull {
            let sinus = |c: [f64; 3], r: [f64; 3]| {
                ((x - c[0] * s) / r[0]).powi(2)
                    + ((y - c[1] * s) / r[1]).powi(2)
                    + ((z - c[2]) / r[2]).powi(2)
                    < 1.0
            };
            if sinus([0.0, -84.0, -8.0], [14.0, 6.0, 12.0]) {
                return AIR + 60.0;
            }
            if sinus([62.0, 22.0, -32.0], [8.0, 10.0, 9.0])
                || sinus([-62.0, 22.0, -32.0], [8.0, 10.0, 9.0])
            {
                // Mastoid cells: air with thin bony septa.
                let septa = ((x * 1.3).sin() * (y * 1.1).sin() * (z * 0.9).sin()).abs();
                return if septa < 0.25 { BONE * 0.6 } else { -700.0 };
            }
            let mid = (out / skull - 0.5).abs();
            return if mid < 0.2 { DIPLOE } else { BONE };
        }
        let scalp = out - skull;
        if scalp < SCALP {
            return if !(1.5..=SCALP - 1.0).contains(&scalp) {
                SOFT
            } else {
                FAT
            };
        }
        AIR
    }

    /// Inside the skull: CSF layer, cortex and sulci, white matter, deep
    /// grey, ventricles, falx, cisterns, and the mimics.
    fn brain(&self, p: [f64; 3], depth: f64) -> f64 {
        let s = self.scale;
        let [x, y, z] = p;
        let xm = x - self.shift * self.shift_falloff(p);
        if self.mimics.contains(&Mimic::PinealCalcification)
            && (xm / 3.0).powi(2) + ((y - 22.0 * s) / 3.5).powi(2) + ((z - 6.0) / 3.0).powi(2) < 1.0
        {
            return 260.0;
        }
        // The falx: midline dura above the corpus callosum, front to back.
        if xm.abs() < 0.8 && z > 20.0 && y.abs() < 80.0 * s {
            if self.mimics.contains(&Mimic::FalxCalcification)
                && (20.0..50.0).contains(&z)
                && (-40.0..-10.0).contains(&y)
            {
                return 420.0;
            }
            return 48.0;
        }
        if self.in_ventricle(p) {
            if self.mimics.contains(&Mimic::ChoroidPlexusCalcification) {
                let atrium = |side: f64| {
                    ((xm - side * 16.0 * s) / 3.0).powi(2)
                        + ((y - 28.0 * s) / 4.0).powi(2)
                        + ((z - 18.0) / 3.0).powi(2)
                };
                if atrium(-1.0) < 1.0 || atrium(1.0) < 1.0 {
                    return 210.0;
                }
            }
            return CSF;
        }
        // Basal cisterns: a CSF ring around the midbrain.
        let ring = ((xm / 22.0).powi(2) + ((y - 5.0 * s) / 18.0).powi(2)).sqrt();
        if (-14.0..-4.0).contains(&z) && (0.8..1.15).contains(&ring) {
            return CSF;
        }
        if depth < 1.2 {
            return CSF;
        }
        if self.in_sulcus(p, depth) {
            return CSF;
        }
        if depth < 4.5 {
            return GREY;
        }
        // Deep grey: basal ganglia and thalami.
        let deep = |side: f64| {
            ((xm - side * 18.0 * s) / 9.0).powi(2)
                + ((y - 2.0 * s) / 16.0).powi(2)
                + ((z - 8.0) / 9.0).powi(2)
        };
        if deep(-1.0) < 1.0 || deep(1.0) < 1.0 {
            return DEEP_GREY;
        }
        WHITE
    }

    /// How much of the midline shift applies at a point: full near the
    /// centre, none at the skull.
    fn shift_falloff(&self, p: [f64; 3]) -> f64 {
        let d = (p[0] * p[0] + p[1] * p[1]).sqrt() / (BRAIN[0] * self.scale);
        (1.0 - d).clamp(0.0, 1.0)
    }

    /// Sulci: a folded pattern of CSF in the outer 12 mm of the cortex.
    fn in_sulcus(&self, p: [f64; 3], depth: f64) -> bool {
        if depth > 12.0 {
            return false;
        }
        let [x, y, z] = p;
        let angle = y.atan2(x);
        let fold = (angle * 23.0 + (z * 0.21).sin() * 2.0).sin() * (z * 0.27 + angle * 3.0).cos();
        fold > 0.6 + depth * 0.02
    }

    fn in_ventricle(&self, p: [f64; 3]) -> bool {
        let s = self.scale;
        let [x, y, z] = p;
        let xm = x - self.shift * self.shift_falloff(p);
        // The ventricle on the side of a bleed with mass effect is smaller.
        let squeeze = |side: f64| {
            if self.shift != 0.0 && side * self.shift < 0.0 {
                0.5
            } else {
                1.0
            }
        };
        let lateral = |side: f64| {
            ((xm - side * 9.0 * s) / (5.5 * squeeze(side))).powi(2)
                + ((y - 4.0 * s) / (30.0 * s)).powi(2)
                + ((z - 22.0) / 9.0).powi(2)
                < 1.0
        };
        let third =
            (xm / 2.0).powi(2) + ((y - 4.0 * s) / 12.0).powi(2) + ((z - 4.0) / 7.0).powi(2) < 1.0;
        let fourth =
            (xm / 6.0).powi(2) + ((y - 34.0 * s) / 4.0).powi(2) + ((z + 30.0) / 6.0).powi(2) < 1.0;
        lateral(-1.0) || lateral(1.0) || third || fourth
    }

    /// A bleed's value at a point inside the skull (none: not in it).
    fn bleed_at(&self, b: &Haemorrhage, p: [f64; 3], depth: f64, under: f64) -> Option<f64> {
        let [x, y, z] = p;
        let [cx, cy, cz] = b.centre;
        let d = ((x - cx).powi(2) + (y - cy).powi(2) + (z - cz).powi(2)).sqrt();
        let on_side = x * b.side > 0.0;
        let hit = match b.kind {
            Bleed::Intraparenchymal => d < b.extent,
            // A crescent over the convexity: thickest at the centre,
            // tapering over 60 mm.
            Bleed::Subdural => on_side && depth < b.extent * (1.0 - (d / 70.0).powi(2)).max(0.0),
            // A lens: biconvex, limited to 35 mm from its centre.
            Bleed::Epidural => on_side && depth < b.extent * (1.0 - (d / 35.0).powi(2)).max(0.0),
            // Blood in the sulci and cisterns near it (not the film of
            // CSF under the inner table).
            Bleed::Subarachnoid => {
                d < b.extent && depth > 1.2 && under == CSF && !self.in_ventricle(p)
            }
            // Dependent blood in the lateral ventricles (supine: posterior).
            Bleed::Intraventricular => self.in_ventricle(p) && y > cy && z > 10.0,
        };
        hit.then_some(b.hu)
    }
}

/// Place a bleed of a kind and size in a head of `scale`.
pub fn haemorrhage(r: &mut Rng, kind: Bleed, size: Size, scale: f64) -> Haemorrhage {
    let side = if r.chance(0.5) { -1.0 } else { 1.0 };
    let s = scale;
    let k = Size::ALL.iter().position(|&x| x == size).unwrap_or(0) as f64;
    let hu = r.range(55.0, 85.0);
    let (centre, extent) = match kind {
        Bleed::Intraparenchymal => {
            let e = [r.range(3.0, 6.0), r.range(8.0, 12.0), r.range(15.0, 22.0)][k as usize];
            // In a hemisphere's white matter or basal ganglia.
            (
                [
                    side * r.range(22.0, 38.0) * s,
                    r.range(-35.0, 30.0) * s,
                    r.range(10.0, 45.0),
                ],
                e,
            )
        }
        Bleed::Subdural | Bleed::Epidural => {
            let e = if kind == Bleed::Subdural {
                [r.range(3.0, 5.0), r.range(6.0, 10.0), r.range(11.0, 18.0)][k as usize]
            } else {
                [r.range(4.0, 8.0), r.range(10.0, 15.0), r.range(18.0, 25.0)][k as usize]
            };
            // On the convexity, over the parietal or frontal lobe.
            let y = r.range(-40.0, 30.0) * s;
            let z = r.range(20.0, 50.0);
            ([side * 66.0 * s, y, z], e)
        }
        Bleed::Subarachnoid => {
            let e = [15.0, 28.0, 45.0][k as usize];
            if r.chance(0.4) {
                // Basal cisterns: the ring round the midbrain lies 15-25
                // mm from its centre.
                ([0.0, 5.0 * s, -9.0], e + 12.0)
            } else {
                (
                    [
                        side * 55.0 * s,
                        r.range(-30.0, 30.0) * s,
                        r.range(20.0, 50.0),
                    ],
                    e,
                )
            }
        }
        Bleed::Intraventricular => {
            // The blood level: how far forward the dependent blood reaches.
            let level = [25.0, 12.0, -5.0][k as usize] * s;
            ([0.0, level, 0.0], 0.0)
        }
    };
    Haemorrhage {
        kind,
        size,
        side,
        centre,
        extent,
        hu,
    }
}
