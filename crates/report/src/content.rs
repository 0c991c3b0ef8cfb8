//! SR content items (PS3.3 C.17.3): small constructors for the value
//! types the reports use.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::codes::Code;

pub(crate) fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

pub(crate) fn sequence(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A code sequence item (Code Value, Coding Scheme Designator, Meaning).
pub(crate) fn code_item(code: &Code) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put(&mut item, tags::CODE_VALUE, VR::SH, code.value.as_ref());
    put(
        &mut item,
        tags::CODING_SCHEME_DESIGNATOR,
        VR::SH,
        code.scheme.as_ref(),
    );
    put(&mut item, tags::CODE_MEANING, VR::LO, code.meaning.as_ref());
    item
}

fn item(relationship: &str, value_type: &str, concept: &Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, relationship);
    put(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    sequence(
        &mut o,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item(concept)],
    );
    o
}

pub(crate) fn container(
    relationship: &str,
    concept: &Code,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = item(relationship, "CONTAINER", concept);
    put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    sequence(&mut o, tags::CONTENT_SEQUENCE, children);
    o
}

pub(crate) fn text(relationship: &str, concept: &Code, value: &str) -> InMemDicomObject {
    let mut o = item(relationship, "TEXT", concept);
    put(&mut o, tags::TEXT_VALUE, VR::UT, value);
    o
}

pub(crate) fn code(relationship: &str, concept: &Code, value: &Code) -> InMemDicomObject {
    let mut o = item(relationship, "CODE", concept);
    sequence(&mut o, tags::CONCEPT_CODE_SEQUENCE, vec![code_item(value)]);
    o
}

pub(crate) fn uidref(relationship: &str, concept: &Code, uid: &str) -> InMemDicomObject {
    let mut o = item(relationship, "UIDREF", concept);
    put(&mut o, tags::UID, VR::UI, uid);
    o
}

pub(crate) fn num(relationship: &str, concept: &Code, value: f64, unit: &Code) -> InMemDicomObject {
    let mut o = item(relationship, "NUM", concept);
    let mut mv = InMemDicomObject::new_empty();
    // DS holds at most 16 characters.
    put(&mut mv, tags::NUMERIC_VALUE, VR::DS, format!("{value:.6}"));
    sequence(
        &mut mv,
        tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
        vec![code_item(unit)],
    );
    sequence(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

pub(crate) fn image(
    relationship: &str,
    concept: &Code,
    sop_class: &str,
    sop_instance: &str,
) -> InMemDicomObject {
    let mut o = item(relationship, "IMAGE", concept);
    let mut r = InMemDicomObject::new_empty();
    put(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, sop_class);
    put(
        &mut r,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        sop_instance,
    );
    sequence(&mut o, tags::REFERENCED_SOP_SEQUENCE, vec![r]);
    o
}
