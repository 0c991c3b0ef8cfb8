//! Who is imaged, how, and on what equipment: the variation a chest X-ray
//! model meets across a hospital's patients and devices.

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sex {
    Female,
    Male,
}

impl Sex {
    /// The DICOM code (PatientSex).
    pub fn code(self) -> &'static str {
        match self {
            Sex::Female => "F",
            Sex::Male => "M",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgeBand {
    Young,
    Middle,
    Old,
}

impl AgeBand {
    pub const ALL: [AgeBand; 3] = [AgeBand::Young, AgeBand::Middle, AgeBand::Old];

    pub fn name(self) -> &'static str {
        match self {
            AgeBand::Young => "18-39",
            AgeBand::Middle => "40-64",
            AgeBand::Old => "65+",
        }
    }

    fn years(self) -> (f64, f64) {
        match self {
            AgeBand::Young => (18.0, 40.0),
            AgeBand::Middle => (40.0, 65.0),
            AgeBand::Old => (65.0, 92.0),
        }
    }
}

/// Projection: posteroanterior (standing, the standard) or anteroposterior
/// (portable, bedside: heart magnified, scapulae over the lungs, clavicles
/// projected higher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Pa,
    Ap,
}

impl View {
    /// The DICOM code (ViewPosition).
    pub fn code(self) -> &'static str {
        match self {
            View::Pa => "PA",
            View::Ap => "AP",
        }
    }
}

/// A (fictitious) detector vendor: modality, bit depth, photometric
/// interpretation and image processing all differ between vendors, as in
/// real fleets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vendor {
    pub manufacturer: &'static str,
    pub model: &'static str,
    /// CR (cassette, 35 x 43 cm) or DX (flat panel, 43 x 43 cm).
    pub modality: &'static str,
    pub bits_stored: u16,
    pub monochrome1: bool,
    /// Tone curve steepness (0 = linear).
    pub contrast: f64,
    /// Unsharp-mask gain and radius (mm): the "edge enhancement" every
    /// vendor applies differently.
    pub edge_gain: f64,
    pub edge_sigma_mm: f64,
    /// Photons per mm² at the detector without a patient (noise level).
    pub quanta_per_mm2: f64,
}

pub const VENDORS: [Vendor; 3] = [
    Vendor {
        manufacturer: "Acme Radiography",
        model: "AR-500 CR",
        modality: "CR",
        bits_stored: 12,
        monochrome1: true,
        contrast: 3.0,
        edge_gain: 0.4,
        edge_sigma_mm: 3.0,
        quanta_per_mm2: 25_000.0,
    },
    Vendor {
        manufacturer: "Borealis Medical",
        model: "BX Flat 43",
        modality: "DX",
        bits_stored: 14,
        monochrome1: false,
        contrast: 5.0,
        edge_gain: 0.9,
        edge_sigma_mm: 6.0,
        quanta_per_mm2: 40_000.0,
    },
    Vendor {
        manufacturer: "Cobalt Imaging",
        model: "CI Portable 35",
        modality: "DX",
        bits_stored: 10,
        monochrome1: false,
        contrast: 1.5,
        edge_gain: 0.2,
        edge_sigma_mm: 2.0,
        quanta_per_mm2: 12_000.0,
    },
];

/// One imaged patient and acquisition.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub sex: Sex,
    pub age: u32,
    pub age_band: AgeBand,
    pub view: View,
    pub vendor: Vendor,
    /// Body habitus: 1 = average; scales the thorax and soft tissue.
    pub size: f64,
    /// 1 = a good inspiration (about ten posterior ribs above the dome).
    pub inspiration: f64,
    /// Rotation (mm the mediastinum shifts off the spine), tilt (degrees)
    /// and the patient's offset on the detector (mm).
    pub rotation_mm: f64,
    pub tilt_deg: f64,
    pub offset_mm: [f64; 2],
    /// Relative exposure (mAs against the vendor's automatic exposure).
    pub exposure: f64,
}

impl Subject {
    pub fn sample(rng: &mut Rng) -> Subject {
        let sex = if rng.chance(0.5) {
            Sex::Female
        } else {
            Sex::Male
        };
        let age_band = AgeBand::ALL[rng.below(3)];
        let (lo, hi) = age_band.years();
        let age = rng.range(lo, hi) as u32;
        // Older patients are imaged portable (AP) more often, and portable
        // studies come from the portable unit more often: the confounding
        // a real evaluation has to untangle.
        let p_ap = match age_band {
            AgeBand::Young => 0.15,
            AgeBand::Middle => 0.25,
            AgeBand::Old => 0.45,
        };
        let view = if rng.chance(p_ap) { View::Ap } else { View::Pa };
        let vendor = match (view, rng.unit()) {
            (View::Ap, u) if u < 0.6 => VENDORS[2],
            (_, u) if u < 0.5 => VENDORS[0],
            (_, u) if u < 0.85 => VENDORS[1],
            _ => VENDORS[2],
        };
        let inspiration = match (view, age_band) {
            (View::Ap, _) => rng.gauss(0.88, 0.05),
            (_, AgeBand::Old) => rng.gauss(0.93, 0.05),
            _ => rng.gauss(1.0, 0.04),
        };
        Subject {
            sex,
            age,
            age_band,
            view,
            vendor,
            size: rng.gauss(1.0, 0.07),
            inspiration,
            rotation_mm: rng.gauss(0.0, 5.0),
            tilt_deg: rng.gauss(0.0, 1.5),
            offset_mm: [rng.gauss(0.0, 8.0), rng.gauss(0.0, 10.0)],
            exposure: rng.gauss(1.0, 0.2).max(0.5),
        }
    }
}
