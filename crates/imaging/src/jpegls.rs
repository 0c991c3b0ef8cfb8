//! JPEG-LS decoding through CharLS (its C API), compiled from source and
//! linked statically by the `charls-sys` crate, whose generated bindings
//! give the declarations and the frame-info layout. Measured against
//! Debian's libcharls (`bench/codec_sys.sh`, docs/performance.md), the
//! build from source decodes a 1955×1841 radiograph in 0.55–0.69 of the
//! time. Each frame is decoded into a fresh buffer whose size CharLS
//! computes from the frame header and that is checked against the DICOM
//! header before anything is written.

use std::ffi::CStr;

use charls_sys::{
    charls_frame_info as FrameInfo, charls_get_error_message, charls_interleave_mode,
    charls_interleave_mode_none as INTERLEAVE_NONE, charls_jpegls_decoder as Decoder,
    charls_jpegls_decoder_create, charls_jpegls_decoder_decode_to_buffer,
    charls_jpegls_decoder_destroy, charls_jpegls_decoder_get_destination_size,
    charls_jpegls_decoder_get_frame_info, charls_jpegls_decoder_read_header,
    charls_jpegls_decoder_set_source_buffer, charls_jpegls_errc,
};

use crate::codec::Decoded;

// In CharLS's C API (charls_jpegls_decoder.h) but not in charls-sys's
// generated bindings; the symbol is in the library it builds.
extern "C" {
    fn charls_jpegls_decoder_get_interleave_mode(
        decoder: *const Decoder,
        interleave_mode: *mut charls_interleave_mode,
    ) -> charls_jpegls_errc;
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
    // SAFETY: checked non-null; a static NUL-terminated string (above).
    Err(unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned())
}

/// Decode one JPEG-LS code stream, refusing output larger than `max_bytes`.
pub(crate) fn decode(stream: &[u8], max_bytes: usize) -> Result<Decoded, String> {
    // CharLS 2.4 spends seconds on a truncated stream of a small image (it
    // keeps decoding past the end); a complete stream ends with EOI, before
    // any even-length padding.
    let end = stream.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < 2 || stream[end - 2..end] != [0xFF, 0xD9] {
        return Err("the JPEG-LS stream is truncated (no EOI marker)".into());
    }
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
        let mut info = FrameInfo {
            width: 0,
            height: 0,
            bits_per_sample: 0,
            component_count: 0,
        };
        check(charls_jpegls_decoder_get_frame_info(handle.0, &mut info))?;
        let mut mode = INTERLEAVE_NONE;
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
        if mode == INTERLEAVE_NONE && c > 1 {
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
