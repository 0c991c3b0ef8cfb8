/// Why an instance's pixels cannot be turned into a tensor. Each variant
/// names the SOP Instance UID, so a log line identifies the image without
/// patient data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImagingError {
    /// The file is not a readable DICOM file (path only: no patient data).
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{sop}: no Pixel Data")]
    MissingPixelData { sop: String },
    #[error("{sop}: transfer syntax {ts} cannot be decoded by this build")]
    UnsupportedTransferSyntax { sop: String, ts: String },
    #[error("{sop}: {attribute} is missing or invalid")]
    BadAttribute {
        sop: String,
        attribute: &'static str,
    },
    #[error("{sop}: inconsistent image header: {detail}")]
    Inconsistent { sop: String, detail: String },
    #[error("{sop}: Pixel Data has {actual} bytes; Rows x Columns x frames x samples declare {expected}")]
    Truncated {
        sop: String,
        expected: u64,
        actual: u64,
    },
    #[error("{sop}: the image would take {bytes} bytes decoded, over the {limit}-byte limit")]
    TooLarge { sop: String, bytes: u64, limit: u64 },
    #[error("{sop}: cannot decode pixel data ({ts}): {detail}")]
    Decode {
        sop: String,
        ts: String,
        detail: String,
    },
    #[error("{sop}: {what} is not supported for photometric interpretation {photometric}")]
    UnsupportedPhotometric {
        sop: String,
        photometric: String,
        what: &'static str,
    },
    #[error("{sop}: frame {frame} requested; the image has {frames}")]
    NoSuchFrame {
        sop: String,
        frame: usize,
        frames: usize,
    },
    #[error("invalid input specification: {0}")]
    Spec(String),
}
