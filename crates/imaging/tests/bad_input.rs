//! Hostile and broken headers: typed errors naming the instance, never a
//! panic or an allocation the data cannot justify.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use imaging::{Frames, ImagingError, InputSpec};

fn ct_small() -> DefaultDicomObject {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/generated/imaging/CT_small.dcm");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    dicom_object::open_file(p).unwrap()
}

fn set_us(obj: &mut DefaultDicomObject, tag: Tag, v: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

const SOP: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";

#[test]
fn missing_pixel_data() {
    let mut obj = ct_small();
    obj.remove_element(tags::PIXEL_DATA);
    let e = Frames::decode(&obj).unwrap_err();
    assert_eq!(e, ImagingError::MissingPixelData { sop: SOP.into() });
    assert!(e.to_string().contains(SOP));
}

#[test]
fn truncated_pixel_data() {
    let mut obj = ct_small();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(vec![0u8; 1000]),
    ));
    let e = Frames::decode(&obj).unwrap_err();
    assert!(
        matches!(
            e,
            ImagingError::Truncated {
                expected: 32768,
                actual: 1000,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn dimensions_inconsistent_with_the_data() {
    let mut obj = ct_small();
    set_us(&mut obj, tags::ROWS, 512);
    assert!(matches!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::Truncated { .. }
    ));
    let mut obj = ct_small();
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("3"),
    ));
    assert!(matches!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::Truncated { .. }
    ));
}

#[test]
fn zero_and_huge_dimensions() {
    let mut obj = ct_small();
    set_us(&mut obj, tags::ROWS, 0);
    assert_eq!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::BadAttribute {
            sop: SOP.into(),
            attribute: "Rows"
        }
    );
    let mut obj = ct_small();
    set_us(&mut obj, tags::ROWS, 65535);
    set_us(&mut obj, tags::COLUMNS, 65535);
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("1000"),
    ));
    assert!(matches!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::TooLarge { .. }
    ));
    let mut obj = ct_small();
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("-4"),
    ));
    assert!(matches!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::BadAttribute {
            attribute: "NumberOfFrames",
            ..
        }
    ));
}

#[test]
fn bits_that_do_not_fit() {
    let mut obj = ct_small();
    set_us(&mut obj, tags::BITS_STORED, 17);
    let e = Frames::decode(&obj).unwrap_err();
    assert!(matches!(e, ImagingError::Inconsistent { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("BitsStored 17 exceeds BitsAllocated 16"),
        "{e}"
    );
    let mut obj = ct_small();
    set_us(&mut obj, tags::BITS_ALLOCATED, 12);
    assert!(matches!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::Inconsistent { .. }
    ));
    let mut obj = ct_small();
    set_us(&mut obj, tags::HIGH_BIT, 3);
    assert!(matches!(
        Frames::decode(&obj).unwrap_err(),
        ImagingError::Inconsistent { .. }
    ));
}

#[test]
fn specs_refuse_what_they_cannot_do() {
    let frames = Frames::decode(&ct_small()).unwrap();
    assert!(matches!(
        InputSpec::Xrv {
            size: 0,
            resize: imaging::Resize::Area
        }
        .apply(&frames, 0),
        Err(ImagingError::Spec(_))
    ));
    assert!(matches!(
        InputSpec::CtWindow {
            windows: vec![],
            size: 32
        }
        .apply(&frames, 0),
        Err(ImagingError::Spec(_))
    ));
    assert!(matches!(
        InputSpec::Unit { size: 32 }.apply(&frames, 1),
        Err(ImagingError::NoSuchFrame {
            frame: 1,
            frames: 1,
            ..
        })
    ));
}

/// A small deterministic generator (xorshift), so the property test needs
/// no extra crate and replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, options: &[u16]) -> u16 {
        options[(self.next() % options.len() as u64) as usize]
    }
}

#[test]
fn random_headers_never_panic() {
    let base = ct_small();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let photometric = [
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "YBR_FULL",
        "PALETTE COLOR",
        "BOGUS",
    ];
    for _ in 0..3000 {
        let mut obj = base.clone();
        set_us(
            &mut obj,
            tags::ROWS,
            rng.pick(&[0, 1, 2, 3, 7, 64, 128, 300, 65535]),
        );
        set_us(
            &mut obj,
            tags::COLUMNS,
            rng.pick(&[0, 1, 2, 5, 64, 128, 65535]),
        );
        set_us(
            &mut obj,
            tags::SAMPLES_PER_PIXEL,
            rng.pick(&[0, 1, 2, 3, 4]),
        );
        set_us(
            &mut obj,
            tags::BITS_ALLOCATED,
            rng.pick(&[0, 1, 8, 12, 16, 32, 64]),
        );
        set_us(
            &mut obj,
            tags::BITS_STORED,
            rng.pick(&[0, 1, 8, 12, 15, 16, 32, 40]),
        );
        set_us(&mut obj, tags::HIGH_BIT, rng.pick(&[0, 7, 11, 15, 31, 63]));
        set_us(&mut obj, tags::PIXEL_REPRESENTATION, rng.pick(&[0, 1, 2]));
        set_us(&mut obj, tags::PLANAR_CONFIGURATION, rng.pick(&[0, 1, 5]));
        let pi = photometric[(rng.next() % photometric.len() as u64) as usize];
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from(pi),
        ));
        let frames = rng.pick(&[1, 2, 3, 1000]).to_string();
        obj.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from(frames.as_str()),
        ));
        let len = (rng.next() % 70_000) as usize & !1;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(data),
        ));
        if let Ok(f) = Frames::decode_with_limit(&obj, 1 << 22) {
            // Whatever decodes must be usable end to end.
            for spec in [
                InputSpec::Xrv {
                    size: 16,
                    resize: imaging::Resize::Area,
                },
                InputSpec::Unit { size: 16 },
            ] {
                let _ = spec.apply(&f, 0);
            }
        }
    }
}

