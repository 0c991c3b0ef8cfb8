//! Radiographs as DICOM instances: CR Image or Digital X-Ray Image For
//! Presentation, with the Patient, Study, Series, Equipment and image
//! modules a PACS expects. Every identifier is synthetic and follows from
//! the case's seed.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::case::{Case, Radiograph};
use crate::rng::Rng;

pub const CR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1";
pub const DX_FOR_PRESENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.1.1";
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// The phantom writer's Implementation Class UID (a fixed 2.25 UID).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.143922315226935476331372011239510337011";

#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
}

/// The identifiers of a case's study: all synthetic, all derived from the
/// seed so the same seed always makes the same study.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub patient_name: String,
    pub patient_id: String,
    pub birth_date: String,
    pub study_uid: String,
    pub series_uid: String,
    pub accession: String,
    pub study_date: String,
    pub study_time: String,
}

/// A `2.25.` UID from a seed and a purpose.
pub fn uid(seed: u64, purpose: u64) -> String {
    let mut r = Rng::derive(seed, 0xD1C0_0000 + purpose);
    let v = ((r.next_u64() as u128) << 64 | r.next_u64() as u128) >> 1;
    format!("2.25.{v}")
}

const GIVEN: [&str; 8] = [
    "ALEX", "BRIGHT", "CORAL", "DELTA", "EMBER", "FJORD", "GLADE", "HARBOR",
];

impl Identity {
    pub fn of(case: &Case) -> Identity {
        Identity::from_seed(case.seed, case.subject.age)
    }

