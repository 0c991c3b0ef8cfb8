//! Element lengths checked against the bytes actually received, before the
//! DICOM parser sees a data set. The parser reserves memory for what an
//! element's length announces, so a few hundred bytes from a peer claiming
//! a 4 GB element would cost 4 GB (found by fuzzing): here every defined
//! length must fit in what remains of the data set.
//!
//! Nesting is followed only as far as lengths go: sequence and item
//! contents are scanned as elements in turn; encapsulated pixel data (an
//! undefined-length OB/OW) is scanned as fragments up to its delimiter.

use std::os::unix::fs::FileExt;

/// Where the bytes are: in memory, or a spilled file (read by position,
/// headers only, so a large instance is not loaded to be checked).
pub(crate) trait Bytes {
    fn len(&self) -> u64;
    fn read(&self, pos: u64, buf: &mut [u8]) -> bool;
}

impl Bytes for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read(&self, pos: u64, buf: &mut [u8]) -> bool {
        let start = pos as usize;
        match self.get(start..start + buf.len()) {
            Some(s) => {
                buf.copy_from_slice(s);
                true
            }
            None => false,
        }
    }
}

/// A file from `start` (past what precedes the data set).
pub(crate) struct FileFrom<'a>(pub &'a std::fs::File, pub u64, pub u64);

impl Bytes for FileFrom<'_> {
    fn len(&self) -> u64 {
        self.2.saturating_sub(self.1)
    }
    fn read(&self, pos: u64, buf: &mut [u8]) -> bool {
        pos + buf.len() as u64 <= self.len() && self.0.read_exact_at(buf, self.1 + pos).is_ok()
    }
}

/// How a transfer syntax encodes elements; `None` for deflated ones (the
/// inflated stream is not at hand here).
pub(crate) fn encoding(transfer_syntax: &str) -> Option<(bool, bool)> {
    match transfer_syntax.trim_end_matches(['\0', ' ']) {
        "1.2.840.10008.1.2" => Some((false, true)),
        "1.2.840.10008.1.2.2" => Some((true, false)),
        "1.2.840.10008.1.2.1.99" => None,
        _ => Some((true, true)),
    }
}

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// Explicit VR elements have a 2-byte length only for these VRs; any other
/// code, unknown ones included, is read (by dicom-rs too) with a 4-byte
/// length after two reserved bytes.
fn long_length_vr(vr: &[u8]) -> bool {
    !matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// A deflated data set, inflated for checking (at most `limit` bytes: more
/// is refused, which also stops a decompression bomb).
pub(crate) fn inflate(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("deflated data set cannot be inflated: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "deflated data set inflates to more than {limit} bytes"
        ));
    }
    Ok(out)
}

/// Check every element length of the data set in `b` (explicit or implicit
/// VR, little or big endian). Returns where the first bad length is.
pub(crate) fn check(b: &(impl Bytes + ?Sized), explicit: bool, little: bool) -> Result<(), String> {
    let u16_at = |x: [u8; 2]| {
        if little {
            u16::from_le_bytes(x)
        } else {
            u16::from_be_bytes(x)
        }
    };
    let u32_at = |x: [u8; 4]| {
        if little {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    };
    let end = b.len();
    let mut pos = 0u64;
    // Inside encapsulated pixel data: items are fragments, not elements.
    let mut fragments = false;
    while pos < end {
        let mut head = [0u8; 8];
        if !b.read(pos, &mut head) {
            return Err(format!("truncated element header at byte {pos}"));
        }
        let group = u16_at([head[0], head[1]]);
        let element = u16_at([head[2], head[3]]);
        let (len, header) = if group == 0xFFFE {
            // Items and delimiters: tag and a 4-byte length, no VR.
            (u32_at([head[4], head[5], head[6], head[7]]), 8)
        } else if fragments {
            return Err(format!(
                "element ({group:04X},{element:04X}) among pixel data fragments at byte {pos}"
            ));
        } else if !explicit {
            (u32_at([head[4], head[5], head[6], head[7]]), 8)
        } else if long_length_vr(&head[4..6]) {
            let mut l = [0u8; 4];
            if !b.read(pos + 8, &mut l) {
                return Err(format!("truncated element header at byte {pos}"));
            }
            (u32_at(l), 12)
        } else {
            (u16_at([head[6], head[7]]) as u32, 8)
        };
        pos += header;
        if len == UNDEFINED {
            if group == 0xFFFE {
                // An item of undefined length: its elements follow.
                continue;
            }
            let vr = &head[4..6];
            if explicit && vr == b"UN" {
                // Its contents are implicit VR: not followed here (the
                // parser still refuses what does not parse).
                return Ok(());
            }
            let pixel_data = (group, element) == (0x7FE0, 0x0010);
            if (explicit && (vr == b"OB" || vr == b"OW")) || (!explicit && pixel_data) {
                fragments = true;
            }
            continue;
        }
        if group == 0xFFFE && element == 0xE0DD {
            fragments = false;
        }
        if u64::from(len) > end - pos {
            return Err(format!(
                "element ({group:04X},{element:04X}) at byte {} announces {len} bytes; {} remain",
                pos - header,
                end - pos
            ));
        }
        let is_sequence = explicit && group != 0xFFFE && &head[4..6] == b"SQ";
        let is_item = group == 0xFFFE && element == 0xE000 && !fragments;
        if !(is_sequence || is_item) {
            pos += u64::from(len);
        }
        // A defined-length sequence or item: its contents are scanned next.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(g: u16, e: u16, vr: &[u8; 2], v: &[u8]) -> Vec<u8> {
        let mut out = [g.to_le_bytes(), e.to_le_bytes()].concat();
        out.extend_from_slice(vr);
        if long_length_vr(vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn good_data_sets_pass_and_lying_lengths_do_not() {
        let item = [
            &[0xFE, 0xFF, 0x00, 0xE0][..],
            &8u32.to_le_bytes(),
            &el(0x0008, 0x0100, b"SH", b"CODE"),
        ]
        .concat();
        let seq = el(0x0008, 0x1032, b"SQ", &item);
        let ok = [
            el(0x0008, 0x0060, b"CS", b"CR"),
            seq,
            el(0x7FE0, 0x0010, b"OW", &[0; 16]),
        ]
        .concat();
        assert!(check(&ok[..], true, true).is_ok());
        // Encapsulated pixel data: undefined length, fragments, delimiter.
        let mut enc = el(0x0008, 0x0060, b"CS", b"CR");
        enc.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        enc.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]);
        enc.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert!(check(&enc[..], true, true).is_ok());
        // An element claiming 4 GB in a short data set.
        let mut bad = el(0x0008, 0x0060, b"CS", b"CR");
        bad.extend_from_slice(&[
            0x10, 0x00, 0x10, 0x00, b'U', b'T', 0, 0, 0xE5, 0xE5, 0xE5, 0xE5, 1, 2,
        ]);
        let e = check(&bad[..], true, true).unwrap_err();
        assert!(e.contains("(0010,0010)") && e.contains("announces"), "{e}");
        // An unknown VR code is read with a 4-byte length, as dicom-rs
        // reads it (found by fuzzing: 2-byte reading let 4 GB through).
        let mut unknown = el(0x0008, 0x0060, b"CS", b"CR");
        unknown.extend_from_slice(&[0x09, 0x00, 0x10, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0xFF, 0xFF]);
        assert!(check(&unknown[..], true, true).is_err());
        // A fragment claiming more than there is.
        let mut frag = enc.clone();
        frag.truncate(enc.len() - 8 - 12);
        frag.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(check(&frag[..], true, true).is_err());
    }
}
