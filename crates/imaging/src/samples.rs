//! Stored sample values: unpacking, planes, and colour models to RGB.

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use crate::ImagingError;

/// PALETTE COLOR to RGB through the Red, Green and Blue Palette Color
/// Lookup Tables (PS3.3 C.7.6.3.1.5); entries are 8 or 16 bits, as the
/// data length says (as pydicom reads them). Returns the samples and the
/// entry depth.
pub(crate) fn apply_palette(
    obj: &DefaultDicomObject,
    samples: &[i32],
    sop: &str,
) -> Result<(Vec<i32>, u16), ImagingError> {
    let bad = |attribute| ImagingError::BadAttribute {
        sop: sop.to_string(),
        attribute,
    };
    let descriptor = obj
        .get(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)
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
            .get(tag)
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

/// Little-endian samples of `bits` bits to i32: the `stored` bits ending at
/// `high_bit`, sign-extended when signed.
pub(crate) fn unpack(
    data: &[u8],
    bits: u16,
    stored: u16,
    high_bit: u16,
    signed: bool,
    n: usize,
) -> Vec<i32> {
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
pub(crate) fn interleave(planar: &[i32], pixels: usize, frames: usize) -> Vec<i32> {
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
pub(crate) fn ybr_full_to_rgb(samples: &mut [i32], bits: u16) {
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
