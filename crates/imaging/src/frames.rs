//! Decoding: stored sample values, checked against the header.

use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{
    PhotometricInterpretation, PixelDecoder, PixelRepresentation, PlanarConfiguration,
    VoiLutFunction,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use crate::header::{floats, sop_of, text, Header};
use crate::samples::{apply_palette, interleave, unpack, ybr_full_to_rgb};
use crate::transcode::{decoded_as_native, expand_ybr_422};
use crate::voi::{Voi, VoiFunction, VoiLut};
use crate::ImagingError;

/// The transfer syntax UID of an instance, without padding.
fn transfer_syntax(obj: &DefaultDicomObject) -> String {
    obj.meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string()
}

/// Whether dicom-rs can decode this object's pixel data (the condition
/// `decode_pixel_data` checks, asked before instead of read from its
/// error message).
fn decodable(obj: &DefaultDicomObject) -> bool {
    TransferSyntaxRegistry
        .get(&transfer_syntax(obj))
        .is_some_and(|t| t.can_decode_all())
}

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

impl Frames {
    /// Decode every frame of an instance.
    pub fn decode(obj: &DefaultDicomObject) -> Result<Frames, ImagingError> {
        Self::decode_with_limit(obj, DEFAULT_MAX_SAMPLES)
    }

    /// Decode, refusing images of more than `max_samples` samples.
    ///
    /// Every codec (dicom-rs's, CharLS, OpenJPEG, the 12-bit JPEG decoder)
    /// is third-party or hand-written code fed hostile input: a panic
    /// anywhere in decoding becomes this instance's error.
    pub fn decode_with_limit(
        obj: &DefaultDicomObject,
        max_samples: u64,
    ) -> Result<Frames, ImagingError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::decode_unguarded(obj, max_samples)
        }))
        .unwrap_or_else(|_| {
            Err(ImagingError::Decode {
                sop: sop_of(obj),
                ts: transfer_syntax(obj),
                detail: "decoder panicked".into(),
            })
        })
    }

    fn decode_unguarded(
        obj: &DefaultDicomObject,
        max_samples: u64,
    ) -> Result<Frames, ImagingError> {
        let sop = sop_of(obj);
        let ts = transfer_syntax(obj);
        let pixel_data = obj
            .get(tags::PIXEL_DATA)
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

        // JPEG-LS and JPEG 2000 go through CharLS and OpenJPEG; the
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

        if !decodable(source) {
            return Err(ImagingError::UnsupportedTransferSyntax { sop, ts });
        }
        let decoded = source
            .decode_pixel_data()
            .map_err(|e| ImagingError::Decode {
                sop: sop.clone(),
                ts: ts.clone(),
                detail: e.to_string(),
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
        let voi_entries = windows.len().max(luts.len()).max(1);
        let voi = (0..voi_entries)
            .map(|i| {
                if let Some(lut) = per_frame(&luts, i) {
                    Voi::Lut(lut.clone())
                } else if let Some(&(center, width)) = per_frame(&windows, i) {
                    let function = per_frame(&functions, i).copied().unwrap_or_default();
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
        per_frame(&self.rescale, frame)
            .copied()
            .unwrap_or((1.0, 0.0))
    }

    pub(crate) fn voi_of(&self, frame: usize) -> &Voi {
        per_frame(&self.voi, frame).unwrap_or(&Voi::None)
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
        let lut = self.modality_lut(frame)?;
        Ok(self.frame(frame)?.iter().map(|&v| lut.value(v)).collect())
    }

    /// The Modality LUT of a monochrome frame.
    pub(crate) fn modality_lut(&self, frame: usize) -> Result<ModalityLut, ImagingError> {
        self.require_monochrome("the Modality LUT")?;
        let (slope, intercept) = self.rescale(frame);
        Ok(ModalityLut { slope, intercept })
    }
}

/// The Modality LUT of a frame: rescale slope and intercept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModalityLut {
    pub slope: f64,
    pub intercept: f64,
}

impl ModalityLut {
    /// One stored sample's modality value.
    #[inline]
    pub fn value(&self, v: i32) -> f32 {
        (v as f64 * self.slope + self.intercept) as f32
    }
}

/// A per-frame attribute: one value for all frames, or one per frame (the
/// last standing in for frames past the end).
fn per_frame<T>(values: &[T], frame: usize) -> Option<&T> {
    match values.len() {
        0 => None,
        1 => values.first(),
        n => values.get(frame.min(n - 1)),
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
