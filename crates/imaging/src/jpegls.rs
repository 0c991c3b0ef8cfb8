//! JPEG-LS decoding through the system CharLS library (C API).
//!
//! dicom-rs's own CharLS support compiles CharLS from source with CMake;
//! the project links only C libraries that Debian ships, so this small
//! binding calls libcharls (2.x) directly. Each frame is decoded into a
//! fresh buffer whose size CharLS computes from the frame header and that
//! is checked against the DICOM header before anything is written.

use std::ffi::{c_char, c_void, CStr};

use crate::ImagingError;

#[repr(C)]
struct Decoder {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Default)]
struct FrameInfo {
    width: u32,
    height: u32,
    bits_per_sample: i32,
    component_count: i32,
}

#[link(name = "charls")]
extern "C" {
    fn charls_jpegls_decoder_create() -> *mut Decoder;
    fn charls_jpegls_decoder_destroy(decoder: *const Decoder);
    fn charls_jpegls_decoder_set_source_buffer(
        decoder: *mut Decoder,
        source: *const c_void,
        size: usize,
    ) -> i32;
    fn charls_jpegls_decoder_read_header(decoder: *mut Decoder) -> i32;
    fn charls_jpegls_decoder_get_frame_info(decoder: *const Decoder, info: *mut FrameInfo) -> i32;
    fn charls_jpegls_decoder_get_interleave_mode(decoder: *const Decoder, mode: *mut i32) -> i32;
    fn charls_jpegls_decoder_get_destination_size(
        decoder: *const Decoder,
        stride: u32,
        size: *mut usize,
    ) -> i32;
    fn charls_jpegls_decoder_decode_to_buffer(
        decoder: *mut Decoder,
        destination: *mut c_void,
        size: usize,
        stride: u32,
    ) -> i32;
    fn charls_get_error_message(error: i32) -> *const c_char;
}

/// A decoded frame: samples of `bits_per_sample` (stored in 1 or 2 bytes,
/// little endian), interleaved by pixel.
pub(crate) struct Decoded {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub bits_per_sample: u32,
    pub data: Vec<u8>,
}

struct Handle(*mut Decoder);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by charls_jpegls_decoder_create, destroyed once.
        unsafe { charls_jpegls_decoder_destroy(self.0) }
    }
}

fn check(code: i32) -> Result<(), String> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: CharLS returns a static NUL-terminated message for any code.
    let msg = unsafe { charls_get_error_message(code) };
    if msg.is_null() {
        return Err(format!("CharLS error {code}"));
    }
    Err(unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned())
}

/// Decode one JPEG-LS code stream, refusing output larger than `max_bytes`.
pub(crate) fn decode(stream: &[u8], max_bytes: usize) -> Result<Decoded, String> {
    // SAFETY: every pointer passed below is valid for the call: the decoder
    // handle (checked non-null), `stream` (borrowed for the whole decode),
    // and the output buffer allocated with the size CharLS asks for.
    unsafe {
        let raw = charls_jpegls_decoder_create();
        if raw.is_null() {
            return Err("CharLS could not create a decoder".into());
        }
        let handle = Handle(raw);
        check(charls_jpegls_decoder_set_source_buffer(
            handle.0,
            stream.as_ptr().cast(),
            stream.len(),
        ))?;
        check(charls_jpegls_decoder_read_header(handle.0))?;
        let mut info = FrameInfo::default();
        check(charls_jpegls_decoder_get_frame_info(handle.0, &mut info))?;
        let mut mode = 0i32;
        check(charls_jpegls_decoder_get_interleave_mode(
            handle.0, &mut mode,
        ))?;
        if !(2..=16).contains(&info.bits_per_sample) || !(1..=4).contains(&info.component_count) {
            return Err(format!(
                "unsupported frame: {} bits, {} components",
                info.bits_per_sample, info.component_count
            ));
        }
        let mut size = 0usize;
        check(charls_jpegls_decoder_get_destination_size(
            handle.0, 0, &mut size,
        ))?;
        if size > max_bytes {
            return Err(format!(
                "frame of {size} bytes exceeds the {max_bytes} the header allows"
            ));
        }
        let mut data = vec![0u8; size];
        check(charls_jpegls_decoder_decode_to_buffer(
            handle.0,
            data.as_mut_ptr().cast(),
            size,
            0,
        ))?;
        let (w, h, c) = (
            info.width as usize,
            info.height as usize,
            info.component_count as usize,
        );
        // Interleave mode NONE stores each component as a plane.
        if mode == 0 && c > 1 {
            let bytes = if info.bits_per_sample > 8 { 2 } else { 1 };
            let plane = w * h * bytes;
            let mut inter = vec![0u8; data.len()];
            for p in 0..w * h {
                for k in 0..c {
                    let src = k * plane + p * bytes;
                    let dst = (p * c + k) * bytes;
                    inter[dst..dst + bytes].copy_from_slice(&data[src..src + bytes]);
                }
            }
            data = inter;
        }
        Ok(Decoded {
            width: w,
            height: h,
            components: c,
            bits_per_sample: info.bits_per_sample as u32,
            data,
        })
    }
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
/// all frames of a JPEG-LS encapsulated pixel sequence.
pub(crate) fn to_native(
    fragments: &[Vec<u8>],
    offsets: &[u32],
    g: &Geometry,
    sop: &str,
    ts: &str,
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
    let frame_bytes = rows * columns * spp * bytes;
    let mut out = Vec::with_capacity(frame_bytes * frames);
    for stream in &streams {
        let d = decode(stream, rows * columns * spp * 2).map_err(err)?;
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
