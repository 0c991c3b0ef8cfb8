//! The SOP classes triaged accepts as an SCP.

use dicom_dictionary_std::uids;

use crate::storage_classes::STORAGE_SOP_CLASSES;

/// Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = uids::VERIFICATION;

/// Every standard Storage SOP class, retired ones included: old modalities
/// still send retired classes (the first ultrasound classes, say), and a
/// triage node that refuses them silently loses studies.
pub fn storage_sop_classes() -> impl Iterator<Item = &'static str> {
    STORAGE_SOP_CLASSES.iter().map(|(uid, _)| *uid)
}

/// Every storage SOP class with its name (for the conformance statement).
pub fn storage_classes() -> &'static [(&'static str, &'static str)] {
    STORAGE_SOP_CLASSES
}

/// The transfer syntaxes the SCP accepts: every one the linked registry
/// can read (dicom-ul accepts exactly these; pixel data is stored as
/// received, so a syntax is accepted whether or not its codec is built
/// in). (UID, name), by UID.
pub fn accepted_transfer_syntaxes() -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .iter()
        .filter(|ts| !ts.is_unsupported())
        .map(|ts| (ts.uid(), ts.name()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The human name of a storage SOP class, for logs and errors.
pub fn storage_class_name(uid: &str) -> Option<&'static str> {
    STORAGE_SOP_CLASSES
        .iter()
        .find(|(u, _)| *u == uid)
        .map(|(_, n)| *n)
}

/// Whether a SOP class UID is a storage class we accept.
pub fn is_storage(uid: &str) -> bool {
    storage_sop_classes().any(|s| s == uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::dictionary::{UidDictionary, UidType};
    use dicom_dictionary_std::StandardSopClassDictionary;

    #[test]
    fn table_matches_the_standard_dictionary() {
        for (uid, name) in STORAGE_SOP_CLASSES {
            let entry = StandardSopClassDictionary
                .by_uid(uid)
                .unwrap_or_else(|| panic!("{uid} is not a standard SOP class"));
            assert_eq!(entry.name, *name);
            assert_eq!(entry.r#type, UidType::SopClass);
        }
    }

    #[test]
    fn includes_the_classes_triage_sees() {
        let all: Vec<_> = storage_sop_classes().collect();
        for uid in [
            uids::CT_IMAGE_STORAGE,
            uids::ENHANCED_CT_IMAGE_STORAGE,
            uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE,
            uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
            uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
            uids::MR_IMAGE_STORAGE,
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
            uids::ULTRASOUND_IMAGE_STORAGE,
            uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE,
            uids::COMPREHENSIVE_SR_STORAGE,
            uids::COMPREHENSIVE3_DSR_STORAGE,
            uids::ENCAPSULATED_PDF_STORAGE,
            uids::GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
        ] {
            assert!(all.contains(&uid), "missing {uid}");
        }
        assert!(!all.contains(&uids::STORAGE_COMMITMENT_PUSH_MODEL));
        assert!(!all.contains(&uids::VERIFICATION));
        assert!(all.len() > 100, "only {} storage classes", all.len());
    }
}

#[cfg(test)]
mod transfer_syntax_tests {
    use dicom_ul::association::server::is_supported;

    /// The association layer accepts whatever transfer syntax the peer
    /// proposes first among those the registry knows; compressed ones are
    /// stored as received, so no codec is needed for them.
    #[test]
    fn every_standard_transfer_syntax_is_accepted() {
        for ts in [
            "1.2.840.10008.1.2",       // implicit VR little endian
            "1.2.840.10008.1.2.1",     // explicit VR little endian
            "1.2.840.10008.1.2.2",     // explicit VR big endian (retired)
            "1.2.840.10008.1.2.1.99",  // deflated explicit VR little endian
            "1.2.840.10008.1.2.5",     // RLE lossless
            "1.2.840.10008.1.2.4.50",  // JPEG baseline
            "1.2.840.10008.1.2.4.51",  // JPEG extended
            "1.2.840.10008.1.2.4.57",  // JPEG lossless
            "1.2.840.10008.1.2.4.70",  // JPEG lossless SV1
            "1.2.840.10008.1.2.4.80",  // JPEG-LS lossless
            "1.2.840.10008.1.2.4.81",  // JPEG-LS near-lossless
            "1.2.840.10008.1.2.4.90",  // JPEG 2000 lossless
            "1.2.840.10008.1.2.4.91",  // JPEG 2000
            "1.2.840.10008.1.2.4.92",  // JPEG 2000 part 2 lossless
            "1.2.840.10008.1.2.4.93",  // JPEG 2000 part 2
            "1.2.840.10008.1.2.4.201", // HTJ2K lossless
            "1.2.840.10008.1.2.4.202", // HTJ2K lossless RPCL
            "1.2.840.10008.1.2.4.203", // HTJ2K
            "1.2.840.10008.1.2.4.100", // MPEG-2
            "1.2.840.10008.1.2.4.102", // MPEG-4
            "1.2.840.10008.1.2.4.107", // HEVC
        ] {
            assert!(is_supported(ts), "{ts} would be refused");
        }
    }
}
