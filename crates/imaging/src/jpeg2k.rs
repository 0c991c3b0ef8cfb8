//! JPEG 2000 (and HTJ2K) decoding through the system OpenJPEG library.
//!
//! The pure-Rust port that dicom-rs offers (`openjp2`) is single-threaded
//! and slower than C OpenJPEG on large radiographs; Debian ships OpenJPEG
//! 2.5 (libopenjp2-7-dev), which also decodes High-Throughput JPEG 2000 and
//! can use several threads per image. Compiled from source by the
//! `openjpeg-sys` crate instead, it decoded no faster (`bench/codec_sys.sh`:
//! within the run-to-run spread), so the system library stays, its version
//! checked by build.rs. This binding decodes one code stream from memory
//! into interleaved samples.

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::codec::Decoded;

#[repr(C)]
struct Codec {
    _private: [u8; 0],
}
#[repr(C)]
struct Stream {
    _private: [u8; 0],
}

#[repr(C)]
struct ImageComp {
    dx: u32,
    dy: u32,
    w: u32,
    h: u32,
    x0: u32,
    y0: u32,
    prec: u32,
    bpp: u32,
    sgnd: u32,
    resno_decoded: u32,
    factor: u32,
    data: *mut i32,
    alpha: u16,
}

#[repr(C)]
struct Image {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    numcomps: u32,
    color_space: i32,
    comps: *mut ImageComp,
    icc_profile_buf: *mut u8,
    icc_profile_len: u32,
}

type ReadFn = extern "C" fn(*mut c_void, usize, *mut c_void) -> usize;
type SkipFn = extern "C" fn(i64, *mut c_void) -> i64;
type SeekFn = extern "C" fn(i64, *mut c_void) -> i32;
type MsgFn = extern "C" fn(*const c_char, *mut c_void);

// Linked by build.rs (pkg-config, OpenJPEG 2.5 to 2.x checked).
extern "C" {
    fn opj_create_decompress(format: i32) -> *mut Codec;
    fn opj_destroy_codec(codec: *mut Codec);
    fn opj_set_default_decoder_parameters(params: *mut c_void);
    fn opj_setup_decoder(codec: *mut Codec, params: *mut c_void) -> i32;
    fn opj_codec_set_threads(codec: *mut Codec, threads: i32) -> i32;
    fn opj_set_error_handler(codec: *mut Codec, f: MsgFn, user: *mut c_void) -> i32;
    fn opj_read_header(stream: *mut Stream, codec: *mut Codec, image: *mut *mut Image) -> i32;
    fn opj_decode(codec: *mut Codec, stream: *mut Stream, image: *mut Image) -> i32;
    fn opj_end_decompress(codec: *mut Codec, stream: *mut Stream) -> i32;
    fn opj_image_destroy(image: *mut Image);
    fn opj_stream_create(buffer_size: usize, is_input: i32) -> *mut Stream;
    fn opj_stream_destroy(stream: *mut Stream);
    fn opj_stream_set_read_function(stream: *mut Stream, f: ReadFn);
    fn opj_stream_set_skip_function(stream: *mut Stream, f: SkipFn);
    fn opj_stream_set_seek_function(stream: *mut Stream, f: SeekFn);
    fn opj_stream_set_user_data(
        stream: *mut Stream,
        data: *mut c_void,
        free: Option<extern "C" fn(*mut c_void)>,
    );
    fn opj_stream_set_user_data_length(stream: *mut Stream, len: u64);
}

/// Threads OpenJPEG may use per image (0: one per available core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Set how many threads JPEG 2000 decoding may use for one image; 0 means
/// one per available core. `triaged serve` sets it to the cores divided
/// by `[pipeline] workers`.
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

fn threads() -> i32 {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8) as i32,
        n => n.min(64) as i32,
    }
}

/// The in-memory source the stream callbacks read.
struct Source<'a> {
    data: &'a [u8],
    pos: usize,
}

extern "C" fn read(buf: *mut c_void, n: usize, user: *mut c_void) -> usize {
    // SAFETY: `user` is the `Source` registered below, alive for the decode;
    // `buf` has room for `n` bytes (OpenJPEG's contract).
    let src = unsafe { &mut *(user as *mut Source) };
    let left = src.data.len() - src.pos;
    if left == 0 {
        return usize::MAX; // (OPJ_SIZE_T)-1: end of stream
    }
    let k = n.min(left);
    // SAFETY: `k` bytes are left in `data` from `pos` and `buf` has room
    // for `n >= k`; the two never overlap (OpenJPEG's buffer is its own).
    unsafe { std::ptr::copy_nonoverlapping(src.data.as_ptr().add(src.pos), buf as *mut u8, k) };
    src.pos += k;
    k
}

extern "C" fn skip(n: i64, user: *mut c_void) -> i64 {
    // SAFETY: as in `read`.
    let src = unsafe { &mut *(user as *mut Source) };
    let target = (src.pos as i64)
        .saturating_add(n)
        .clamp(0, src.data.len() as i64);
    let moved = target - src.pos as i64;
    src.pos = target as usize;
    moved
}

extern "C" fn seek(n: i64, user: *mut c_void) -> i32 {
    // SAFETY: as in `read`.
    let src = unsafe { &mut *(user as *mut Source) };
    if n < 0 || n as usize > src.data.len() {
        return 0;
    }
    src.pos = n as usize;
    1
}