    /// The identity of the study made from `seed`, for a subject of `age`.
    pub fn from_seed(seed: u64, age: u32) -> Identity {
        let mut r = Rng::derive(seed, 0xD1C0);
        let day = r.below(300) as u32;
        let (month, dom) = (1 + day / 28 % 12, 1 + day % 28);
        let (h, m) = (8 + r.below(10), r.below(60));
        Identity {
            patient_name: format!("PHANTOM^{}", GIVEN[r.below(GIVEN.len())]),
            patient_id: format!("PH{:08}", seed % 100_000_000),
            birth_date: format!("{:04}{month:02}{dom:02}", 2026 - age),
            study_uid: uid(seed, 1),
            series_uid: uid(seed, 2),
            accession: format!("ACC{:07}", r.next_u64() % 10_000_000),
            study_date: format!("2026{month:02}{dom:02}"),
            study_time: format!("{h:02}{m:02}00"),
        }
    }
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// A multi-valued string element (kept as separate values in memory, not
/// one string with a backslash).
fn multi(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: &[&str]) {
    let v: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    obj.put(DataElement::new(tag, vr, PrimitiveValue::Strs(v.into())));
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, value);
    put(&mut item, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    put(&mut item, tags::CODE_MEANING, VR::LO, meaning);
    item
}

/// The Patient, General Study and Patient Study modules of a synthetic
/// study: `subject` is (sex code, age in years).
fn put_patient_and_study(
    o: &mut InMemDicomObject,
    id: &Identity,
    seed: u64,
    subject: (&str, u32),
    description: &str,
) {
    let (sex, age) = subject;
    put(o, tags::PATIENT_NAME, VR::PN, id.patient_name.as_str());
    put(o, tags::PATIENT_ID, VR::LO, id.patient_id.as_str());
    put(o, tags::PATIENT_BIRTH_DATE, VR::DA, id.birth_date.as_str());
    put(o, tags::PATIENT_SEX, VR::CS, sex);
    put(o, tags::PATIENT_IDENTITY_REMOVED, VR::CS, "NO");
    put(o, tags::STUDY_INSTANCE_UID, VR::UI, id.study_uid.as_str());
    put(o, tags::STUDY_DATE, VR::DA, id.study_date.as_str());
    put(o, tags::STUDY_TIME, VR::TM, id.study_time.as_str());
    put(o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(o, tags::STUDY_ID, VR::SH, format!("{}", seed % 100_000));
    put(o, tags::ACCESSION_NUMBER, VR::SH, id.accession.as_str());
    put(o, tags::STUDY_DESCRIPTION, VR::LO, description);
    put(o, tags::PATIENT_AGE, VR::AS, format!("{age:03}Y"));
}

/// The General Equipment module: the fictitious vendor, the phantom's
/// hospital and software.
fn put_equipment(o: &mut InMemDicomObject, manufacturer: &str, model: &str) {
    put(o, tags::MANUFACTURER, VR::LO, manufacturer);
    put(o, tags::MANUFACTURER_MODEL_NAME, VR::LO, model);
    put(
        o,
        tags::INSTITUTION_NAME,
        VR::LO,
        "Phantom General Hospital",
    );
    put(
        o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("triaged-phantom ", env!("CARGO_PKG_VERSION")),
    );
}

/// The instance with its file meta group (explicit VR little endian).
fn with_meta(
    o: InMemDicomObject,
    class: &str,
    sop_uid: &str,
) -> Result<FileDicomObject<InMemDicomObject>, DicomError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(sop_uid)
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name("TRIAGED_PHANTOM")
        .build()
        .map_err(|e| DicomError::Meta(e.to_string()))?;
    Ok(o.with_exact_meta(meta))
}

/// The instance `number` (1-based) of the case's study.
pub fn instance(
    case: &Case,
    image: &Radiograph,
    number: u32,
) -> Result<FileDicomObject<InMemDicomObject>, DicomError> {
    let id = Identity::of(case);
    let s = &case.subject;
    let v = &s.vendor;
    let dx = v.modality == "DX";
    let class = if dx {
        DX_FOR_PRESENTATION_STORAGE
    } else {
        CR_IMAGE_STORAGE
    };
    let sop_uid = uid(case.seed, 100 + number as u64);
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, class);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str());
    put_patient_and_study(
        &mut o,
        &id,
        case.seed,
        (s.sex.code(), s.age),
        &format!("XR CHEST {}", s.view.code()),
    );
    // General Series (+ CR Series / DX Series)
    put(&mut o, tags::MODALITY, VR::CS, v.modality);
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        id.series_uid.as_str(),
    );
    put(&mut o, tags::SERIES_NUMBER, VR::IS, "1");
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        format!("CHEST {}", s.view.code()),
    );
    put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, "CHEST");
    put(&mut o, tags::VIEW_POSITION, VR::CS, s.view.code());
    put_equipment(&mut o, v.manufacturer, v.model);
    // General Image, General Acquisition
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, number.to_string());
    multi(&mut o, tags::PATIENT_ORIENTATION, VR::CS, &["L", "F"]);
    put(&mut o, tags::CONTENT_DATE, VR::DA, id.study_date.as_str());
    put(&mut o, tags::CONTENT_TIME, VR::TM, id.study_time.as_str());
    multi(&mut o, tags::IMAGE_TYPE, VR::CS, &["ORIGINAL", "PRIMARY"]);
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put(
        &mut o,
        tags::KVP,
        VR::DS,
        if s.view.code() == "AP" { "90" } else { "120" },
    );
    // Image Pixel
    let maxval = (1u32 << image.bits_stored) - 1;
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        if image.monochrome1 {
            "MONOCHROME1"
        } else {
            "MONOCHROME2"
        },
    );
    put(&mut o, tags::ROWS, VR::US, image.rows as u16);
    put(&mut o, tags::COLUMNS, VR::US, image.columns as u16);
    put(&mut o, tags::BITS_ALLOCATED, VR::US, 16u16);
    put(&mut o, tags::BITS_STORED, VR::US, image.bits_stored);
    put(&mut o, tags::HIGH_BIT, VR::US, image.bits_stored - 1);
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, 0u16);
    let spacing = format!("{:.4}", image.pixel_spacing);
    multi(
        &mut o,
        tags::IMAGER_PIXEL_SPACING,
        VR::DS,
        &[&spacing, &spacing],
    );
    // VOI LUT: the whole range (the vendor's processing already shaped it).
    put(
        &mut o,
        tags::WINDOW_CENTER,
        VR::DS,
        format!("{}", maxval.div_ceil(2)),
    );
    put(
        &mut o,
        tags::WINDOW_WIDTH,
        VR::DS,
        format!("{}", maxval + 1),
    );
    if dx {
        put(
            &mut o,
            tags::PRESENTATION_INTENT_TYPE,
            VR::CS,
            "FOR PRESENTATION",
        );
        put(&mut o, tags::IMAGE_LATERALITY, VR::CS, "U");
        o.put(DataElement::new(
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![code("43799004", "SCT", "Chest")]),
        ));
        put(&mut o, tags::POSITIONER_TYPE, VR::CS, "COLUMN");
        let view = match s.view {
            crate::View::Pa => code("R-10214", "SRT", "postero-anterior"),
            crate::View::Ap => code("R-10206", "SRT", "antero-posterior"),
        };
        o.put(DataElement::new(
            tags::VIEW_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![view]),
        ));
        o.put(DataElement::new(
            tags::ACQUISITION_CONTEXT_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(Vec::<InMemDicomObject>::new()),
        ));
        put(&mut o, tags::PIXEL_INTENSITY_RELATIONSHIP, VR::CS, "LOG");
        // Stored values rise with attenuation (fall with beam intensity)
        // in MONOCHROME2 and the other way round in MONOCHROME1.
        let sign: i16 = if image.monochrome1 { 1 } else { -1 };
        put(
            &mut o,
            tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN,
            VR::SS,
            sign,
        );
        put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "0");
        put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
        put(&mut o, tags::RESCALE_TYPE, VR::LO, "US");
        put(
            &mut o,
            tags::PRESENTATION_LUT_SHAPE,
            VR::CS,
            if image.monochrome1 {
                "INVERSE"
            } else {
                "IDENTITY"
            },
        );
        put(&mut o, tags::DETECTOR_TYPE, VR::CS, "SCINTILLATOR");
    }
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|p| p.to_le_bytes()).collect();
    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(bytes.into()),
    );
    with_meta(o, class, &sop_uid)
}

