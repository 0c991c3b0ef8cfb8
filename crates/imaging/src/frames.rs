//! Decoding: stored sample values, checked against the header.

use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{
    PhotometricInterpretation, PixelDecoder, PixelRepresentation, PlanarConfiguration,
    VoiLutFunction,
};

use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

use crate::voi::{Voi, VoiFunction, VoiLut};
use crate::ImagingError;

/// Decoded images above this size are refused (4 GiB of i32 samples).
pub const DEFAULT_MAX_SAMPLES: u64 = 1 << 30;

/// How the samples are to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Photometric {
    /// Minimum sample value is white.
    Monochrome1,
    Monochrome2,
    /// Three samples per pixel (YBR data is converted to RGB on decoding).
    Rgb,
    Other(String),
}

/// The decoded frames of one instance, as stored sample values (before any
/// LUT), `frames x rows x columns x samples`, interleaved.
#[derive(Debug, Clone)]
pub struct Frames {
    pub sop_instance_uid: String,
    pub transfer_syntax: String,
    pub rows: usize,
    pub columns: usize,
    pub frames: usize,
    pub samples_per_pixel: usize,
    pub photometric: Photometric,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    /// (row spacing, column spacing) in mm, from Pixel Spacing or, failing
    /// that, Imager Pixel Spacing.
    pub pixel_spacing: Option<[f64; 2]>,
    /// Modality LUT per frame (one entry: the same for all frames).
    pub(crate) rescale: Vec<(f64, f64)>,
    /// VOI per frame (one entry: the same for all frames).
    pub(crate) voi: Vec<Voi>,
    samples: Vec<i32>,
}

fn sop_of(obj: &DefaultDicomObject) -> String {
    text(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| "<no SOP Instance UID>".into())
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let v = obj.element_opt(tag).ok()??.to_str().ok()?;
    let v = v.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!v.is_empty()).then(|| v.to_string())
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok()??.to_int::<i64>().ok()
}

fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok()??.to_multi_float64().ok()
}

/// The header fields that size the pixel data, validated.
struct Header {
    rows: usize,
    columns: usize,
    frames: usize,
    spp: usize,
    bits_allocated: u16,
    bits_stored: u16,
    high_bit: u16,
}

impl Header {
    fn read(obj: &DefaultDicomObject, sop: &str, max_samples: u64) -> Result<Header, ImagingError> {
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

    fn native_bytes(&self) -> u64 {
        (self.rows * self.columns) as u64
            * self.frames as u64
            * self.spp as u64
            * (self.bits_allocated / 8) as u64
    }
}

impl Frames {
    /// Decode every frame of an instance.
    pub fn decode(obj: &DefaultDicomObject) -> Result<Frames, ImagingError> {
        Self::decode_with_limit(obj, DEFAULT_MAX_SAMPLES)
    }

