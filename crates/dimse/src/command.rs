//! DIMSE command sets: decoding requests and encoding responses.
//!
//! dicom-ul has no message layer, so command sets (group 0000, always
//! implicit VR little endian) are read and written here with dicom-object.

use dicom_core::{dicom_value, DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use crate::status::Status;

/// Command Field values (PS3.7 E.1).
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// Command Data Set Type meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;

/// The parts of a request command that triaged acts on.
#[derive(Debug, Clone)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    pub affected_sop_class_uid: Option<String>,
    pub affected_sop_instance_uid: Option<String>,
    pub has_data_set: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("command set cannot be decoded: {0}")]
    Decode(String),
    #[error("command set lacks {0}")]
    Missing(&'static str),
}

/// Parse a command set (always implicit VR little endian).
fn parse(bytes: &[u8]) -> Result<InMemDicomObject, CommandError> {
    InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| CommandError::Decode(e.to_string()))
}

fn read_u16(obj: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<u16, CommandError> {
    obj.get(tag)
        .and_then(|e| e.to_int::<u16>().ok())
        .ok_or(CommandError::Missing(name))
}

/// A command set is a flat list of group 0000 elements with defined
/// lengths (implicit VR little endian). Check that every length fits in
/// the bytes received before the parser sees them: the parser reserves
/// what a length announces, so a 70-byte fragment claiming a 4 GB element
/// would otherwise cost 4 GB (found by fuzzing).
fn check_lengths(bytes: &[u8]) -> Result<(), CommandError> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(head) = bytes.get(pos..pos + 8) else {
            return Err(CommandError::Decode(format!(
                "truncated element header at byte {pos}"
            )));
        };
        let group = u16::from_le_bytes([head[0], head[1]]);
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if group != 0 {
            return Err(CommandError::Decode(format!(
                "element of group {group:04X} in a command set"
            )));
        }
        if len % 2 == 1 {
            // PS3.5 7.1.1: value lengths are even; the parser misreads the
            // elements after an odd one (found by fuzzing).
            return Err(CommandError::Decode(format!(
                "element at byte {pos} has the odd length {len}"
            )));
        }
        if len > bytes.len() - pos - 8 {
            return Err(CommandError::Decode(format!(
                "element at byte {pos} announces {len} bytes; {} remain",
                bytes.len() - pos - 8
            )));
        }
        pos += 8 + len;
    }
    Ok(())
}

impl Command {
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        check_lengths(bytes)?;
        let obj = parse(bytes)?;
        let data_set_type = read_u16(&obj, tags::COMMAND_DATA_SET_TYPE, "CommandDataSetType")?;
        Ok(Command {
            field: read_u16(&obj, tags::COMMAND_FIELD, "CommandField")?,
            message_id: read_u16(&obj, tags::MESSAGE_ID, "MessageID")?,
            affected_sop_class_uid: attrs::text(&obj, tags::AFFECTED_SOP_CLASS_UID),
            affected_sop_instance_uid: attrs::text(&obj, tags::AFFECTED_SOP_INSTANCE_UID),
            has_data_set: data_set_type != NO_DATA_SET,
        })
    }
}

/// Encode a command object with its (0000,0000) group length in front.
pub fn encode(mut obj: InMemDicomObject) -> Vec<u8> {
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut body = Vec::with_capacity(256);
    obj.write_dataset_with_ts(&mut body, &ts)
        .expect("writing a command set to memory cannot fail");
    obj.put(DataElement::new(
        tags::COMMAND_GROUP_LENGTH,
        VR::UL,
        PrimitiveValue::from(body.len() as u32),
    ));
    let mut out = Vec::with_capacity(body.len() + 12);
    obj.write_dataset_with_ts(&mut out, &ts)
        .expect("writing a command set to memory cannot fail");
    out
}

/// A US element of a command set.
fn us(tag: Tag, v: u16) -> InMemElement {
    DataElement::new(tag, VR::US, dicom_value!(U16, [v]))
}

/// A UI element of a command set, padded to even length with NUL.
fn ui(tag: Tag, uid: &str) -> InMemElement {
    DataElement::new(tag, VR::UI, dicom_value!(Str, pad_uid(uid)))
}

