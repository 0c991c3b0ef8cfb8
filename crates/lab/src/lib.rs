//! Offline model work, the implementations of three `triaged` commands
//! (the binary only parses their arguments):
//!
//! - [`phantom_set`] (`triaged phantom`): labelled phantom data sets,
//!   chest radiographs or head CT studies, as DICOM or PNG and labels.csv;
//! - [`train`] (`triaged train`): the bundled demonstration models trained
//!   on phantom images generated on the fly ([`chest`], [`head`]), their
//!   thresholds chosen on held-out validation sets ([`sets`]);
//! - [`evaluation`] (`triaged evaluate`): any model against a labelled data
//!   set, read as the daemon reads studies.
//!
//! Images reach a model through the same path a received instance takes
//! (written as DICOM, decoded by `imaging`, shaped by the manifest's input
//! spec); the models run in `infer`, whose API keeps candle inside it.

#![forbid(unsafe_code)]

pub mod chest;
pub mod evaluation;
pub mod head;
pub mod phantom_set;
pub mod sets;
pub mod train;

pub use sets::{Anatomy, Set};

/// Why a phantom set, a training run or an evaluation failed. Messages
/// name the argument, file or line at fault.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// An argument or input that cannot be used, said in words.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Infer(#[from] infer::InferError),
    #[error(transparent)]
    Classifier(#[from] infer::ClassifierError),
    #[error(transparent)]
    Manifest(#[from] infer::ManifestError),
    #[error(transparent)]
    Imaging(#[from] imaging::ImagingError),
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
    // Boxed: dicom-object's errors are large, and every result here
    // carries this type.
    #[error("cannot write a DICOM file: {0}")]
    WriteDicom(Box<dicom_object::WriteError>),
    #[error("cannot read a DICOM file: {0}")]
    ReadDicom(Box<dicom_object::ReadError>),
    #[error("cannot build a phantom instance: {0}")]
    Phantom(#[from] phantom::dicom::DicomError),
    #[error(transparent)]
    Csv(#[from] csv::Error),
    #[error("PNG: {0}")]
    PngRead(#[from] png::DecodingError),
    #[error("PNG: {0}")]
    PngWrite(#[from] png::EncodingError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Plot(#[from] evaluate::plots::PlotError),
}

impl From<dicom_object::WriteError> for LabError {
    fn from(e: dicom_object::WriteError) -> Self {
        LabError::WriteDicom(Box::new(e))
    }
}

impl From<dicom_object::ReadError> for LabError {
    fn from(e: dicom_object::ReadError) -> Self {
        LabError::ReadDicom(Box::new(e))
    }
}

/// `Err(LabError::Invalid(..))` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err($crate::LabError::Invalid(format!($($message)+)));
        }
    };
}
pub(crate) use ensure;