    /// Decode, refusing images of more than `max_samples` samples.
    pub fn decode_with_limit(
        obj: &DefaultDicomObject,
        max_samples: u64,
    ) -> Result<Frames, ImagingError> {
        let sop = sop_of(obj);
        let ts = obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let pixel_data = obj
            .element_opt(tags::PIXEL_DATA)
            .ok()
            .flatten()
            .ok_or_else(|| ImagingError::MissingPixelData { sop: sop.clone() })?;
        let mut header = Header::read(obj, &sop, max_samples)?;
        let ybr_422 = header.spp == 3
            && text(obj, tags::PHOTOMETRIC_INTERPRETATION).as_deref() == Some("YBR_FULL_422")
            && matches!(pixel_data.value(), Value::Primitive(_));
        match pixel_data.value() {
            Value::Primitive(p) => {
                let actual = p.calculate_byte_len() as u64;
                // YBR_FULL_422 stores two chroma samples per pair of pixels.
                let expected = if ybr_422 {
                    header.native_bytes() / 3 * 2
                } else {
                    header.native_bytes()
                };
                if actual < expected {
                    return Err(ImagingError::Truncated {
                        sop,
                        expected,
                        actual,
                    });
                }
            }
            Value::PixelSequence(seq) => {
                if seq.fragments().is_empty() {
                    return Err(ImagingError::Truncated {
                        sop,
                        expected: header.native_bytes(),
                        actual: 0,
                    });
                }
            }
            Value::Sequence(_) => {
                return Err(ImagingError::BadAttribute {
                    sop,
                    attribute: "PixelData",
                })
            }
        }

        // JPEG-LS and JPEG 2000 go through Debian's CharLS and OpenJPEG; the
        // result is decoded as the equivalent native object, so LUT
        // attributes are read the same way for every syntax.
        let transcoded;
        let first_fragment = match pixel_data.value() {
            Value::PixelSequence(seq) => {
                seq.fragments().first().map(|f| f.as_slice()).unwrap_or(&[])
            }
            _ => &[],
        };
        let source = if !first_fragment.is_empty() && crate::codec::handles(&ts, first_fragment) {
            transcoded = decoded_as_native(obj, &header, &sop, &ts)?;
            &transcoded
        } else if ybr_422 {
            transcoded = expand_ybr_422(obj, &header, &sop)?;
            &transcoded
        } else {
            obj
        };

        // Decoders are third-party code fed hostile input: a panic in one
        // becomes this instance's error.
        let decoded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.decode_pixel_data()))
                .map_err(|_| ImagingError::Decode {
                    sop: sop.clone(),
                    ts: ts.clone(),
                    detail: "decoder panicked".into(),
                })?
                .map_err(|e| {
                    let detail = e.to_string();
                    if detail.contains("Unsupported TransferSyntax")
                        || detail.contains("Unsupported transfer syntax")
                    {
                        ImagingError::UnsupportedTransferSyntax {
                            sop: sop.clone(),
                            ts: ts.clone(),
                        }
                    } else {
                        ImagingError::Decode {
                            sop: sop.clone(),
                            ts: ts.clone(),
                            detail,
                        }
                    }
                })?;

        let expected_out = (header.rows * header.columns * header.frames * header.spp) as u64
            * (decoded.bits_allocated() as u64 / 8);
        if (decoded.data().len() as u64) < expected_out
            || decoded.rows() as usize != header.rows
            || decoded.columns() as usize != header.columns
        {
            return Err(ImagingError::Truncated {
                sop,
                expected: expected_out,
                actual: decoded.data().len() as u64,
            });
        }
        let mut signed = decoded.pixel_representation() == PixelRepresentation::Signed;
        if decoded.bits_allocated() == 32 && !signed && header.bits_stored == 32 {
            return Err(ImagingError::Inconsistent {
                sop,
                detail: "unsigned 32-bit samples are not supported".into(),
            });
        }
        let mut samples = unpack(
            decoded.data(),
            decoded.bits_allocated(),
            header.bits_stored,
            header.high_bit.min(decoded.bits_allocated() - 1),
            signed,
            header.rows * header.columns * header.frames * header.spp,
        );
        let planar = decoded.planar_configuration() == PlanarConfiguration::PixelFirst;
        if header.spp == 3 && planar {
            samples = interleave(&samples, header.rows * header.columns, header.frames);
        }
        let photometric = match decoded.photometric_interpretation() {
            PhotometricInterpretation::Monochrome1 => Photometric::Monochrome1,
            PhotometricInterpretation::Monochrome2 => Photometric::Monochrome2,
            PhotometricInterpretation::Rgb => Photometric::Rgb,
            PhotometricInterpretation::YbrFull if header.spp == 3 => {
                ybr_full_to_rgb(&mut samples, header.bits_stored);
                Photometric::Rgb
            }
            PhotometricInterpretation::PaletteColor if header.spp == 1 => {
                let (rgb, depth) = apply_palette(obj, &samples, &sop)?;
                samples = rgb;
                header.spp = 3;
                header.bits_stored = depth;
                signed = false;
                Photometric::Rgb
            }
            other => Photometric::Other(other.as_str().to_string()),
        };
        let expected_spp = match photometric {
            Photometric::Monochrome1 | Photometric::Monochrome2 => Some(1),
            Photometric::Rgb => Some(3),
            Photometric::Other(_) => None,
        };
        if expected_spp.is_some_and(|n| n != header.spp) {
            return Err(ImagingError::Inconsistent {
                sop,
                detail: format!("{photometric:?} with SamplesPerPixel {}", header.spp),
            });
        }

