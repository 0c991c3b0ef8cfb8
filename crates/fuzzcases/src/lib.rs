//! What each fuzz target does with its input: the same path triaged takes
//! with bytes from a peer. The cargo-fuzz targets (nightly) call these, and
//! `tests/fuzz_replay.rs` (stable, in the suite) replays every corpus file
//! and every crash reproducer through them.

#![forbid(unsafe_code)]

use dicom_ul::pdu::{PDataValueType, Pdu};

/// The listener's maximum PDU (the configuration's default).
const MAX_PDU: u32 = 131_072;

/// Bytes from a peer's socket: PDUs one after another, as the association
/// reads them, and every command fragment decoded as a DIMSE command set.
pub fn pdu(data: &[u8]) {
    let mut buf = data;
    for _ in 0..64 {
        match dicom_ul::pdu::read_pdu(&mut buf, MAX_PDU, false) {
            Ok(Some(Pdu::PData { data })) => {
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        let _ = dimse::command::Command::decode(&pdv.data);
                    }
                }
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
}

const SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
];

/// What the first byte of a `dataset` or `pixels` input stands for: the
/// negotiated transfer syntax; the rest is the data set as received.
fn received(data: &[u8]) -> Option<(archive::Incoming, &[u8])> {
    let (&pick, body) = data.split_first()?;
    Some((
        archive::Incoming {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3.4".into(),
            transfer_syntax_uid: SYNTAXES[pick as usize % SYNTAXES.len()].into(),
            calling_ae_title: "FUZZ".into(),
            called_ae_title: "TRIAGED".into(),
            source: "fuzz".into(),
            peer_address: "127.0.0.1".into(),
        },
        body,
    ))
}

/// A received data set, checked as the archive does before it answers
/// Success.
pub fn dataset(data: &[u8]) {
    if let Some((incoming, body)) = received(data) {
        let _ = archive::check_received(&incoming, body);
    }
}

/// A received data set that the archive would store, through the pixel
/// pipeline: decode, display, model input. (The pipeline only reads files
/// the archive accepted, so the input goes through the archive's checks
/// first, as in the daemon.)
pub fn pixels(data: &[u8]) {
    let Some((incoming, body)) = received(data) else {
        return;
    };
    let Ok(obj) = archive::parse_received(&incoming, body) else {
        return;
    };
    if let Ok(frames) = imaging::Frames::decode(&obj) {
        let _ = frames.display(0);
        let _ = imaging::InputSpec::Xrv {
            size: 32,
            resize: imaging::Resize::Area,
        }
        .apply(&frames, 0);
    }
}
