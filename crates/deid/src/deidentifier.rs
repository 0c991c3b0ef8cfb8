//! Applying the profile to one object.

use std::io::Read;
use std::path::Path;

use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dates::{shift_da, shift_dt};
use crate::profile::{self, Action, Treatment};
use crate::DeidError;

/// The secret every replacement is derived from: new UIDs, the patient's
/// pseudonym and date shift. One key gives the same results every time
/// (a resend after a crash is the same object; two exports under one key
/// can be linked); without the key they cannot be traced back.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A new key from the kernel's random source.
    pub fn random() -> std::io::Result<Key> {
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(Key(b))
    }

    pub fn from_bytes(b: [u8; 32]) -> Key {
        Key(b)
    }

    /// A key file: 64 hex digits (what [`Key::read_or_create`] writes).
    pub fn read(path: &Path) -> Result<Key, DeidError> {
        let bad = |detail: String| DeidError::Key {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let hex = text.trim();
        if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("not 64 hex digits".into()));
        }
        let mut b = [0u8; 32];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Key(b))
    }

    /// The key in `path`, made (readable by its owner only) if there is
    /// none yet.
    pub fn read_or_create(path: &Path) -> Result<Key, DeidError> {
        if path.exists() {
            return Key::read(path);
        }
        let bad = |e: std::io::Error| DeidError::Key {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        let key = Key::random().map_err(bad)?;
        let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(bad)?;
        f.write_all(format!("{hex}\n").as_bytes()).map_err(bad)?;
        f.sync_all().map_err(bad)?;
        // Two writers at once: the first to link wins, both read its key.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(bad(e)),
        }
        let _ = std::fs::remove_file(&tmp);
        Key::read(path)
    }

    /// A key of its own for `purpose` (e.g. one destination), from which
    /// this key cannot be recovered.
    pub fn derive_key(&self, purpose: &str) -> Key {
        Key(self.derive("key", purpose))
    }

    fn derive(&self, what: &str, input: &str) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(what.as_bytes());
        m.update(&[0]);
        m.update(input.as_bytes());
        m.finalize().into_bytes().into()
    }
}

/// What happens to dates and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dates {
    /// The Basic Profile: removed, emptied or a dummy value.
    Remove,
    /// The Retain Longitudinal Temporal Information with Modified Dates
    /// Option: every date the option cleans moved earlier by a number of
    /// days fixed per patient (1 to 3650, from the key), times kept, so
    /// intervals between a patient's studies survive.
    Shift,
}

/// Who made the object, which decides what happens to its content tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Received: a content tree (Content Sequence, action D) is refused,
    /// since its free text cannot be cleaned.
    Received,
    /// Made by triaged (its SR): the content tree is kept, each of its
    /// attributes treated by the table (observer names, dates, UIDs); its
    /// TEXT items are the device's, model's and findings' names.
    Triaged,
}

/// Dummy values by VR (Table E.1-1 action D).
const DUMMY_TEXT: &str = "ANONYMIZED";

/// Applies Table E.1-1 under one key.
#[derive(Debug, Clone)]
pub struct Deidentifier {
    key: Key,
    dates: Dates,
}

/// What every attribute of one object is treated with: its patient's
/// date shift (under [`Dates::Shift`]).
struct Context {
    days_earlier: Option<u64>,
}

impl Deidentifier {
    pub fn new(key: Key, dates: Dates) -> Deidentifier {
        Deidentifier { key, dates }
    }

    pub fn dates(&self) -> Dates {
        self.dates
    }

    /// The UID that replaces `uid` under this key.
    pub fn uid(&self, uid: &str) -> String {
        let d = self.key.derive("uid", uid.trim_end_matches(['\0', ' ']));
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        format!("2.25.{}", u128::from_be_bytes(b) >> 1)
    }

    /// The patient's pseudonym (Patient ID and Patient's Name).
    pub fn pseudonym(&self, patient_id: &str) -> String {
        let d = self.key.derive("patient", patient_id.trim());
        let hex: String = d[..6].iter().map(|b| format!("{b:02X}")).collect();
        format!("ANON{hex}")
    }