        let rescale: Vec<(f64, f64)> = decoded
            .rescale()
            .map(|r| r.iter().map(|r| (r.slope, r.intercept)).collect())
            .unwrap_or_else(|_| vec![(1.0, 0.0)]);
        let functions: Vec<VoiFunction> = decoded
            .voi_lut_function()
            .ok()
            .flatten()
            .map(|f| f.iter().map(|f| VoiFunction::from(*f)).collect())
            .unwrap_or_default();
        let luts: Vec<VoiLut> = decoded
            .voi_lut_sequence()
            .ok()
            .flatten()
            .map(|l| {
                l.iter()
                    .map(|l| VoiLut {
                        // LUT Descriptor is US or SS as Pixel Representation
                        // says; read as US (implicit VR), a signed first
                        // value arrives as its two's complement.
                        first: if signed && l.min_pixel_value > 0x7FFF {
                            l.min_pixel_value - 0x10000
                        } else {
                            l.min_pixel_value
                        },
                        bits: l.bits_stored,
                        data: l.data.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let windows: Vec<(f64, f64)> = decoded
            .window()
            .ok()
            .flatten()
            .map(|w| w.iter().map(|w| (w.center, w.width)).collect())
            .unwrap_or_default();
        let per_frame = windows.len().max(luts.len()).max(1);
        let voi = (0..per_frame)
            .map(|i| {
                let pick = |n: usize| if n == 1 { 0 } else { i };
                if !luts.is_empty() {
                    Voi::Lut(luts[pick(luts.len())].clone())
                } else if !windows.is_empty() {
                    let (center, width) = windows[pick(windows.len())];
                    let function = functions
                        .get(pick(functions.len()))
                        .copied()
                        .unwrap_or_default();
                    Voi::Window {
                        center,
                        width,
                        function,
                    }
                } else {
                    Voi::None
                }
            })
            .collect();
        let pixel_spacing = floats(obj, tags::PIXEL_SPACING)
            .or_else(|| floats(obj, tags::IMAGER_PIXEL_SPACING))
            .filter(|v| v.len() == 2 && v.iter().all(|x| *x > 0.0))
            .map(|v| [v[0], v[1]]);
        Ok(Frames {
            sop_instance_uid: sop,
            transfer_syntax: ts,
            rows: header.rows,
            columns: header.columns,
            frames: header.frames,
            samples_per_pixel: header.spp,
            photometric,
            bits_allocated: decoded.bits_allocated(),
            bits_stored: header.bits_stored,
            signed,
            pixel_spacing,
            rescale,
            voi,
            samples,
        })
    }

    /// Stored sample values of one frame (rows x columns x samples).
    pub fn frame(&self, frame: usize) -> Result<&[i32], ImagingError> {
        if frame >= self.frames {
            return Err(ImagingError::NoSuchFrame {
                sop: self.sop_instance_uid.clone(),
                frame,
                frames: self.frames,
            });
        }
        let n = self.rows * self.columns * self.samples_per_pixel;
        Ok(&self.samples[frame * n..(frame + 1) * n])
    }

    /// Rescale slope and intercept of a frame.
    pub fn rescale(&self, frame: usize) -> (f64, f64) {
        self.rescale[if self.rescale.len() == 1 {
            0
        } else {
            frame.min(self.rescale.len() - 1)
        }]
    }

    pub(crate) fn voi_of(&self, frame: usize) -> &Voi {
        &self.voi[if self.voi.len() == 1 {
            0
        } else {
            frame.min(self.voi.len() - 1)
        }]
    }

    pub fn is_monochrome(&self) -> bool {
        matches!(
            self.photometric,
            Photometric::Monochrome1 | Photometric::Monochrome2
        )
    }

    pub(crate) fn require_monochrome(&self, what: &'static str) -> Result<(), ImagingError> {
        if self.is_monochrome() {
            Ok(())
        } else {
            Err(ImagingError::UnsupportedPhotometric {
                sop: self.sop_instance_uid.clone(),
                photometric: format!("{:?}", self.photometric),
                what,
            })
        }
    }

    /// Modality LUT output of a monochrome frame (Hounsfield units for CT).
    pub fn modality(&self, frame: usize) -> Result<Vec<f32>, ImagingError> {
        self.require_monochrome("the Modality LUT")?;
        let (slope, intercept) = self.rescale(frame);
        Ok(self
            .frame(frame)?
            .iter()
            .map(|&v| (v as f64 * slope + intercept) as f32)
            .collect())
    }
}

/// PALETTE COLOR to RGB through the Red, Green and Blue Palette Color
/// Lookup Tables (PS3.3 C.7.6.3.1.5); entries are 8 or 16 bits, as the
/// data length says (as pydicom reads them). Returns the samples and the
/// entry depth.
fn apply_palette(
    obj: &DefaultDicomObject,
    samples: &[i32],
    sop: &str,
) -> Result<(Vec<i32>, u16), ImagingError> {
    let bad = |attribute| ImagingError::BadAttribute {
        sop: sop.to_string(),
        attribute,
    };
    let descriptor = obj
        .element_opt(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .filter(|d| d.len() == 3)
        .ok_or_else(|| bad("RedPaletteColorLookupTableDescriptor"))?;
    let entries = if descriptor[0] == 0 {
        65536
    } else {
        descriptor[0] as usize
    };
    let first = descriptor[1];
    let mut luts = Vec::with_capacity(3);
    let mut width = 0;
    for (tag, name) in [
        (
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "RedPaletteColorLookupTableData",
        ),
        (
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "GreenPaletteColorLookupTableData",
        ),
        (
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "BluePaletteColorLookupTableData",
        ),
    ] {
        // Segmented palettes are not supported: the plain data is required.
        let bytes = obj
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_bytes().ok())
            .ok_or_else(|| bad(name))?;
        width = bytes.len() / entries;
        let lut: Vec<i32> = match width {
            1 => bytes[..entries].iter().map(|&b| b as i32).collect(),
            2 => bytes[..2 * entries]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i32)
                .collect(),
            _ => return Err(bad(name)),
        };
        luts.push(lut);
    }
    let depth = 8 * width as u16;
    let last = entries as i64 - 1;
    let mut out = Vec::with_capacity(samples.len() * 3);
    for &v in samples {
        let i = (v as i64 - first).clamp(0, last) as usize;
        out.extend([luts[0][i], luts[1][i], luts[2][i]]);
    }
    Ok((out, depth))
}

/// A copy of a native YBR_FULL_422 object as YBR_FULL: each pair of pixels
/// (Y1 Y2 Cb Cr) becomes (Y1 Cb Cr)(Y2 Cb Cr) (PS3.3 C.7.6.3.1.2).
fn expand_ybr_422(
    obj: &DefaultDicomObject,
    header: &Header,
    sop: &str,
) -> Result<DefaultDicomObject, ImagingError> {
    if header.columns % 2 != 0 {
        return Err(ImagingError::Inconsistent {
            sop: sop.to_string(),
            detail: format!(
                "YBR_FULL_422 with an odd number of columns ({})",
                header.columns
            ),
        });
    }
    let bytes = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.to_bytes().ok())
        .ok_or_else(|| ImagingError::MissingPixelData {
            sop: sop.to_string(),
        })?;
    let b = (header.bits_allocated / 8) as usize;
    let pairs = header.rows * header.columns / 2 * header.frames;
    let mut out = Vec::with_capacity(pairs * 6 * b);
    for pair in bytes.chunks_exact(4 * b).take(pairs) {
        let (y1, y2, cb, cr) = (
            &pair[..b],
            &pair[b..2 * b],
            &pair[2 * b..3 * b],
            &pair[3 * b..],
        );
        for y in [y1, y2] {
            out.extend_from_slice(y);
            out.extend_from_slice(cb);
            out.extend_from_slice(cr);
        }
    }
    let mut copy = obj.clone();
    let vr = if header.bits_allocated == 8 {
        VR::OB
    } else {
        VR::OW
    };
    copy.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(out),
    ));
    copy.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("YBR_FULL"),
    ));
    copy.put(DataElement::new(
        tags::PLANAR_CONFIGURATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    Ok(copy)
}

/// A copy of `obj` with its pixel data decoded to native form by
/// [`crate::codec`].
fn decoded_as_native(
    obj: &DefaultDicomObject,
    header: &Header,
    sop: &str,
    ts: &str,
) -> Result<DefaultDicomObject, ImagingError> {
    let element = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| ImagingError::MissingPixelData { sop: sop.into() })?;
    let (fragments, offsets) = match element.value() {
        Value::PixelSequence(seq) => (
            seq.fragments()
                .iter()
                .map(|f| f.to_vec())
                .collect::<Vec<_>>(),
            seq.offset_table().to_vec(),
        ),
        _ => {
            return Err(ImagingError::BadAttribute {
                sop: sop.into(),
                attribute: "PixelData",
            })
        }
    };
    let geometry = crate::codec::Geometry {
        rows: header.rows,
        columns: header.columns,
        frames: header.frames,
        spp: header.spp,
        bits_allocated: header.bits_allocated,
    };
    let native = crate::codec::to_native(ts, &fragments, &offsets, &geometry, sop)?;
    let mut copy = obj.clone();
    let vr = if header.bits_allocated == 8 {
        VR::OB
    } else {
        VR::OW
    };
    copy.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(native),
    ));
    if header.spp > 1 {
        copy.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    copy.meta_mut()
        .set_transfer_syntax(&EXPLICIT_VR_LITTLE_ENDIAN);
    Ok(copy)
}