extern "C" fn on_error(msg: *const c_char, user: *mut c_void) {
    if msg.is_null() || user.is_null() {
        return;
    }
    // SAFETY: `user` is the `String` registered below; `msg` is a C string.
    let out = unsafe { &mut *(user as *mut String) };
    // SAFETY: OpenJPEG passes a NUL-terminated message, checked non-null.
    *out = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .trim()
        .to_string();
}

/// RAII guards so every exit path frees what OpenJPEG allocated.
struct CodecGuard(*mut Codec);
impl Drop for CodecGuard {
    fn drop(&mut self) {
        // SAFETY: the guard owns the codec OpenJPEG created; freed once.
        unsafe { opj_destroy_codec(self.0) }
    }
}
struct StreamGuard(*mut Stream);
impl Drop for StreamGuard {
    fn drop(&mut self) {
        // SAFETY: the guard owns the stream OpenJPEG created; freed once.
        unsafe { opj_stream_destroy(self.0) }
    }
}
struct ImageGuard(*mut Image);
impl Drop for ImageGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the guard owns the image OpenJPEG decoded; freed once.
            unsafe { opj_image_destroy(self.0) }
        }
    }
}

/// Decode a J2K code stream (or a JP2 file) into interleaved samples,
/// refusing images of more than `max_samples` samples.
pub(crate) fn decode(stream: &[u8], max_samples: usize) -> Result<Decoded, String> {
    const JP2_SIGNATURE: &[u8] = b"\x00\x00\x00\x0cjP  \r\n\x87\n";
    let format = if stream.starts_with(JP2_SIGNATURE) {
        2
    } else {
        0
    };
    let mut source = Source {
        data: stream,
        pos: 0,
    };
    let mut error = String::new();
    // opj_dparameters_t is about 8.3 KB in OpenJPEG 2.5; this zeroed,
    // 8-byte-aligned buffer is comfortably larger and is only written and
    // read by OpenJPEG itself.
    let mut params = vec![0u64; 4096];
    // SAFETY: every pointer handed to OpenJPEG stays valid for the calls
    // that use it: the codec, stream and image (freed by the guards), the
    // parameters buffer, `source` and `error` (locals outliving the codec
    // and stream guards, which are dropped first).
    unsafe {
        let codec = opj_create_decompress(format);
        if codec.is_null() {
            return Err("OpenJPEG could not create a decoder".into());
        }
        let codec = CodecGuard(codec);
        opj_set_error_handler(codec.0, on_error, &mut error as *mut String as *mut c_void);
        opj_set_default_decoder_parameters(params.as_mut_ptr().cast());
        if opj_setup_decoder(codec.0, params.as_mut_ptr().cast()) == 0 {
            return Err(format!("OpenJPEG setup failed: {error}"));
        }
        opj_codec_set_threads(codec.0, threads());
        let s = opj_stream_create(1 << 20, 1);
        if s.is_null() {
            return Err("OpenJPEG could not create a stream".into());
        }
        let s = StreamGuard(s);
        opj_stream_set_read_function(s.0, read);
        opj_stream_set_skip_function(s.0, skip);
        opj_stream_set_seek_function(s.0, seek);
        opj_stream_set_user_data(s.0, &mut source as *mut Source as *mut c_void, None);
        opj_stream_set_user_data_length(s.0, stream.len() as u64);
        let mut image: *mut Image = std::ptr::null_mut();
        let ok = opj_read_header(s.0, codec.0, &mut image);
        let image = ImageGuard(image);
        if ok == 0 || image.0.is_null() {
            return Err(format!("cannot read the JPEG 2000 header: {error}"));
        }
        let img = &*image.0;
        let comps = std::slice::from_raw_parts(img.comps, img.numcomps as usize);
        if comps.is_empty() || comps.len() > 4 {
            return Err(format!("{} components", comps.len()));
        }
        let (w, h) = ((img.x1 - img.x0) as usize, (img.y1 - img.y0) as usize);
        if w.saturating_mul(h).saturating_mul(comps.len()) > max_samples {
            return Err(format!(
                "a {w}x{h}x{} image exceeds what the header allows",
                comps.len()
            ));
        }
        if opj_decode(codec.0, s.0, image.0) == 0 || opj_end_decompress(codec.0, s.0) == 0 {
            return Err(format!("JPEG 2000 decoding failed: {error}"));
        }
        let comps = std::slice::from_raw_parts((*image.0).comps, (*image.0).numcomps as usize);
        let prec = comps[0].prec;
        if comps
            .iter()
            .any(|c| c.w as usize != w || c.h as usize != h || c.data.is_null() || c.prec != prec)
        {
            return Err("subsampled or inconsistent components are not supported".into());
        }
        if !(1..=16).contains(&prec) {
            return Err(format!("{prec}-bit samples are not supported"));
        }
        let planes: Vec<&[i32]> = comps
            .iter()
            .map(|c| std::slice::from_raw_parts(c.data, w * h))
            .collect();
        let bytes = if prec > 8 { 2 } else { 1 };
        let mut data = Vec::with_capacity(w * h * planes.len() * bytes);
        for p in 0..w * h {
            for plane in &planes {
                // Two's complement in the stored width; sign is restored
                // from Bits Stored when the samples are unpacked.
                let v = plane[p] as u32;
                data.extend_from_slice(&v.to_le_bytes()[..bytes]);
            }
        }
        Ok(Decoded {
            width: w,
            height: h,
            components: planes.len(),
            bits_per_sample: prec,
            data,
        })
    }
}