#[test]
fn voi_lut_sequence_is_preferred_to_the_window() {
    use dicom_core::value::DataSetSequence;
    use dicom_object::InMemDicomObject;
    // A 4-entry LUT starting at -1000 HU with 8-bit entries, scaled to
    // [0, 1]: -1000 -> 0, -999 -> 85/255, ... and clamped at both ends. Its
    // first value is written as US, as an implicit-VR file would carry it.
    let mut obj = ct_small();
    // A window that would map most of this image to 0.
    obj.put(DataElement::new(
        tags::WINDOW_CENTER,
        VR::DS,
        PrimitiveValue::from("40"),
    ));
    obj.put(DataElement::new(
        tags::WINDOW_WIDTH,
        VR::DS,
        PrimitiveValue::from("80"),
    ));
    let mut item = InMemDicomObject::new_empty();
    item.put(DataElement::new(
        tags::LUT_DESCRIPTOR,
        VR::US,
        PrimitiveValue::U16([4, (-1000i16) as u16, 8].as_slice().into()),
    ));
    item.put(DataElement::new(
        tags::LUT_DATA,
        VR::OW,
        PrimitiveValue::U16([0, 85, 170, 255].as_slice().into()),
    ));
    obj.put(DataElement::new(
        tags::VOILUT_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![item]),
    ));
    let frames = Frames::decode(&obj).unwrap();
    let hu = frames.modality(0).unwrap();
    let unit = frames.voi_unit(0).unwrap();
    for (h, u) in hu.iter().zip(&unit) {
        let expected = match *h as i64 {
            i64::MIN..=-1000 => 0.0,
            -999 => 85.0 / 255.0,
            -998 => 170.0 / 255.0,
            _ => 1.0,
        };
        assert!((u - expected).abs() < 1e-6, "HU {h}: {u} != {expected}");
    }
}

/// Corrupted code streams through the C decoders (OpenJPEG, CharLS): an
/// error or a (garbled) image, never a crash or a read outside the data.
#[test]
fn corrupted_compressed_frames_fail_cleanly() {
    use dicom_core::value::{PixelFragmentSequence, Value};
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/generated/imaging");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for name in [
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPEG2000.dcm",
    ] {
        let original = dicom_object::open_file(dir.join(name)).unwrap();
        let fragment = match original.element(tags::PIXEL_DATA).unwrap().value() {
            Value::PixelSequence(seq) => seq.fragments()[0].to_vec(),
            _ => panic!("{name} is not encapsulated"),
        };
        let mut errors = 0;
        for round in 0..150 {
            let mut bytes = fragment.clone();
            match round % 3 {
                0 => bytes.truncate((rng.next() as usize) % bytes.len()),
                1 => {
                    for _ in 0..8 {
                        let i = (rng.next() as usize) % bytes.len();
                        bytes[i] ^= 1 << (rng.next() % 8);
                    }
                }
                _ => {
                    let start = (rng.next() as usize) % bytes.len();
                    for b in &mut bytes[start..] {
                        *b = rng.next() as u8;
                    }
                }
            }
            let mut obj = original.clone();
            obj.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                Value::PixelSequence(PixelFragmentSequence::new_fragments(vec![bytes])),
            ));
            if Frames::decode(&obj).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0, "{name}: no corruption was ever detected");
    }
}

#[test]
fn an_unsupported_transfer_syntax_is_named() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/generated/imaging");
    let mut obj = dicom_object::open_file(dir.join("MR_small_jp2klossless.dcm")).unwrap();
    // Encapsulated frames claimed to be MPEG-2 video.
    obj.meta_mut().transfer_syntax = "1.2.840.10008.1.2.4.100\0".into();
    let e = Frames::decode(&obj).unwrap_err();
    assert!(
        matches!(e, ImagingError::UnsupportedTransferSyntax { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("1.2.840.10008.1.2.4.100"), "{e}");
}