/// Little-endian samples of `bits` bits to i32: the `stored` bits ending at
/// `high_bit`, sign-extended when signed.
fn unpack(data: &[u8], bits: u16, stored: u16, high_bit: u16, signed: bool, n: usize) -> Vec<i32> {
    let shift = (high_bit + 1 - stored) as u32;
    let mask: u64 = if stored >= 64 {
        u64::MAX
    } else {
        (1u64 << stored) - 1
    };
    let convert = |raw: u64| -> i32 {
        let v = (raw >> shift) & mask;
        if signed && stored < 64 && v & (1 << (stored - 1)) != 0 {
            (v as i64 - (1i64 << stored)) as i32
        } else {
            v as i64 as i32
        }
    };
    match bits {
        8 => data[..n].iter().map(|&b| convert(b as u64)).collect(),
        16 => data[..2 * n]
            .chunks_exact(2)
            .map(|c| convert(u16::from_le_bytes([c[0], c[1]]) as u64))
            .collect(),
        _ => data[..4 * n]
            .chunks_exact(4)
            .map(|c| convert(u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64))
            .collect(),
    }
}

/// RRR..GGG..BBB per frame to RGBRGB...
fn interleave(planar: &[i32], pixels: usize, frames: usize) -> Vec<i32> {
    let mut out = vec![0; planar.len()];
    for f in 0..frames {
        let base = f * pixels * 3;
        for p in 0..pixels {
            for c in 0..3 {
                out[base + p * 3 + c] = planar[base + c * pixels + p];
            }
        }
    }
    out
}

