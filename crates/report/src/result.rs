//! The result of one report as plain data: what the HL7, FHIR and webhook
//! builders turn into messages.
//!
//! The pipeline writes a [`StudyResult`] beside each SR (as JSON, in the
//! outbox), so a message built at delivery time says exactly what the SR
//! says, whatever the destination's own settings (its application names,
//! whether it may see the patient's name) are by then.

use dicom_dictionary_std::tags;
use serde::{Deserialize, Serialize};

use crate::codes::Code;
use crate::sr::{Priority, Report, SrClass};

/// A coded concept as data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coded {
    pub code: String,
    /// DICOM scheme designator: SCT, DCM, 99TRIAGED.
    pub scheme: String,
    pub meaning: String,
}

impl From<&Code> for Coded {
    fn from(c: &Code) -> Coded {
        Coded {
            code: c.value.to_string(),
            scheme: c.scheme.to_string(),
            meaning: c.meaning.to_string(),
        }
    }
}

/// The Patient module of the source (empty strings where it has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    /// DICOM PN: family^given^middle^prefix^suffix.
    pub name: String,
    pub id: String,
    pub issuer: String,
    /// YYYYMMDD.
    pub birth_date: String,
    /// M, F, O or empty.
    pub sex: String,
}

/// The study the report is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub instance_uid: String,
    pub accession_number: String,
    /// YYYYMMDD and HHMMSS(.ffffff).
    pub date: String,
    pub time: String,
    pub description: String,
    pub modality: String,
    pub referring_physician: String,
    /// What was imaged (the SR's "Procedure reported").
    pub procedure: Coded,
}

/// One label's study-level result: its most probable image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub label: String,
    pub code: Coded,
    pub probability: f32,
    pub threshold: f32,
    /// Present (at or above the threshold) on at least one image.
    pub flagged: bool,
    /// The SOP Instance UID of the image with the highest probability.
    pub image_uid: String,
}

/// The model and the device that made the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Producer {
    pub model_name: String,
    pub model_version: String,
    pub weights_sha256: String,
    /// As the SR states it ("not for diagnostic use" added for a model that
    /// is not validated).
    pub intended_use: String,
    pub validated: bool,
    pub device_name: String,
    pub device_manufacturer: String,
    pub device_version: String,
    pub device_uid: String,
}

/// The result of one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyResult {
    /// The SR's SOP Instance UID: the identity of the result, from which
    /// every message's own identifier is derived.
    pub report_uid: String,
    /// The report this one replaces (a re-run after late images).
    pub replaces: Option<String>,
    /// When the report was made, UTC: YYYYMMDD and HHMMSS.
    pub date: String,
    pub time: String,
    pub priority: PriorityName,
    pub patient: Patient,
    pub study: Study,
    pub findings: Vec<Finding>,
    pub producer: Producer,
}

/// The study-level priority, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorityName {
    Routine,
    Flagged,
    Urgent,
}

impl From<Priority> for PriorityName {
    fn from(p: Priority) -> PriorityName {
        match p {
            Priority::Routine => PriorityName::Routine,
            Priority::Flagged => PriorityName::Flagged,
            Priority::Urgent => PriorityName::Urgent,
        }
    }
}

impl PriorityName {
    pub fn as_str(self) -> &'static str {
        match self {
            PriorityName::Routine => "routine",
            PriorityName::Flagged => "flagged",
            PriorityName::Urgent => "urgent",
        }
    }
}

impl StudyResult {
    /// The result `report` states, in the SR of `class`.
    pub fn of(report: &Report<'_>, class: SrClass) -> StudyResult {
        let s = report.source;
        let text = |t| attrs::text(s, t).unwrap_or_default();
        let mut findings: Vec<Finding> = Vec::new();
        for r in &report.results {
            for f in &r.findings {
                match findings.iter_mut().find(|x| x.label == f.label) {
                    Some(x) => {
                        x.flagged |= f.flagged;
                        if f.probability > x.probability {
                            x.probability = f.probability;
                            x.threshold = f.threshold;
                            x.image_uid = r.image.sop_instance_uid.clone();
                        }
                    }
                    None => findings.push(Finding {
                        label: f.label.clone(),
                        code: (&crate::codes::finding(&f.label)).into(),
                        probability: f.probability,
                        threshold: f.threshold,
                        flagged: f.flagged,
                        image_uid: r.image.sop_instance_uid.clone(),
                    }),
                }
            }
        }
        let (m, d) = (&report.model, &report.device);
        StudyResult {
            report_uid: report.sop_instance_uid(class),
            replaces: report
                .predecessor
                .as_ref()
                .map(|p| p.sop_instance_uid.clone()),
            date: report.content_date.clone(),
            time: report.content_time.clone(),
            priority: report.priority.into(),
            patient: Patient {
                name: text(tags::PATIENT_NAME),
                id: text(tags::PATIENT_ID),
                issuer: text(tags::ISSUER_OF_PATIENT_ID),
                birth_date: text(tags::PATIENT_BIRTH_DATE),
                sex: text(tags::PATIENT_SEX),
            },
            study: Study {
                instance_uid: report.study_uid.clone(),
                accession_number: text(tags::ACCESSION_NUMBER),
                date: text(tags::STUDY_DATE),
                time: text(tags::STUDY_TIME),
                description: text(tags::STUDY_DESCRIPTION),
                modality: text(tags::MODALITY),
                referring_physician: text(tags::REFERRING_PHYSICIAN_NAME),
                procedure: (&report.procedure()).into(),
            },
            findings,
            producer: Producer {
                model_name: m.name.clone(),
                model_version: m.version.clone(),
                weights_sha256: m.weights_sha256.clone(),
                intended_use: report.intended_use(),
                validated: m.validated,
                device_name: d.name.clone(),
                device_manufacturer: d.manufacturer.clone(),
                device_version: d.version.clone(),
                device_uid: d.uid.clone(),
            },
        }
    }

