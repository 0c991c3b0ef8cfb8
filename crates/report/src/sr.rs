//! The AI result as a DICOM Structured Report: Comprehensive 3D SR
//! following TID 1500 (Measurement Report), as IHE AI Results profiles it,
//! or Comprehensive SR when a destination does not take 3D SR.

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::codes::{self, Code};
use crate::content::{code, code_item, container, image, num, put, sequence, text, uidref};
use crate::{
    copy_patient_and_study, file_meta, put_equipment, put_instance, uid_from, ReportError,
};

pub const COMPREHENSIVE_3D_SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";
pub const COMPREHENSIVE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.33";

/// Which SR storage class to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrClass {
    Comprehensive3d,
    Comprehensive,
}

impl SrClass {
    pub fn uid(self) -> &'static str {
        match self {
            SrClass::Comprehensive3d => COMPREHENSIVE_3D_SR,
            SrClass::Comprehensive => COMPREHENSIVE_SR,
        }
    }
}

/// A source instance the report is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageRef {
    pub series_uid: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

/// One label's result on one image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelResult {
    pub label: String,
    pub probability: f32,
    pub threshold: f32,
    pub flagged: bool,
    /// How this finding's heatmap was made (e.g. "class activation map"),
    /// if it has one.
    pub heatmap: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageResult {
    pub image: ImageRef,
    pub findings: Vec<LabelResult>,
}

/// What produced the result.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub weights_sha256: String,
    pub intended_use: String,
    pub validated: bool,
}

/// The study-level triage priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Routine,
    Flagged,
    Urgent,
}

impl Priority {
    fn code(self) -> Code {
        match self {
            Priority::Routine => codes::ROUTINE,
            Priority::Flagged => codes::FLAGGED,
            Priority::Urgent => codes::URGENT,
        }
    }
}

/// The device that writes the report (the observer context).
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub manufacturer: String,
    pub name: String,
    pub version: String,
    /// Stable across restarts: configured or derived from the AE title.
    pub uid: String,
}

/// A report to write.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// A source instance's data set: Patient and General Study attributes
    /// are copied from it.
    pub source: &'a InMemDicomObject,
    pub study_uid: String,
    /// Every instance the analysis considered (the evidence).
    pub evidence: Vec<ImageRef>,
    pub results: Vec<ImageResult>,
    pub model: ModelInfo,
    pub priority: Priority,
    /// The report this one supersedes (a re-run after late images).
    pub predecessor: Option<ImageRef>,
    pub device: Device,
    /// Content date (YYYYMMDD) and time (HHMMSS).
    pub content_date: String,
    pub content_time: String,
}

