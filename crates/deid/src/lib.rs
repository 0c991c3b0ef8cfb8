//! De-identification of DICOM objects by DICOM PS3.15 Annex E: the Basic
//! Application Level Confidentiality Profile, with the Retain Longitudinal
//! Temporal Information with Modified Dates Option when dates are shifted.
//!
//! [`profile`] holds Table E.1-1 as the standard publishes it (generated
//! into `profile/table-e1-1.tsv` by `tools/deid_profile.py`) and says what
//! each attribute becomes; [`Deidentifier`] applies it to an object at
//! every depth: identifying attributes removed, emptied or given dummy
//! values, UIDs replaced by ones derived from a secret [`Key`] (the same
//! UID always becomes the same new UID under one key, so a study, its
//! series and the reports that reference them stay consistent), dates
//! removed or shifted by a number of days fixed per patient, private
//! attributes removed. Objects whose pixels carry burned-in annotation are
//! refused, since no attribute change can clean them, and so are content
//! trees (structured reports) triaged did not write, whose free text may
//! name the patient.
//!
//! The crate knows nothing of the archive or the network: the CLI's
//! `export` and the DICOM destinations use it alike.

mod dates;
mod deidentifier;
pub mod profile;

pub use deidentifier::{Dates, Deidentifier, Key, Source};

/// Why an object was not de-identified.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// Burned In Annotation (0028,0301) is YES: the pixels may show names
    /// or IDs, which this profile does not clean.
    #[error("burned-in annotation (0028,0301 is YES): the pixels may show identifying text")]
    BurnedInAnnotation,
    /// A structured report (or other object with a content tree) that
    /// triaged did not make: its free text (TEXT items) may name the
    /// patient, which the Basic Profile does not clean.
    #[error("a content tree (0040,A730) from elsewhere: its free text may identify the patient")]
    ForeignContent,
    #[error("no SOP Instance UID")]
    NoSopInstanceUid,
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
    #[error("cannot read the key file {path}: {detail}")]
    Key { path: String, detail: String },
}
