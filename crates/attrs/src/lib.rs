//! Reading attribute values from a DICOM data set, written once for every
//! triaged crate (ingest, decoding, reports, selection, the CLI).
//!
//! Each reader answers `None` when the attribute is absent, empty or not
//! readable as the asked type: callers decide what a missing value means
//! (a refusal at ingest, a default in a report), never a panic here.
//! A file object (`FileDicomObject`) dereferences to its data set, so
//! `attrs::text(&file, tag)` works on both.
#![forbid(unsafe_code)]

use dicom_core::Tag;

/// The Implementation Class UID triaged writes into the file meta of every
/// file it makes: `2.25.` + a fixed UUID as a decimal integer, so it does
/// not change with dicom-rs releases. (dicom-ul 0.10 puts its own in
/// association negotiation; file meta is the only place triaged can name
/// itself.)
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.267283936018423651742918730532093427713";

/// The Implementation Version Name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("TRIAGED_", env!("CARGO_PKG_VERSION"));
use dicom_object::InMemDicomObject;

/// A string attribute without DICOM padding (NUL or spaces at either end);
/// `None` when absent or empty. Multiple values stay joined by `\`.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_string())
}

/// Each value of a multi-valued string attribute (e.g. Image Type), trimmed;
/// empty when absent.
pub fn values(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    text(obj, tag)
        .map(|v| v.split('\\').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

/// An integer attribute (IS, US, SL, ...): its first value.
pub fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

/// A numeric attribute's values (DS, FD, ...), e.g. Pixel Spacing.
pub fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)?.to_multi_float64().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;

    fn with(tag: Tag, vr: VR, value: PrimitiveValue) -> InMemDicomObject {
        let mut obj = InMemDicomObject::new_empty();
        obj.put(DataElement::new(tag, vr, value));
        obj
    }

    #[test]
    fn text_loses_its_padding_and_empty_is_none() {
        let obj = with(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3\0".into());
        assert_eq!(
            text(&obj, tags::STUDY_INSTANCE_UID).as_deref(),
            Some("1.2.3")
        );
        let obj = with(tags::MODALITY, VR::CS, " CT ".into());
        assert_eq!(text(&obj, tags::MODALITY).as_deref(), Some("CT"));
        let obj = with(tags::ACCESSION_NUMBER, VR::SH, "  ".into());
        assert_eq!(text(&obj, tags::ACCESSION_NUMBER), None);
        assert_eq!(text(&obj, tags::MODALITY), None);
    }

    #[test]
    fn multiple_values_are_split_and_trimmed() {
        let obj = with(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(
                ["ORIGINAL", "PRIMARY", "LOCALIZER "]
                    .map(String::from)
                    .into_iter()
                    .collect(),
            ),
        );
        assert_eq!(
            values(&obj, tags::IMAGE_TYPE),
            ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        );
        assert!(values(&obj, tags::MODALITY).is_empty());
    }

    #[test]
    fn numbers_are_read_and_garbage_is_none() {
        let obj = with(tags::INSTANCE_NUMBER, VR::IS, "12 ".into());
        assert_eq!(int(&obj, tags::INSTANCE_NUMBER), Some(12));
        let obj = with(tags::INSTANCE_NUMBER, VR::IS, "twelve".into());
        assert_eq!(int(&obj, tags::INSTANCE_NUMBER), None);
        let obj = with(
            tags::PIXEL_SPACING,
            VR::DS,
            PrimitiveValue::Strs(["0.5", "0.25"].map(String::from).into_iter().collect()),
        );
        assert_eq!(floats(&obj, tags::PIXEL_SPACING), Some(vec![0.5, 0.25]));
        assert_eq!(floats(&obj, tags::SLICE_THICKNESS), None);
    }
}