    /// How many days earlier this patient's dates move under
    /// [`Dates::Shift`].
    pub fn days_earlier(&self, patient_id: &str) -> u64 {
        let d = self.key.derive("shift", patient_id.trim());
        1 + u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])) % 3650
    }

    /// A de-identified copy of a Part 10 file: the data set by
    /// [`Deidentifier::object`], the file meta group made anew for it.
    pub fn file(
        &self,
        file: &FileDicomObject<InMemDicomObject>,
        source: Source,
    ) -> Result<FileDicomObject<InMemDicomObject>, DeidError> {
        let obj = self.object(file, source)?;
        let text = |t| attrs::text(&obj, t);
        let sop = text(tags::SOP_INSTANCE_UID).ok_or(DeidError::NoSopInstanceUid)?;
        let meta = file.meta();
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(meta.media_storage_sop_class_uid())
            .media_storage_sop_instance_uid(sop)
            .transfer_syntax(meta.transfer_syntax())
            .implementation_class_uid(attrs::IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(attrs::IMPLEMENTATION_VERSION_NAME)
            .build()
            .map_err(|e| DeidError::Meta(e.to_string()))?;
        Ok(obj.with_exact_meta(meta))
    }

    /// A de-identified copy of a data set; refused if its pixels carry
    /// burned-in annotation, or if it is a content tree from elsewhere.
    pub fn object(
        &self,
        obj: &InMemDicomObject,
        source: Source,
    ) -> Result<InMemDicomObject, DeidError> {
        if attrs::text(obj, tags::BURNED_IN_ANNOTATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("YES"))
        {
            return Err(DeidError::BurnedInAnnotation);
        }
        if source == Source::Received && obj.get(tags::CONTENT_SEQUENCE).is_some() {
            return Err(DeidError::ForeignContent);
        }
        let patient = attrs::text(obj, tags::PATIENT_ID).unwrap_or_default();
        let cx = Context {
            days_earlier: (self.dates == Dates::Shift).then(|| self.days_earlier(&patient)),
        };
        let mut out = self.data_set(obj, &cx, true);
        for t in [tags::PATIENT_ID, tags::PATIENT_NAME] {
            if out.get(t).is_some() {
                let vr = if t == tags::PATIENT_ID {
                    VR::LO
                } else {
                    VR::PN
                };
                out.put(DataElement::new(
                    t,
                    vr,
                    PrimitiveValue::from(self.pseudonym(&patient)),
                ));
            }
        }
        self.mark(&mut out);
        Ok(out)
    }

    /// The attributes that say how the object was de-identified (PS3.3
    /// C.7.1.1 Patient Identity Removed and its method; C.7.6.1.1 for the
    /// temporal information).
    fn mark(&self, out: &mut InMemDicomObject) {
        let text = |t, vr, v: &str| DataElement::new(t, vr, PrimitiveValue::from(v));
        out.put(text(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"));
        let (method, temporal) = match self.dates {
            Dates::Remove => ("PS3.15 E.1 Basic Profile (triaged)", "REMOVED"),
            Dates::Shift => (
                "PS3.15 E.1 Basic Profile, Modified Dates (triaged)",
                "MODIFIED",
            ),
        };
        out.put(text(tags::DEIDENTIFICATION_METHOD, VR::LO, method));
        let code = |value: &str, meaning: &str| {
            InMemDicomObject::from_element_iter([
                text(tags::CODE_VALUE, VR::SH, value),
                text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM"),
                text(tags::CODE_MEANING, VR::LO, meaning),
            ])
        };
        let mut codes = vec![code("113100", "Basic Application Confidentiality Profile")];
        if self.dates == Dates::Shift {
            codes.push(code(
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ));
        }
        out.put(DataElement::new(
            tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(codes),
        ));
        out.put(text(
            tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED,
            VR::CS,
            temporal,
        ));
    }

    fn data_set(&self, obj: &InMemDicomObject, cx: &Context, top: bool) -> InMemDicomObject {
        let mut out = InMemDicomObject::new_empty();
        for e in obj.iter() {
            if let Some(e) = self.element(e, cx, top) {
                out.put(e);
            }
        }
        out
    }

    fn element(&self, e: &InMemElement, cx: &Context, top: bool) -> Option<InMemElement> {
        let tag = e.tag();
        // Group lengths would be stale; the file meta group is made anew.
        if tag.element() == 0 || (top && tag.group() == 0x0002) {
            return None;
        }
        let Some(rule) = profile::standard().rule(tag) else {
            return Some(self.keep(e, cx));
        };
        if let (Some(Action::C), Some(days)) = (rule.modified_dates, cx.days_earlier) {
            if let Some(shifted) = self.shift(e, days) {
                return Some(shifted);
            }
        }
        let vr = e.vr();
        match rule.basic.treatment() {
            // An empty value tells nothing, and may be a Type 2 attribute
            // the IOD needs (Requested Procedure ID in an SR's request).
            Treatment::Remove if is_empty(e) => Some(e.clone()),
            Treatment::Remove => None,
            Treatment::Keep => Some(self.keep(e, cx)),
            Treatment::Empty => Some(match e.value() {
                Value::Sequence(_) => {
                    DataElement::new(tag, VR::SQ, DataSetSequence::<InMemDicomObject>::empty())
                }
                _ => DataElement::new(tag, vr, PrimitiveValue::Empty),
            }),
            Treatment::NewUid if vr == VR::UI => {
                let values: Vec<String> = strings(e).iter().map(|u| self.uid(u)).collect();
                Some(DataElement::new(
                    tag,
                    VR::UI,
                    PrimitiveValue::Strs(values.into()),
                ))
            }
            // A UID that is not of VR UI, or a sequence: its own
            // attributes are treated one by one.
            Treatment::NewUid | Treatment::Dummy if matches!(e.value(), Value::Sequence(_)) => {
                Some(self.keep(e, cx))
            }
            Treatment::NewUid | Treatment::Dummy => Some(self.dummy(e)),
        }
    }

    /// The element as it is, a sequence's items treated attribute by
    /// attribute.
    fn keep(&self, e: &InMemElement, cx: &Context) -> InMemElement {
        match e.value() {
            Value::Sequence(s) => {
                let items: Vec<InMemDicomObject> = s
                    .items()
                    .iter()
                    .map(|i| self.data_set(i, cx, false))
                    .collect();
                DataElement::new(e.tag(), VR::SQ, DataSetSequence::from(items))
            }
            _ => e.clone(),
        }
    }

    /// A DA or DT value moved earlier; `None` if it is neither or cannot
    /// be read as a date (then the Basic Profile applies).
    fn shift(&self, e: &InMemElement, days: u64) -> Option<InMemElement> {
        let f = match e.vr() {
            VR::DA => shift_da,
            VR::DT => shift_dt,
            // Times are kept by the option.
            VR::TM => return Some(e.clone()),
            _ => return None,
        };
        let values = strings(e)
            .iter()
            .map(|v| f(v, days))
            .collect::<Option<Vec<String>>>()?;
        Some(DataElement::new(
            e.tag(),
            e.vr(),
            PrimitiveValue::Strs(values.into()),
        ))
    }

    /// A non-empty value consistent with the VR.
    fn dummy(&self, e: &InMemElement) -> InMemElement {
        let (tag, vr) = (e.tag(), e.vr());
        let s = |v: &str| PrimitiveValue::from(v);
        let value = match vr {
            VR::UI => s(&self.uid(&strings(e).join("\\"))),
            VR::DA => s("19000101"),
            VR::TM => s("000000"),
            VR::DT => s("19000101000000"),
            VR::AS => s("000D"),
            VR::IS | VR::DS => s("0"),
            VR::US => PrimitiveValue::from(0u16),
            VR::SS => PrimitiveValue::from(0i16),
            VR::UL => PrimitiveValue::from(0u32),
            VR::SL => PrimitiveValue::from(0i32),
            VR::FL => PrimitiveValue::from(0f32),
            VR::FD => PrimitiveValue::from(0f64),
            // Binary: zeros, an even number of bytes.
            VR::OB | VR::UN => PrimitiveValue::U8(vec![0u8, 0].into()),
            VR::OW => PrimitiveValue::from(0u16),
            VR::OF => PrimitiveValue::from(0f32),
            VR::OD => PrimitiveValue::from(0f64),
            VR::OL => PrimitiveValue::from(0u32),
            VR::OV | VR::UV => PrimitiveValue::from(0u64),
            VR::SV => PrimitiveValue::from(0i64),
            VR::AT => PrimitiveValue::Tags(vec![dicom_core::Tag(0, 0)].into()),
            _ => s(DUMMY_TEXT),
        };
        DataElement::new(tag, vr, value)
    }
}

fn is_empty(e: &InMemElement) -> bool {
    match e.value() {
        Value::Primitive(p) => {
            p.multiplicity() == 0 || p.to_str().trim_end_matches(['\0', ' ']).is_empty()
        }
        Value::Sequence(s) => s.items().is_empty(),
        Value::PixelSequence(_) => false,
    }
}

fn strings(e: &InMemElement) -> Vec<String> {
    e.value()
        .to_multi_str()
        .map(|v| {
            v.iter()
                .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(o: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, v: &str) {
        o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    }

    fn sample() -> InMemDicomObject {
        let mut o = InMemDicomObject::new_empty();
        put(&mut o, tags::PATIENT_NAME, VR::PN, "DOE^JANE");
        put(&mut o, tags::PATIENT_ID, VR::LO, "MRN123");
        put(&mut o, tags::STUDY_DATE, VR::DA, "20240301");
        put(&mut o, tags::STUDY_TIME, VR::TM, "101500");
        put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3");
        put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4");
        put(&mut o, tags::INSTITUTION_ADDRESS, VR::ST, "1 Main St");
        put(&mut o, tags::MODALITY, VR::CS, "CT");
        put(&mut o, dicom_core::Tag(0x0009, 0x0010), VR::LO, "VENDOR");
        o
    }

    fn text(o: &InMemDicomObject, t: dicom_core::Tag) -> Option<String> {
        attrs::text(o, t)
    }

    #[test]
    fn the_basic_profile_is_applied() {
        let d = Deidentifier::new(Key::from_bytes([7; 32]), Dates::Remove);
        let o = d.object(&sample(), Source::Received).unwrap();
        let pseudonym = d.pseudonym("MRN123");
        assert_eq!(text(&o, tags::PATIENT_ID), Some(pseudonym.clone()));
        assert_eq!(text(&o, tags::PATIENT_NAME), Some(pseudonym));
        assert_eq!(text(&o, tags::STUDY_DATE), None, "Z: emptied");
        assert!(o.element(tags::STUDY_DATE).is_ok(), "Z keeps the attribute");
        assert!(o.element(tags::INSTITUTION_ADDRESS).is_err(), "X");
        assert!(
            o.element(dicom_core::Tag(0x0009, 0x0010)).is_err(),
            "private"
        );
        assert_eq!(
            text(&o, tags::MODALITY).as_deref(),
            Some("CT"),
            "not listed"
        );
        assert_eq!(text(&o, tags::STUDY_INSTANCE_UID), Some(d.uid("1.2.3")));
        assert_ne!(d.uid("1.2.3"), "1.2.3");
        assert_eq!(
            text(&o, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
        assert_eq!(
            text(&o, tags::LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED).as_deref(),
            Some("REMOVED")
        );
    }

    #[test]
    fn dates_shift_by_the_patients_days_and_times_stay() {
        let d = Deidentifier::new(Key::from_bytes([7; 32]), Dates::Shift);
        let o = d.object(&sample(), Source::Received).unwrap();
        let days = d.days_earlier("MRN123");
        assert!((1..=3650).contains(&days));
        assert_eq!(
            text(&o, tags::STUDY_DATE),
            crate::dates::shift_da("20240301", days)
        );
        assert_eq!(text(&o, tags::STUDY_TIME).as_deref(), Some("101500"));
        assert_ne!(
            d.days_earlier("MRN124"),
            days,
            "another patient, another shift"
        );
    }

    #[test]
    fn one_key_one_mapping_another_key_another() {
        let a = Deidentifier::new(Key::from_bytes([1; 32]), Dates::Remove);
        let b = Deidentifier::new(Key::from_bytes([2; 32]), Dates::Remove);
        assert_eq!(a.uid("1.2.3"), a.uid("1.2.3 "));
        assert_ne!(a.uid("1.2.3"), b.uid("1.2.3"));
        assert!(a.uid("1.2.3").len() <= 64);
    }

    #[test]
    fn burned_in_annotation_is_refused() {
        let d = Deidentifier::new(Key::from_bytes([7; 32]), Dates::Remove);
        let mut o = sample();
        put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
        assert!(matches!(
            d.object(&o, Source::Received),
            Err(DeidError::BurnedInAnnotation)
        ));
        put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
        assert!(d.object(&o, Source::Received).is_ok());
    }

    #[test]
    fn a_content_tree_is_de_identified_only_when_triaged_wrote_it() {
        let d = Deidentifier::new(Key::from_bytes([7; 32]), Dates::Remove);
        let mut o = sample();
        let mut item = InMemDicomObject::new_empty();
        put(&mut item, tags::PERSON_NAME, VR::PN, "DOE^JOHN");
        put(&mut item, tags::TEXT_VALUE, VR::UT, "demo-cxr");
        o.put(DataElement::new(
            tags::CONTENT_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![item]),
        ));
        assert!(matches!(
            d.object(&o, Source::Received),
            Err(DeidError::ForeignContent)
        ));
        let out = d.object(&o, Source::Triaged).unwrap();
        let items = out
            .element(tags::CONTENT_SEQUENCE)
            .unwrap()
            .items()
            .unwrap();
        assert_eq!(
            text(&items[0], tags::PERSON_NAME).as_deref(),
            Some(DUMMY_TEXT)
        );
        assert_eq!(
            text(&items[0], tags::TEXT_VALUE).as_deref(),
            Some("demo-cxr")
        );
    }

    #[test]
    fn a_key_file_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let a = Key::read_or_create(&path).unwrap();
        let b = Key::read_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only");
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(Key::read(&path), Err(DeidError::Key { .. })));
    }
}
