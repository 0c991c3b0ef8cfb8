//! Pixel data that dicom-pixeldata does not decode as stored, rewritten as
//! the equivalent native object: encapsulated frames decoded by
//! [`crate::codec`], and subsampled YBR_FULL_422. The copy then follows the
//! same path as any uncompressed image, so LUT attributes are read once.

use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

use crate::header::{text, Header};
use crate::ImagingError;

/// A copy of a native YBR_FULL_422 object as YBR_FULL: each pair of pixels
/// (Y1 Y2 Cb Cr) becomes (Y1 Cb Cr)(Y2 Cb Cr) (PS3.3 C.7.6.3.1.2).
pub(crate) fn expand_ybr_422(
    obj: &DefaultDicomObject,
    header: &Header,
    sop: &str,
) -> Result<DefaultDicomObject, ImagingError> {
    if !header.columns.is_multiple_of(2) {
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
    Ok(with_native_pixels(obj, header, out, Some("YBR_FULL")))
}

/// A copy of `obj` with its pixel data decoded to native form by
/// [`crate::codec`].
pub(crate) fn decoded_as_native(
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
    // JPEG 2000's reversible/irreversible colour transforms are undone by
    // the decoder: the samples are RGB.
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION);
    let rgb = matches!(photometric.as_deref(), Some("YBR_RCT" | "YBR_ICT"));
    Ok(with_native_pixels(
        obj,
        header,
        native,
        rgb.then_some("RGB"),
    ))
}

/// A copy of `obj` carrying `pixels` as native, interleaved, explicit VR
/// little endian Pixel Data (and, if given, a new photometric
/// interpretation), to be decoded like any uncompressed object.
fn with_native_pixels(
    obj: &DefaultDicomObject,
    header: &Header,
    pixels: Vec<u8>,
    photometric: Option<&str>,
) -> DefaultDicomObject {
    let mut copy = obj.clone();
    let vr = if header.bits_allocated == 8 {
        VR::OB
    } else {
        VR::OW
    };
    copy.put(DataElement::new(
        tags::PIXEL_DATA,
        vr,
        PrimitiveValue::from(pixels),
    ));
    if let Some(pi) = photometric {
        copy.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(pi),
        ));
    }
    if header.spp > 1 {
        copy.put(DataElement::new(
            tags::PLANAR_CONFIGURATION,
            VR::US,
            PrimitiveValue::from(0u16),
        ));
    }
    copy.meta_mut()
        .set_transfer_syntax(&EXPLICIT_VR_LITTLE_ENDIAN);
    copy
}
