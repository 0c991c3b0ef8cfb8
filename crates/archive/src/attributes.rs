//! The attributes of an instance that the index keeps.

use attrs::{int, text};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;

use crate::fsutil::is_safe_uid;
use crate::ArchiveError;

/// What the index records about one instance (and its series and study).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceAttributes {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub accession_number: Option<String>,
    pub study_id: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    pub referring_physician: Option<String>,
    pub modality: Option<String>,
    pub body_part_examined: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub number_of_frames: Option<i64>,
    pub view_position: Option<String>,
}

fn uid(obj: &InMemDicomObject, tag: Tag, attribute: &'static str) -> Result<String, ArchiveError> {
    text(obj, tag)
        .filter(|u| is_safe_uid(u))
        .ok_or(ArchiveError::BadAttribute { attribute })
}

impl InstanceAttributes {
    pub fn from_object(obj: &InMemDicomObject) -> Result<Self, ArchiveError> {
        Ok(InstanceAttributes {
            sop_class_uid: text(obj, tags::SOP_CLASS_UID).ok_or(ArchiveError::BadAttribute {
                attribute: "SOPClassUID",
            })?,
            sop_instance_uid: uid(obj, tags::SOP_INSTANCE_UID, "SOPInstanceUID")?,
            study_instance_uid: uid(obj, tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
            series_instance_uid: uid(obj, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
            patient_id: text(obj, tags::PATIENT_ID),
            patient_name: text(obj, tags::PATIENT_NAME),
            patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
            patient_sex: text(obj, tags::PATIENT_SEX),
            accession_number: text(obj, tags::ACCESSION_NUMBER),
            study_id: text(obj, tags::STUDY_ID),
            study_date: text(obj, tags::STUDY_DATE),
            study_time: text(obj, tags::STUDY_TIME),
            study_description: text(obj, tags::STUDY_DESCRIPTION),
            referring_physician: text(obj, tags::REFERRING_PHYSICIAN_NAME),
            modality: text(obj, tags::MODALITY),
            body_part_examined: text(obj, tags::BODY_PART_EXAMINED),
            series_number: int(obj, tags::SERIES_NUMBER),
            series_description: text(obj, tags::SERIES_DESCRIPTION),
            instance_number: int(obj, tags::INSTANCE_NUMBER),
            rows: int(obj, tags::ROWS),
            columns: int(obj, tags::COLUMNS),
            number_of_frames: int(obj, tags::NUMBER_OF_FRAMES),
            view_position: text(obj, tags::VIEW_POSITION),
        })
    }
}