/// YBR_FULL to RGB (PS3.3 C.7.6.3.1.2), rounded and clamped.
fn ybr_full_to_rgb(samples: &mut [i32], bits: u16) {
    let max = ((1u32 << bits) - 1) as f64;
    let half = (1u32 << (bits - 1)) as f64;
    for px in samples.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0] as f64, px[1] as f64 - half, px[2] as f64 - half);
        let rgb = [
            y + 1.402 * cr,
            y - 0.344136 * cb - 0.714136 * cr,
            y + 1.772 * cb,
        ];
        for (o, v) in px.iter_mut().zip(rgb) {
            *o = v.round().clamp(0.0, max) as i32;
        }
    }
}

impl From<VoiLutFunction> for VoiFunction {
    fn from(f: VoiLutFunction) -> Self {
        match f {
            VoiLutFunction::Linear => VoiFunction::Linear,
            VoiLutFunction::LinearExact => VoiFunction::LinearExact,
            VoiLutFunction::Sigmoid => VoiFunction::Sigmoid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_masked_and_signed_samples() {
        // 12 bits stored in 16, high bit 11, signed: 0x0FFF is -1; upper
        // bits are ignored.
        let data = [0xFF, 0x0F, 0x00, 0xF0, 0xFF, 0x07];
        assert_eq!(unpack(&data, 16, 12, 11, true, 3), vec![-1, 0, 2047]);
        assert_eq!(unpack(&data, 16, 12, 11, false, 3), vec![4095, 0, 2047]);
        assert_eq!(unpack(&[0x80, 0x7F], 8, 8, 7, true, 2), vec![-128, 127]);
        // High bit not at the top of the stored bits (HighBit 15, 12 stored).
        assert_eq!(unpack(&[0x10, 0x00], 16, 12, 15, false, 1), vec![1]);
    }

    #[test]
    fn interleaves_planes() {
        let planar = [1, 2, 10, 20, 100, 200];
        assert_eq!(interleave(&planar, 2, 1), vec![1, 10, 100, 2, 20, 200]);
    }
}