/// Slice `number` (1-based, skull base first) of a head CT study: CT Image
/// Storage with the Image Plane and CT Image modules (Rescale Slope /
/// Intercept for the vendor's storage, Image Position / Orientation,
/// Slice Thickness and spacing, a brain window).
pub fn head_ct_instance(
    case: &crate::head::HeadCase,
    slice: &crate::head::CtSlice,
    number: u32,
) -> Result<FileDicomObject<InMemDicomObject>, DicomError> {
    let id = Identity::from_seed(case.seed, case.age);
    let v = &case.vendor;
    // Series 2 (routine) keeps the chest writer's UID purposes; series 3
    // (thin) has its own.
    let series = case.series_number();
    let (series_uid, sop_uid) = if series == 2 {
        (id.series_uid.clone(), uid(case.seed, 100 + number as u64))
    } else {
        (uid(case.seed, 4), uid(case.seed, 100_000 + number as u64))
    };
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str());
    put_patient_and_study(
        &mut o,
        &id,
        case.seed,
        (if case.female { "F" } else { "M" }, case.age),
        "CT HEAD WO CONTRAST",
    );
    put(&mut o, tags::MODALITY, VR::CS, "CT");
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        series_uid.as_str(),
    );
    put(&mut o, tags::SERIES_NUMBER, VR::IS, series.to_string());
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        format!("AXIAL {} mm {}", case.thickness, v.kernel),
    );
    put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, "HEAD");
    put(&mut o, tags::PATIENT_POSITION, VR::CS, "HFS");
    // Frame of Reference
    put(
        &mut o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        uid(case.seed, 3).as_str(),
    );
    put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    put_equipment(&mut o, v.manufacturer, v.model);
    // General Image, General Acquisition
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, number.to_string());
    put(&mut o, tags::ACQUISITION_NUMBER, VR::IS, "1");
    put(&mut o, tags::CONTENT_DATE, VR::DA, id.study_date.as_str());
    put(&mut o, tags::CONTENT_TIME, VR::TM, id.study_time.as_str());
    multi(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        &["ORIGINAL", "PRIMARY", "AXIAL"],
    );
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    // Image Plane
    let spacing = format!("{:.6}", case.pixel_spacing());
    multi(&mut o, tags::PIXEL_SPACING, VR::DS, &[&spacing, &spacing]);
    multi(
        &mut o,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &["1", "0", "0", "0", "1", "0"],
    );
    let corner = format!("{:.6}", -case.fov / 2.0 + case.pixel_spacing() / 2.0);
    let z = format!("{:.4}", slice.z);
    multi(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &[&corner, &corner, &z],
    );
    put(
        &mut o,
        tags::SLICE_THICKNESS,
        VR::DS,
        format!("{}", case.thickness),
    );
    put(
        &mut o,
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        format!("{}", case.thickness),
    );
    put(&mut o, tags::SLICE_LOCATION, VR::DS, z.as_str());
    // Image Pixel and CT Image
    let n = case.matrix as u16;
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put(&mut o, tags::ROWS, VR::US, n);
    put(&mut o, tags::COLUMNS, VR::US, n);
    put(&mut o, tags::BITS_ALLOCATED, VR::US, 16u16);
    put(
        &mut o,
        tags::BITS_STORED,
        VR::US,
        if v.signed { 16u16 } else { 12u16 },
    );
    put(
        &mut o,
        tags::HIGH_BIT,
        VR::US,
        if v.signed { 15u16 } else { 11u16 },
    );
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, v.signed as u16);
    let intercept = if v.signed { 0 } else { -1024 };
    put(
        &mut o,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        intercept.to_string(),
    );
    put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
    put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
    put(&mut o, tags::KVP, VR::DS, "120");
    put(&mut o, tags::CONVOLUTION_KERNEL, VR::SH, v.kernel);
    multi(&mut o, tags::WINDOW_CENTER, VR::DS, &["40", "600"]);
    multi(&mut o, tags::WINDOW_WIDTH, VR::DS, &["80", "2800"]);
    multi(
        &mut o,
        tags::WINDOW_CENTER_WIDTH_EXPLANATION,
        VR::LO,
        &["BRAIN", "BONE"],
    );
    let bytes: Vec<u8> = slice
        .hu
        .iter()
        .flat_map(|&h| {
            if v.signed {
                h.to_le_bytes()
            } else {
                ((h as i32 - intercept) as u16).to_le_bytes()
            }
        })
        .collect();
    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U8(bytes.into()),
    );
    with_meta(o, CT_IMAGE_STORAGE, &sop_uid)
}