/// Build a response command (no data set) to a request.
pub fn response(
    field: u16,
    request_message_id: u16,
    sop_class_uid: Option<&str>,
    sop_instance_uid: Option<&str>,
    status: Status,
    error_comment: Option<&str>,
) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    if let Some(uid) = sop_class_uid {
        obj.put(ui(tags::AFFECTED_SOP_CLASS_UID, uid));
    }
    obj.put(us(tags::COMMAND_FIELD, field));
    obj.put(us(tags::MESSAGE_ID_BEING_RESPONDED_TO, request_message_id));
    obj.put(us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET));
    obj.put(us(tags::STATUS, status.0));
    if let Some(uid) = sop_instance_uid {
        obj.put(ui(tags::AFFECTED_SOP_INSTANCE_UID, uid));
    }
    if let Some(comment) = error_comment {
        // Error Comment is LO: at most 64 characters.
        let mut c: String = comment
            .chars()
            .filter(|c| !c.is_control() && *c != '\\')
            .take(64)
            .collect();
        if c.len() % 2 == 1 {
            c.push(' ');
        }
        obj.put(DataElement::new(
            tags::ERROR_COMMENT,
            VR::LO,
            dicom_value!(Str, c),
        ));
    }
    encode(obj)
}

/// Build a request command.
pub fn request(
    field: u16,
    message_id: u16,
    sop_class_uid: &str,
    sop_instance_uid: Option<&str>,
    has_data_set: bool,
) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(ui(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid));
    obj.put(us(tags::COMMAND_FIELD, field));
    obj.put(us(tags::MESSAGE_ID, message_id));
    if field == field::C_STORE_RQ {
        // Priority: medium.
        obj.put(us(tags::PRIORITY, 0));
    }
    obj.put(us(
        tags::COMMAND_DATA_SET_TYPE,
        if has_data_set { 0x0000 } else { NO_DATA_SET },
    ));
    if let Some(uid) = sop_instance_uid {
        obj.put(ui(tags::AFFECTED_SOP_INSTANCE_UID, uid));
    }
    encode(obj)
}

/// The largest command set accepted from a peer, calling or called (real
/// ones are a few hundred bytes): a peer that never ends one is cut off
/// instead of growing our memory.
pub const MAX_COMMAND_SET: usize = 1 << 20;

/// Read the Status of a response command set.
pub fn response_status(bytes: &[u8]) -> Result<(u16, Status), CommandError> {
    let obj = parse(bytes)?;
    Ok((
        read_u16(
            &obj,
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            "MessageIDBeingRespondedTo",
        )?,
        Status(read_u16(&obj, tags::STATUS, "Status")?),
    ))
}

fn pad_uid(uid: &str) -> String {
    let mut s = uid.to_string();
    if s.len() % 2 == 1 {
        s.push('\0');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_and_has_group_length() {
        let bytes = request(
            field::C_STORE_RQ,
            7,
            "1.2.840.10008.5.1.4.1.1.2",
            Some("1.2.3"),
            true,
        );
        // (0000,0000) UL comes first, value = bytes after it.
        assert_eq!(&bytes[0..4], &[0, 0, 0, 0]);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 12);
        let cmd = Command::decode(&bytes).unwrap();
        assert_eq!(cmd.field, field::C_STORE_RQ);
        assert_eq!(cmd.message_id, 7);
        assert_eq!(
            cmd.affected_sop_class_uid.as_deref(),
            Some("1.2.840.10008.5.1.4.1.1.2")
        );
        assert_eq!(cmd.affected_sop_instance_uid.as_deref(), Some("1.2.3"));
        assert!(cmd.has_data_set);
    }

    #[test]
    fn response_carries_status_and_comment() {
        let bytes = response(
            field::C_STORE_RSP,
            9,
            Some("1.2.840.10008.5.1.4.1.1.2"),
            Some("1.2.3.4"),
            Status::CANNOT_UNDERSTAND,
            Some("bad\\data\nset"),
        );
        let (id, status) = response_status(&bytes).unwrap();
        assert_eq!((id, status), (9, Status::CANNOT_UNDERSTAND));
        // The comment, without the control character and the backslash
        // (LO allows neither), padded to an even length.
        let obj = parse(&bytes).unwrap();
        let comment = obj.element(tags::ERROR_COMMENT).unwrap().to_str().unwrap();
        assert_eq!(comment.trim_end(), "baddataset");
        assert_eq!(
            obj.element(tags::ERROR_COMMENT).unwrap().header().len.0 % 2,
            0
        );
        // At most 64 characters.
        let long = "x".repeat(100);
        let bytes = response(
            field::C_STORE_RSP,
            9,
            None,
            None,
            Status::CANNOT_UNDERSTAND,
            Some(&long),
        );
        let obj = parse(&bytes).unwrap();
        assert_eq!(
            obj.element(tags::ERROR_COMMENT)
                .unwrap()
                .to_str()
                .unwrap()
                .len(),
            64
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Command::decode(&[1, 2, 3]).is_err());
        assert!(Command::decode(&[]).is_err());
        let mut b = request(field::C_ECHO_RQ, 1, "1.2.840.10008.1.1", None, false);
        b.truncate(b.len() - 3);
        assert!(Command::decode(&b).is_err());
    }
}
