//! Reading and checking the image header before any decoder runs.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use crate::ImagingError;

pub(crate) use attrs::{floats, int, text};

pub(crate) fn sop_of(obj: &DefaultDicomObject) -> String {
    text(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| "<no SOP Instance UID>".into())
}

/// The header fields that size the pixel data, validated.
pub(crate) struct Header {
    pub(crate) rows: usize,
    pub(crate) columns: usize,
    pub(crate) frames: usize,
    pub(crate) spp: usize,
    pub(crate) bits_allocated: u16,
    pub(crate) bits_stored: u16,
    pub(crate) high_bit: u16,
}

impl Header {
    pub(crate) fn read(
        obj: &DefaultDicomObject,
        sop: &str,
        max_samples: u64,
    ) -> Result<Header, ImagingError> {
        let bad = |attribute| ImagingError::BadAttribute {
            sop: sop.to_string(),
            attribute,
        };
        let positive = |tag, name, max: i64| match int(obj, tag) {
            Some(v) if (1..=max).contains(&v) => Ok(v),
            _ => Err(bad(name)),
        };
        let rows = positive(tags::ROWS, "Rows", 65535)? as usize;
        let columns = positive(tags::COLUMNS, "Columns", 65535)? as usize;
        let frames = match int(obj, tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(v) if (1..=1_000_000).contains(&v) => v as usize,
            Some(_) => return Err(bad("NumberOfFrames")),
        };
        let spp = positive(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel", 4)? as usize;
        if spp != 1 && spp != 3 {
            return Err(bad("SamplesPerPixel"));
        }
        let bits_allocated = positive(tags::BITS_ALLOCATED, "BitsAllocated", 64)? as u16;
        if ![8, 16, 32].contains(&bits_allocated) {
            return Err(ImagingError::Inconsistent {
                sop: sop.to_string(),
                detail: format!("BitsAllocated {bits_allocated} is not 8, 16 or 32"),
            });
        }
        let bits_stored = positive(tags::BITS_STORED, "BitsStored", 64)? as u16;
        if bits_stored > bits_allocated {
            return Err(ImagingError::Inconsistent {
                sop: sop.to_string(),
                detail: format!("BitsStored {bits_stored} exceeds BitsAllocated {bits_allocated}"),
            });
        }
        let high_bit = int(obj, tags::HIGH_BIT).unwrap_or(bits_stored as i64 - 1);
        if high_bit < bits_stored as i64 - 1 || high_bit >= bits_allocated as i64 {
            return Err(ImagingError::Inconsistent {
                sop: sop.to_string(),
                detail: format!("HighBit {high_bit} does not fit BitsStored {bits_stored} in BitsAllocated {bits_allocated}"),
            });
        }
        let samples = (rows * columns) as u64 * frames as u64 * spp as u64;
        if samples > max_samples {
            return Err(ImagingError::TooLarge {
                sop: sop.to_string(),
                bytes: samples * 4,
                limit: max_samples * 4,
            });
        }
        Ok(Header {
            rows,
            columns,
            frames,
            spp,
            bits_allocated,
            bits_stored,
            high_bit: high_bit as u16,
        })
    }

    pub(crate) fn native_bytes(&self) -> u64 {
        (self.rows * self.columns) as u64
            * self.frames as u64
            * self.spp as u64
            * (self.bits_allocated / 8) as u64
    }
}
