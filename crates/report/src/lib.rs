//! DICOM objects that carry triaged's results back to the PACS.
//!
//! [`sr::Report`] builds a Comprehensive 3D SR (or Comprehensive SR)
//! following TID 1500 as IHE AI Results does: one measurement group per
//! finding with its code, presence, probability, threshold, algorithm and
//! weights, and the source image; a study-level triage priority and the
//! model's intended use. [`heatmap::HeatmapCapture`] builds an 8-bit RGB
//! Secondary Capture of the image with its heatmap and a burned-in
//! "not for diagnosis" label. Both copy Patient and Study attributes from
//! a source instance and get deterministic UIDs, so a retry never makes a
//! second object. [`result::StudyResult`] is the same result as plain
//! data; [`hl7`], [`fhir`] and [`webhook`] build the messages that carry it
//! to a RIS, a FHIR server and an alerting service. Sending is the
//! daemon's job; this crate only builds.

#![forbid(unsafe_code)]

pub mod codes;
mod content;
pub mod fhir;
pub mod heatmap;
pub mod hl7;
pub mod result;
pub mod sr;
mod text;
pub mod webhook;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::meta::{FileMetaTable, FileMetaTableBuilder};
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

pub use heatmap::HeatmapCapture;
pub use result::StudyResult;
pub use sr::{Device, ImageRef, ImageResult, LabelResult, ModelInfo, Priority, Report, SrClass};

pub use attrs::IMPLEMENTATION_CLASS_UID;
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("a report needs at least one image result")]
    Empty,
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
    #[error("heatmap image: {0}")]
    Image(String),
}

/// A `2.25.` UID from the SHA-256 of the parts (first 128 bits, top bit
/// cleared so it fits 39 digits).
pub fn uid_from<S: AsRef<str>>(parts: &[S]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_ref().as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(b) >> 1)
}

/// Patient and General Study attributes a result object shares with its
/// source (Type 2 ones written empty when the source lacks them).
const COPIED: [(Tag, bool); 13] = [
    (tags::PATIENT_NAME, true),
    (tags::PATIENT_ID, true),
    (tags::ISSUER_OF_PATIENT_ID, false),
    (tags::PATIENT_BIRTH_DATE, true),
    (tags::PATIENT_SEX, true),
    (tags::PATIENT_AGE, false),
    (tags::STUDY_INSTANCE_UID, true),
    (tags::STUDY_DATE, true),
    (tags::STUDY_TIME, true),
    (tags::REFERRING_PHYSICIAN_NAME, true),
    (tags::STUDY_ID, true),
    (tags::ACCESSION_NUMBER, true),
    (tags::STUDY_DESCRIPTION, false),
];

/// Text values are Rust strings once parsed, whatever the source's
/// character set; result objects are written in UTF-8.
pub(crate) fn copy_patient_and_study(source: &InMemDicomObject, to: &mut InMemDicomObject) {
    to.put(dicom_core::DataElement::new(
        tags::SPECIFIC_CHARACTER_SET,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("ISO_IR 192"),
    ));
    for (tag, type2) in COPIED {
        match source.get(tag) {
            Some(e) => {
                to.put(e.clone());
            }
            None if type2 => {
                let vr = dicom_dictionary_std::StandardDataDictionary
                    .by_tag(tag)
                    .map(|e| e.vr.relaxed())
                    .unwrap_or(dicom_core::VR::LO);
                to.put(dicom_core::DataElement::empty(tag, vr));
            }
            None => {}
        }
    }
}

/// SOP Common and the instance attributes every result object has.
pub(crate) fn put_instance(
    o: &mut InMemDicomObject,
    class: &str,
    uid: &str,
    instance_number: u32,
    content: (&str, &str),
) {
    use content::put;
    use dicom_core::VR;
    put(o, tags::SOP_CLASS_UID, VR::UI, class);
    put(o, tags::SOP_INSTANCE_UID, VR::UI, uid);
    put(
        o,
        tags::INSTANCE_NUMBER,
        VR::IS,
        instance_number.to_string(),
    );
    put(o, tags::CONTENT_DATE, VR::DA, content.0);
    put(o, tags::CONTENT_TIME, VR::TM, content.1);
}

/// General Equipment: triaged as the device that made the object.
pub(crate) fn put_equipment(o: &mut InMemDicomObject, device: &Device) {
    use content::put;
    use dicom_core::VR;
    put(o, tags::MANUFACTURER, VR::LO, device.manufacturer.as_str());
    put(
        o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        device.name.as_str(),
    );
    put(o, tags::SOFTWARE_VERSIONS, VR::LO, device.version.as_str());
}

pub(crate) fn file_meta(class: &str, instance: &str) -> Result<FileMetaTable, ReportError> {
    FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(attrs::IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| ReportError::Meta(e.to_string()))
}

use dicom_core::dictionary::DataDictionary;
