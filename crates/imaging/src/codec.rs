//! Codecs triaged runs itself: JPEG-LS (CharLS, compiled by charls-sys)
//! and JPEG 2000 / HTJ2K (Debian's OpenJPEG) in C, and 12-bit JPEG in Rust. Their
//! output becomes native pixel data, so the rest of decoding is the same
//! for every syntax.

use crate::ImagingError;

pub(crate) const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];
pub(crate) const JPEG_2000: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

const JPEG_DCT: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

/// Whether `ts` is decoded here rather than by dicom-pixeldata: JPEG-LS,
/// JPEG 2000, and JPEG with 12-bit samples (which jpeg-decoder refuses).
pub(crate) fn handles(ts: &str, first_fragment: &[u8]) -> bool {
    JPEG_LS.contains(&ts)
        || JPEG_2000.contains(&ts)
        || (JPEG_DCT.contains(&ts) && crate::jpeg12::precision(first_fragment) == Some(12))
}

/// A decoded frame: samples in 1 byte (up to 8 bits) or 2 bytes little
/// endian, interleaved by pixel.
pub(crate) struct Decoded {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub bits_per_sample: u32,
    pub data: Vec<u8>,
}

/// What the DICOM header says the frames are.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    pub rows: usize,
    pub columns: usize,
    pub frames: usize,
    pub spp: usize,
    pub bits_allocated: u16,
}

/// Native (uncompressed, little endian, interleaved) Pixel Data bytes for
/// all frames of an encapsulated pixel sequence in transfer syntax `ts`.
pub(crate) fn to_native(
    ts: &str,
    fragments: &[Vec<u8>],
    offsets: &[u32],
    g: &Geometry,
    sop: &str,
) -> Result<Vec<u8>, ImagingError> {
    let Geometry {
        rows,
        columns,
        frames,
        spp,
        bits_allocated,
    } = *g;
    let err = |detail: String| ImagingError::Decode {
        sop: sop.to_string(),
        ts: ts.to_string(),
        detail,
    };
    let streams: Vec<Vec<u8>> = if fragments.len() == frames {
        fragments.to_vec()
    } else if frames == 1 {
        vec![fragments.concat()]
    } else if offsets.len() == frames {
        // Group fragments by the Basic Offset Table (offsets count item
        // headers of 8 bytes each).
        let mut streams = vec![Vec::new(); frames];
        let mut pos = 0u64;
        for frag in fragments {
            let frame = offsets.iter().rposition(|&o| o as u64 <= pos).unwrap_or(0);
            streams[frame].extend_from_slice(frag);
            pos += frag.len() as u64 + 8;
        }
        streams
    } else {
        return Err(err(format!(
            "{} fragments for {frames} frames and no offset table",
            fragments.len()
        )));
    };
    let bytes = (bits_allocated / 8) as usize;
    let frame_samples = rows * columns * spp;
    let mut out = Vec::with_capacity(frame_samples * bytes * frames);
    for stream in &streams {
        let d = if JPEG_LS.contains(&ts) {
            crate::jpegls::decode(stream, frame_samples * 2)
        } else if JPEG_DCT.contains(&ts) {
            crate::jpeg12::decode(stream, frame_samples).map(|i| Decoded {
                width: i.width,
                height: i.height,
                components: i.components,
                bits_per_sample: i.precision as u32,
                data: i.samples.iter().flat_map(|v| v.to_le_bytes()).collect(),
            })
        } else {
            crate::jpeg2k::decode(stream, frame_samples)
        }
        .map_err(err)?;
        if d.width != columns || d.height != rows || d.components != spp {
            return Err(err(format!(
                "frame is {}x{}x{}; the header says {columns}x{rows}x{spp}",
                d.width, d.height, d.components
            )));
        }
        let in_bytes = if d.bits_per_sample > 8 { 2 } else { 1 };
        if in_bytes > bytes {
            return Err(err(format!(
                "{}-bit samples in {bits_allocated}-bit pixels",
                d.bits_per_sample
            )));
        }
        for sample in d.data.chunks_exact(in_bytes) {
            let v = if in_bytes == 2 {
                u16::from_le_bytes([sample[0], sample[1]]) as u32
            } else {
                sample[0] as u32
            };
            out.extend_from_slice(&v.to_le_bytes()[..bytes]);
        }
    }
    Ok(out)
}