    /// The findings present on the study.
    pub fn flagged(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.flagged)
    }

    /// An identifier for this result at one destination, the same on every
    /// attempt (20 hexadecimal digits), so a receiver can recognise a
    /// message sent again after a crash.
    pub fn message_id(&self, destination: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.report_uid.as_bytes());
        h.update([0]);
        h.update(destination.as_bytes());
        h.finalize()[..10]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The report's time as an ISO 8601 instant (UTC).
    pub fn instant(&self) -> String {
        iso_instant(&self.date, &self.time).unwrap_or_default()
    }
}

/// `YYYYMMDD` + `HHMMSS` as `YYYY-MM-DDTHH:MM:SSZ` (`None` if malformed).
pub(crate) fn iso_instant(date: &str, time: &str) -> Option<String> {
    let digits = |s: &str, n| s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_digit);
    if !digits(date, 8) || !digits(time, 6) {
        return None;
    }
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[..4],
        &date[4..6],
        &date[6..8],
        &time[..2],
        &time[2..4],
        &time[4..6]
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A result as the pipeline would write it for a flagged chest X-ray.
    pub fn sample() -> StudyResult {
        StudyResult {
            report_uid: "2.25.1234".into(),
            replaces: None,
            date: "20261202".into(),
            time: "101500".into(),
            priority: PriorityName::Urgent,
            patient: Patient {
                name: "Phantom^Jane^Q".into(),
                id: "PH-001".into(),
                issuer: "TRIAGED".into(),
                birth_date: "19700101".into(),
                sex: "F".into(),
            },
            study: Study {
                instance_uid: "1.2.3.4".into(),
                accession_number: "ACC|42".into(),
                date: "20261202".into(),
                time: "100000".into(),
                description: "CHEST PA".into(),
                modality: "CR".into(),
                referring_physician: "Ref^Doc".into(),
                procedure: (&crate::codes::CHEST_RADIOGRAPH).into(),
            },
            findings: vec![
                Finding {
                    label: "Pneumothorax".into(),
                    code: (&crate::codes::finding("Pneumothorax")).into(),
                    probability: 0.93,
                    threshold: 0.5,
                    flagged: true,
                    image_uid: "1.2.3.4.5.6".into(),
                },
                Finding {
                    label: "Effusion".into(),
                    code: (&crate::codes::finding("Effusion")).into(),
                    probability: 0.12,
                    threshold: 0.5,
                    flagged: false,
                    image_uid: "1.2.3.4.5.6".into(),
                },
            ],
            producer: Producer {
                model_name: "cxr-demo".into(),
                model_version: "1.0".into(),
                weights_sha256: "ab".repeat(32),
                intended_use: "Demonstration - not for diagnostic use".into(),
                validated: false,
                device_name: "triaged".into(),
                device_manufacturer: "triaged project".into(),
                device_version: "0.1.0".into(),
                device_uid: "2.25.99".into(),
            },
        }
    }

    #[test]
    fn message_ids_are_stable_per_destination() {
        let r = sample();
        assert_eq!(r.message_id("ris"), r.message_id("ris"));
        assert_ne!(r.message_id("ris"), r.message_id("fhir"));
        assert_eq!(r.message_id("ris").len(), 20);
    }

    #[test]
    fn the_json_form_round_trips() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"priority\":\"urgent\""));
        assert_eq!(serde_json::from_str::<StudyResult>(&text).unwrap(), r);
    }

    #[test]
    fn instants_need_whole_dates_and_times() {
        assert_eq!(
            iso_instant("20261202", "101500.123").as_deref(),
            Some("2026-12-02T10:15:00Z")
        );
        assert_eq!(iso_instant("2026", "1015"), None);
    }
}