impl Report<'_> {
    /// The report's SOP Instance UID: a function of the study, the model
    /// and the result's content (probabilities to 4 decimals), so a retry
    /// or a restart writes the same instance, never a second report.
    pub fn sop_instance_uid(&self, class: SrClass) -> String {
        let mut parts = vec![
            "sr".to_string(),
            class.uid().to_string(),
            self.study_uid.clone(),
            self.model.name.clone(),
            self.model.version.clone(),
            self.model.weights_sha256.clone(),
        ];
        let mut results = self.results.clone();
        results.sort_by(|a, b| a.image.cmp(&b.image));
        for r in &results {
            parts.push(r.image.sop_instance_uid.clone());
            for f in &r.findings {
                parts.push(format!(
                    "{}={:.4}/{:.4}/{}",
                    f.label, f.probability, f.threshold, f.flagged
                ));
            }
        }
        if let Some(p) = &self.predecessor {
            parts.push(p.sop_instance_uid.clone());
        }
        uid_from(&parts)
    }

    /// The series all of this device's reports in the study go into.
    pub fn series_uid(&self) -> String {
        series_uid(&self.study_uid, &self.device)
    }

    fn observer_context(&self) -> Vec<InMemDicomObject> {
        let d = &self.device;
        vec![
            code("HAS OBS CONTEXT", &codes::OBSERVER_TYPE, &codes::DEVICE),
            uidref("HAS OBS CONTEXT", &codes::DEVICE_OBSERVER_UID, &d.uid),
            text("HAS OBS CONTEXT", &codes::DEVICE_OBSERVER_NAME, &d.name),
            text(
                "HAS OBS CONTEXT",
                &codes::DEVICE_OBSERVER_MANUFACTURER,
                &d.manufacturer,
            ),
            text(
                "HAS OBS CONTEXT",
                &codes::DEVICE_OBSERVER_MODEL_NAME,
                &format!("{} {}", d.name, d.version),
            ),
        ]
    }

    /// One measurement group (TID 1501) per label per image.
    fn groups(&self) -> Vec<InMemDicomObject> {
        let m = &self.model;
        let mut groups = Vec::new();
        for r in &self.results {
            for f in &r.findings {
                let finding = codes::finding(&f.label);
                let presence = if f.flagged {
                    codes::PRESENT
                } else {
                    codes::ABSENT
                };
                let tracking = uid_from(&[
                    "tracking",
                    &self.study_uid,
                    &r.image.sop_instance_uid,
                    &f.label,
                    &m.name,
                    &m.version,
                ]);
                let mut items = vec![
                    text(
                        "HAS OBS CONTEXT",
                        &codes::TRACKING_IDENTIFIER,
                        &format!("{} on {}", f.label, r.image.sop_instance_uid)
                            .chars()
                            .take(64)
                            .collect::<String>(),
                    ),
                    uidref("HAS OBS CONTEXT", &codes::TRACKING_UID, &tracking),
                    code("CONTAINS", &codes::FINDING, &finding),
                    text("HAS CONCEPT MOD", &codes::ALGORITHM_NAME, &m.name),
                    text("HAS CONCEPT MOD", &codes::ALGORITHM_VERSION, &m.version),
                    code("CONTAINS", &finding, &presence),
                    num(
                        "CONTAINS",
                        &codes::PROBABILITY,
                        f.probability as f64,
                        &codes::UNITLESS,
                    ),
                    num(
                        "CONTAINS",
                        &codes::OPERATING_THRESHOLD,
                        f.threshold as f64,
                        &codes::UNITLESS,
                    ),
                    text("CONTAINS", &codes::WEIGHTS_SHA256, &m.weights_sha256),
                ];
                if let Some(method) = &f.heatmap {
                    items.push(text("CONTAINS", &codes::HEATMAP_METHOD, method));
                }
                items.push(image(
                    "CONTAINS",
                    &codes::SOURCE,
                    &r.image.sop_class_uid,
                    &r.image.sop_instance_uid,
                ));
                groups.push(container("CONTAINS", &codes::MEASUREMENT_GROUP, items));
            }
        }
        groups
    }

    /// What was imaged, from the source's Modality and Body Part Examined.
    pub fn procedure(&self) -> Code {
        codes::procedure(
            attrs::text(self.source, tags::MODALITY).as_deref(),
            attrs::text(self.source, tags::BODY_PART_EXAMINED).as_deref(),
        )
    }

    /// The most suspicious image: where a finding lies furthest above its
    /// threshold (or least below it, when nothing is flagged); the earlier
    /// image on a tie. For a CT series read slice by slice, the key slice.
    pub fn key_image(&self) -> Option<&ImageRef> {
        let mut best: Option<(f32, &ImageRef)> = None;
        for r in &self.results {
            for f in &r.findings {
                let margin = f.probability - f.threshold;
                if best.is_none_or(|(m, _)| margin > m) {
                    best = Some((margin, &r.image));
                }
            }
        }
        best.map(|(_, image)| image)
    }

    /// The intended use as reported: "not for diagnostic use" added
    /// unless the model is validated and states its use.
    pub fn intended_use(&self) -> String {
        let stated = self
            .model
            .intended_use
            .to_ascii_lowercase()
            .contains("not for diagnostic use");
        if (self.model.validated && !self.model.intended_use.is_empty()) || stated {
            self.model.intended_use.clone()
        } else {
            let mut s = self.model.intended_use.clone();
            if !s.is_empty() {
                s += " - ";
            }
            s + "not for diagnostic use"
        }
    }

    /// Build the SR instance.
    pub fn build(
        &self,
        class: SrClass,
        instance_number: u32,
    ) -> Result<FileDicomObject<InMemDicomObject>, ReportError> {
        if self.results.is_empty() {
            return Err(ReportError::Empty);
        }
        let sop_uid = self.sop_instance_uid(class);
        let mut o = InMemDicomObject::new_empty();
        copy_patient_and_study(self.source, &mut o);
        put_instance(
            &mut o,
            class.uid(),
            &sop_uid,
            instance_number,
            (&self.content_date, &self.content_time),
        );
        // SR Document Series.
        put(&mut o, tags::MODALITY, VR::CS, "SR");
        put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, self.series_uid());
        put(&mut o, tags::SERIES_NUMBER, VR::IS, "9901");
        put(
            &mut o,
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "triaged AI results",
        );
        sequence(
            &mut o,
            tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
            vec![],
        );
        // General Equipment.
        put_equipment(&mut o, &self.device);
        // SR Document General.
        put(&mut o, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
        put(&mut o, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
        sequence(
            &mut o,
            tags::PERFORMED_PROCEDURE_CODE_SEQUENCE,
            vec![code_item(&self.procedure())],
        );
        sequence(
            &mut o,
            tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
            vec![hierarchy(&self.study_uid, &self.evidence)],
        );
        if let Some(p) = &self.predecessor {
            sequence(
                &mut o,
                tags::PREDECESSOR_DOCUMENTS_SEQUENCE,
                vec![hierarchy(&self.study_uid, std::slice::from_ref(p))],
            );
        }
        if let Some(accession) = attrs::text(self.source, tags::ACCESSION_NUMBER) {
            let mut rq = InMemDicomObject::new_empty();
            put(
                &mut rq,
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                self.study_uid.as_str(),
            );
            sequence(&mut rq, tags::REFERENCED_STUDY_SEQUENCE, vec![]);
            put(&mut rq, tags::ACCESSION_NUMBER, VR::SH, accession.as_str());
            put(&mut rq, tags::REQUESTED_PROCEDURE_ID, VR::SH, "");
            put(&mut rq, tags::REQUESTED_PROCEDURE_DESCRIPTION, VR::LO, "");
            sequence(&mut rq, tags::REQUESTED_PROCEDURE_CODE_SEQUENCE, vec![]);
            put(
                &mut rq,
                tags::PLACER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST,
                VR::LO,
                "",
            );
            put(
                &mut rq,
                tags::FILLER_ORDER_NUMBER_IMAGING_SERVICE_REQUEST,
                VR::LO,
                "",
            );
            sequence(&mut o, tags::REFERENCED_REQUEST_SEQUENCE, vec![rq]);
        }
        // SR Document Content: the TID 1500 tree.
        put(&mut o, tags::VALUE_TYPE, VR::CS, "CONTAINER");
        sequence(
            &mut o,
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            vec![code_item(&codes::IMAGING_MEASUREMENT_REPORT)],
        );
        put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
        let mut template = InMemDicomObject::new_empty();
        put(&mut template, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
        put(&mut template, tags::TEMPLATE_IDENTIFIER, VR::CS, "1500");
        sequence(&mut o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![template]);
        let mut content = vec![code(
            "HAS CONCEPT MOD",
            &codes::LANGUAGE,
            &codes::ENGLISH_US,
        )];
        content.extend(self.observer_context());
        content.push(code(
            "HAS CONCEPT MOD",
            &codes::PROCEDURE_REPORTED,
            &self.procedure(),
        ));
        content.push(container(
            "CONTAINS",
            &codes::IMAGING_MEASUREMENTS,
            self.groups(),
        ));
        content.push(code(
            "CONTAINS",
            &codes::TRIAGE_PRIORITY,
            &self.priority.code(),
        ));
        if let Some(key) = self.key_image() {
            content.push(image(
                "CONTAINS",
                &codes::KEY_IMAGE,
                &key.sop_class_uid,
                &key.sop_instance_uid,
            ));
        }
        content.push(text("CONTAINS", &codes::INTENDED_USE, &self.intended_use()));
        sequence(&mut o, tags::CONTENT_SEQUENCE, content);
        Ok(o.with_exact_meta(file_meta(class.uid(), &sop_uid)?))
    }
}

/// The series a device's reports in a study go into (one per study and
/// device, so every report and its successors share it).
pub fn series_uid(study_uid: &str, device: &Device) -> String {
    uid_from(&["sr-series", study_uid, &device.uid])
}

/// The same report as Comprehensive SR, for a peer that does not take
/// Comprehensive 3D SR (the content uses no 3D coordinates, so it is valid
/// as it is). The new SOP Instance UID is a function of the original, so a
/// retried fallback is the same instance. `None` if `dataset` is not a
/// Comprehensive 3D SR.
pub fn as_comprehensive(dataset: &InMemDicomObject) -> Option<(InMemDicomObject, String)> {
    if attrs::text(dataset, tags::SOP_CLASS_UID)?.as_str() != COMPREHENSIVE_3D_SR {
        return None;
    }
    let uid = uid_from(&[
        "comprehensive-sr-fallback",
        &attrs::text(dataset, tags::SOP_INSTANCE_UID)?,
    ]);
    let mut copy = dataset.clone();
    put(&mut copy, tags::SOP_CLASS_UID, VR::UI, COMPREHENSIVE_SR);
    put(&mut copy, tags::SOP_INSTANCE_UID, VR::UI, uid.as_str());
    Some((copy, uid))
}

/// A Hierarchical SOP Instance Reference item: study, its series, their
/// instances.
fn hierarchy(study_uid: &str, images: &[ImageRef]) -> InMemDicomObject {
    let mut sorted = images.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut study = InMemDicomObject::new_empty();
    put(&mut study, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
    let mut series_items = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let series = sorted[i].series_uid.clone();
        let mut refs = Vec::new();
        while i < sorted.len() && sorted[i].series_uid == series {
            let mut r = InMemDicomObject::new_empty();
            put(
                &mut r,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                sorted[i].sop_class_uid.as_str(),
            );
            put(
                &mut r,
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                sorted[i].sop_instance_uid.as_str(),
            );
            refs.push(r);
            i += 1;
        }
        let mut s = InMemDicomObject::new_empty();
        put(&mut s, tags::SERIES_INSTANCE_UID, VR::UI, series.as_str());
        sequence(&mut s, tags::REFERENCED_SOP_SEQUENCE, refs);
        series_items.push(s);
    }
    sequence(&mut study, tags::REFERENCED_SERIES_SEQUENCE, series_items);
    study
}
