//! Coded concepts used in the reports.
//!
//! DCM (DICOM), SCT (SNOMED CT) and UCUM codes where a standard code
//! exists; otherwise the private scheme [`PRIVATE_SCHEME`], documented in
//! docs/conformance.md.

use std::borrow::Cow;

/// A coded concept: value, scheme designator, meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub value: Cow<'static, str>,
    pub scheme: Cow<'static, str>,
    pub meaning: Cow<'static, str>,
}

const fn code(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value: Cow::Borrowed(value),
        scheme: Cow::Borrowed(scheme),
        meaning: Cow::Borrowed(meaning),
    }
}

const fn dcm(value: &'static str, meaning: &'static str) -> Code {
    code(value, "DCM", meaning)
}

const fn sct(value: &'static str, meaning: &'static str) -> Code {
    code(value, "SCT", meaning)
}

/// triaged's private coding scheme designator.
pub const PRIVATE_SCHEME: &str = "99TRIAGED";

const fn private(value: &'static str, meaning: &'static str) -> Code {
    code(value, PRIVATE_SCHEME, meaning)
}

pub const IMAGING_MEASUREMENT_REPORT: Code = dcm("126000", "Imaging Measurement Report");
pub const LANGUAGE: Code = dcm("121049", "Language of Content Item and Descendants");
pub const ENGLISH_US: Code = code("en-US", "RFC5646", "English (United States)");
pub const OBSERVER_TYPE: Code = dcm("121005", "Observer Type");
pub const DEVICE: Code = dcm("121007", "Device");
pub const DEVICE_OBSERVER_UID: Code = dcm("121012", "Device Observer UID");
pub const DEVICE_OBSERVER_NAME: Code = dcm("121013", "Device Observer Name");
pub const DEVICE_OBSERVER_MANUFACTURER: Code = dcm("121014", "Device Observer Manufacturer");
pub const DEVICE_OBSERVER_MODEL_NAME: Code = dcm("121015", "Device Observer Model Name");
pub const PROCEDURE_REPORTED: Code = dcm("121058", "Procedure reported");
pub const IMAGING_MEASUREMENTS: Code = dcm("126010", "Imaging Measurements");
pub const MEASUREMENT_GROUP: Code = dcm("125007", "Measurement Group");
pub const TRACKING_IDENTIFIER: Code = dcm("112039", "Tracking Identifier");
pub const TRACKING_UID: Code = dcm("112040", "Tracking Unique Identifier");
pub const FINDING: Code = dcm("121071", "Finding");
pub const ALGORITHM_NAME: Code = dcm("111001", "Algorithm Name");
pub const ALGORITHM_VERSION: Code = dcm("111003", "Algorithm Version");
pub const STUDY_INSTANCE_UID: Code = dcm("110180", "Study Instance UID");
pub const SOURCE: Code = sct("260753009", "Source");
pub const PRESENT: Code = sct("52101004", "Present");
pub const ABSENT: Code = sct("2667000", "Absent");
pub const CHEST_RADIOGRAPH: Code = sct("399208008", "Plain chest X-ray");
pub const IMAGING_PROCEDURE: Code = sct("363679005", "Imaging");
pub const CT_OF_HEAD: Code = sct("303653007", "Computed tomography of head");
pub const UNITLESS: Code = code("1", "UCUM", "no units");

pub const PROBABILITY: Code = private("P-001", "Probability of finding");
pub const OPERATING_THRESHOLD: Code = private("P-002", "Operating threshold");
pub const WEIGHTS_SHA256: Code = private("P-003", "Model weights SHA-256");
pub const TRIAGE_PRIORITY: Code = private("P-004", "Triage priority");
pub const INTENDED_USE: Code = private("P-005", "Intended use");
pub const HEATMAP_METHOD: Code = private("P-006", "Heatmap method");
pub const KEY_IMAGE: Code = private("P-007", "Key image");
pub const URGENT: Code = private("P-010", "Urgent");
pub const FLAGGED: Code = private("P-011", "Flagged");
pub const ROUTINE: Code = private("P-012", "Routine");

/// The procedure a report is about, from the source's Modality and Body
/// Part Examined: a chest radiograph, a CT of the head, or imaging.
pub fn procedure(modality: Option<&str>, body_part: Option<&str>) -> Code {
    let is = |v: Option<&str>, any: &[&str]| {
        v.map(str::trim)
            .is_some_and(|v| any.iter().any(|a| a.eq_ignore_ascii_case(v)))
    };
    if is(modality, &["CR", "DX"]) && is(body_part, &["CHEST"]) {
        CHEST_RADIOGRAPH
    } else if is(modality, &["CT"]) && is(body_part, &["HEAD", "BRAIN"]) {
        CT_OF_HEAD
    } else {
        IMAGING_PROCEDURE
    }
}

/// The code for a model label: SNOMED CT where one exists, otherwise a
/// private code `L-<LABEL>` (upper case, non-alphanumerics as `-`, at most
/// 16 characters) with the label as its meaning.
pub fn finding(label: &str) -> Code {
    match label.to_ascii_lowercase().as_str() {
        "effusion" | "pleural effusion" => sct("60046008", "Pleural effusion"),
        "pneumothorax" => sct("36118008", "Pneumothorax"),
        "cardiomegaly" => sct("8186001", "Cardiomegaly"),
        "nodule" | "lung nodule" => sct("786838002", "Pulmonary nodule"),
        "consolidation" => sct("95436008", "Lung consolidation"),
        "atelectasis" => sct("46621007", "Atelectasis"),
        "edema" | "pulmonary edema" => sct("19242006", "Pulmonary edema"),
        "emphysema" => sct("87433001", "Pulmonary emphysema"),
        "pneumonia" => sct("233604007", "Pneumonia"),
        "intracranial haemorrhage" | "intracranial hemorrhage" => {
            sct("1386000", "Intracranial hemorrhage")
        }
        "intraparenchymal haemorrhage" | "intraparenchymal hemorrhage" => {
            sct("274100004", "Cerebral hemorrhage")
        }
        "subdural haemorrhage" | "subdural hemorrhage" => sct("35486000", "Subdural hemorrhage"),
        "subarachnoid haemorrhage" | "subarachnoid hemorrhage" => {
            sct("21454007", "Subarachnoid hemorrhage")
        }
        _ => {
            let value: String = format!("L-{}", label.to_ascii_uppercase())
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .take(16)
                .collect();
            Code {
                value: Cow::Owned(value),
                scheme: Cow::Borrowed(PRIVATE_SCHEME),
                meaning: Cow::Owned(label.chars().take(64).collect()),
            }
        }
    }
}
