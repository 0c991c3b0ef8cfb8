//! HL7 v2.5.1 ORU^R01 for a result, and the reading of its ACK.
//!
//! One message per report: MSH, PID (the DICOM Patient module), ORC and
//! OBR (the accession number as placer and filler order number, the
//! procedure, the priority), TQ1 (the priority as 2.5.1 places it), an NTE
//! with the model's intended use, then OBX segments: the triage priority,
//! one per finding (probability as NM, threshold as reference range,
//! abnormal flag A when present), the Study Instance UID, and the model's
//! name, version and weights digest. docs/conformance.md lists every field.
//! The message control ID (MSH-10) is the result's [`StudyResult::message_id`]
//! for the destination, the same on every attempt.

use crate::result::{Coded, PriorityName, StudyResult};

/// The four names of MSH-3..MSH-6.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
}

/// MLLP framing: start block, message, end block and carriage return.
pub const START_BLOCK: u8 = 0x0b;
pub const END_BLOCK: [u8; 2] = [0x1c, 0x0d];

/// `message` framed for MLLP.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(&END_BLOCK);
    out
}

/// Text made safe inside one component: the delimiters escaped as HL7
/// says, line breaks as spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Components joined by `^`, each escaped, trailing empty ones dropped.
fn components(parts: &[&str]) -> String {
    let n = parts
        .iter()
        .rposition(|p| !p.is_empty())
        .map_or(0, |i| i + 1);
    parts[..n]
        .iter()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join("^")
}

/// A coded element (CWE): identifier^text^coding system. DICOM's scheme
/// designators are HL7's coding system names for SCT and DCM too.
fn cwe(c: &Coded) -> String {
    components(&[&c.code, &c.meaning, &c.scheme])
}

/// A DICOM person name (family^given^middle^prefix^suffix, first
/// component group) as an XPN (family^given^middle^suffix^prefix).
fn xpn(pn: &str) -> String {
    let alphabetic = pn.split('=').next().unwrap_or_default();
    let mut p: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    p.resize(5, "");
    components(&[p[0], p[1], p[2], p[4], p[3]])
}

/// DICOM date and time as an HL7 DTM (YYYYMMDD[HHMM[SS]]).
fn dtm(date: &str, time: &str) -> String {
    let date: String = date.chars().filter(char::is_ascii_digit).take(8).collect();
    let time: String = time.chars().filter(char::is_ascii_digit).take(6).collect();
    if date.len() == 8 {
        date + &time
    } else {
        String::new()
    }
}

/// A probability as NM: at most 4 decimals, no trailing zeros.
fn number(v: f32) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

/// HL7 table 0485 (and OBR-5's older values) for a priority.
fn priority(p: PriorityName) -> (&'static str, &'static str) {
    match p {
        PriorityName::Urgent => ("S", "Stat"),
        PriorityName::Flagged => ("A", "ASAP"),
        PriorityName::Routine => ("R", "Routine"),
    }
}

/// The ORU^R01 for `result`, segments separated by carriage returns.
pub fn oru(result: &StudyResult, header: &Header, control_id: &str) -> String {
    let r = result;
    let at = dtm(&r.date, &r.time);
    let status = if r.replaces.is_some() { "C" } else { "P" };
    let (prio, prio_text) = priority(r.priority);
    let accession = escape(&r.study.accession_number);
    let mut segments = vec![
        format!(
            "MSH|^~\\&|{}|{}|{}|{}|{at}||ORU^R01^ORU_R01|{}|P|2.5.1|||AL|NE||UNICODE UTF-8",
            escape(&header.sending_application),
            escape(&header.sending_facility),
            escape(&header.receiving_application),
            escape(&header.receiving_facility),
            escape(control_id),
        ),
        format!(
            "PID|1||{}||{}||{}|{}",
            components(&[&r.patient.id, "", "", &r.patient.issuer]),
            xpn(&r.patient.name),
            dtm(&r.patient.birth_date, ""),
            escape(&r.patient.sex),
        ),
        format!("ORC|RE|{accession}|{accession}"),
        format!(
            "OBR|1|{accession}|{accession}|{}|{prio}||{}|||||||||{}||||||{at}||RAD|{status}",
            cwe(&r.study.procedure),
            dtm(&r.study.date, &r.study.time),
            xpn_as_xcn(&r.study.referring_physician),
        ),
        format!("TQ1|1||||||||{prio}^{prio_text}^HL70485"),
    ];
    if !r.producer.intended_use.is_empty() {
        segments.push(format!("NTE|1|L|{}", escape(&r.producer.intended_use)));
    }
    let mut obx = Vec::new();
    let priority_code = Coded {
        code: match r.priority {
            PriorityName::Urgent => "P-010",
            PriorityName::Flagged => "P-011",
            PriorityName::Routine => "P-012",
        }
        .into(),
        scheme: crate::codes::PRIVATE_SCHEME.into(),
        meaning: prio_text.into(),
    };
    obx.push(format!(
        "CWE|{}||{}||||||{status}",
        cwe(&(&crate::codes::TRIAGE_PRIORITY).into()),
        cwe(&priority_code)
    ));
    for (i, f) in r.findings.iter().enumerate() {
        obx.push(format!(
            "NM|{}|{}|{}|1^no units^UCUM|<{}|{}|||{status}|||{}|||{}||{at}",
            cwe(&f.code),
            i + 1,
            number(f.probability),
            number(f.threshold),
            if f.flagged { "A" } else { "N" },
            dtm(&r.study.date, &r.study.time),
            escape(&r.producer.device_uid),
        ));
    }
    let st = |code: &crate::codes::Code, value: &str| {
        format!("ST|{}||{}||||||{status}", cwe(&code.into()), escape(value))
    };
    obx.push(st(&crate::codes::STUDY_INSTANCE_UID, &r.study.instance_uid));
    obx.push(st(&crate::codes::ALGORITHM_NAME, &r.producer.model_name));
    obx.push(st(
        &crate::codes::ALGORITHM_VERSION,
        &r.producer.model_version,
    ));
    obx.push(st(
        &crate::codes::WEIGHTS_SHA256,
        &r.producer.weights_sha256,
    ));
    for (i, o) in obx.into_iter().enumerate() {
        segments.push(format!("OBX|{}|{o}", i + 1));
    }
    segments.join("\r")
}

/// A DICOM person name as an XCN (ID^family^given^middle^suffix^prefix).
fn xpn_as_xcn(pn: &str) -> String {
    let name = xpn(pn);
    if name.is_empty() {
        name
    } else {
        format!("^{name}")
    }
}

/// What a receiver answered (MSA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// MSA-1: AA, AE, AR (or CA, CE, CR in enhanced mode).
    pub code: String,
    /// MSA-2: the control ID acknowledged.
    pub control_id: String,
    /// MSA-3 and the ERR segments' diagnostic text, for the log and the
    /// outbox's last error.
    pub text: String,
}

impl Ack {
    /// Accepted: AA or CA.
    pub fn accepted(&self) -> bool {
        matches!(self.code.as_str(), "AA" | "CA")
    }
}

/// Why an answer is not an ACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("the answer does not start with an MSH segment")]
    NoHeader,
    #[error("the answer has no MSA segment")]
    NoMsa,
}

/// Read an ACK (segments separated by CR, LF or CRLF).
pub fn parse_ack(message: &str) -> Result<Ack, AckError> {
    let message = message.trim_start_matches(['\r', '\n', ' ']);
    let sep = match message.strip_prefix("MSH") {
        Some(rest) => rest.chars().next().ok_or(AckError::NoHeader)?,
        None => return Err(AckError::NoHeader),
    };
    let segments: Vec<Vec<&str>> = message
        .split(['\r', '\n'])
        .filter(|s| !s.is_empty())
        .map(|s| s.split(sep).collect())
        .collect();
    let msa = segments
        .iter()
        .find(|s| s[0] == "MSA")
        .ok_or(AckError::NoMsa)?;
    let field = |s: &[&str], i: usize| s.get(i).map(|v| v.trim().to_string()).unwrap_or_default();
    let mut text = vec![field(msa, 3)];
    for err in segments.iter().filter(|s| s[0] == "ERR") {
        // ERR-8 user message, ERR-7 diagnostic, ERR-3 the HL7 error code.
        for i in [8, 7, 3] {
            text.push(field(err, i));
        }
    }
    text.retain(|t| !t.is_empty());
    text.dedup();
    Ok(Ack {
        code: field(msa, 1),
        control_id: field(msa, 2),
        text: text.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::sample;

    fn header() -> Header {
        Header {
            sending_application: "TRIAGED".into(),
            sending_facility: "RAD".into(),
            receiving_application: "RIS".into(),
            receiving_facility: "HOSP".into(),
        }
    }

    fn segment<'a>(m: &'a str, name: &str) -> Vec<&'a str> {
        m.split('\r')
            .find(|s| s.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {m}"))
            .split('|')
            .collect()
    }

    #[test]
    fn an_oru_carries_patient_order_priority_findings_and_model() {
        let r = sample();
        let m = oru(&r, &header(), "abc123");
        let msh = segment(&m, "MSH");
        assert_eq!(msh[1], "^~\\&");
        assert_eq!(&msh[2..6], ["TRIAGED", "RAD", "RIS", "HOSP"]);
        assert_eq!(msh[6], "20261202101500");
        assert_eq!(msh[8], "ORU^R01^ORU_R01");
        assert_eq!(msh[9], "abc123");
        assert_eq!(msh[11], "2.5.1");
        let pid = segment(&m, "PID");
        assert_eq!(pid[3], "PH-001^^^TRIAGED");
        assert_eq!(pid[5], "Phantom^Jane^Q");
        assert_eq!((pid[7], pid[8]), ("19700101", "F"));
        let obr = segment(&m, "OBR");
        // The accession's "|" is escaped, so it stays one field.
        assert_eq!((obr[2], obr[3]), ("ACC\\F\\42", "ACC\\F\\42"));
        assert_eq!(obr[4], "399208008^Plain chest X-ray^SCT");
        assert_eq!(obr[5], "S");
        assert_eq!(obr[7], "20261202100000");
        assert_eq!(obr[16], "^Ref^Doc");
        assert_eq!(obr[22], "20261202101500");
        assert_eq!(obr[25], "P");
        assert_eq!(segment(&m, "TQ1")[9], "S^Stat^HL70485");
        assert!(segment(&m, "NTE")[3].contains("not for diagnostic use"));
        let obx: Vec<Vec<&str>> = m
            .split('\r')
            .filter(|s| s.starts_with("OBX"))
            .map(|s| s.split('|').collect())
            .collect();
        assert_eq!(obx[0][3], "P-004^Triage priority^99TRIAGED");
        assert_eq!(obx[0][5], "P-010^Stat^99TRIAGED");
        assert_eq!(obx[1][2], "NM");
        assert_eq!(obx[1][3], "36118008^Pneumothorax^SCT");
        assert_eq!((obx[1][5], obx[1][7], obx[1][8]), ("0.93", "<0.5", "A"));
        assert_eq!((obx[2][5], obx[2][8]), ("0.12", "N"));
        assert_eq!(obx[3][5], "1.2.3.4");
        assert_eq!(obx[4][5], "cxr-demo");
        assert_eq!(obx[6][5], "ab".repeat(32));
        for (i, o) in obx.iter().enumerate() {
            assert_eq!(o[1], (i + 1).to_string());
            assert_eq!(o[11], "P");
        }
    }

    #[test]
    fn a_replacing_report_is_a_correction() {
        let mut r = sample();
        r.replaces = Some("2.25.1".into());
        let m = oru(&r, &header(), "x");
        assert_eq!(segment(&m, "OBR")[25], "C");
    }

    #[test]
    fn delimiters_in_text_are_escaped() {
        assert_eq!(
            escape("a|b^c&d~e\\f\rg"),
            "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f g"
        );
        assert_eq!(xpn("Doe^John^^Dr^Jr=ideographic"), "Doe^John^^Jr^Dr");
        assert_eq!(xpn(""), "");
    }

    #[test]
    fn acks_are_read_with_their_text() {
        let aa =
            parse_ack("MSH|^~\\&|RIS||||20261202||ACK^R01|9|P|2.5.1\rMSA|AA|abc123\r").unwrap();
        assert!(aa.accepted());
        assert_eq!(aa.control_id, "abc123");
        let ae = parse_ack(
            "MSH|^~\\&|RIS||||x||ACK|9|P|2.5.1\nMSA|AE|abc123|Unknown patient\nERR|||204^Unknown key identifier^HL70357|E||||PID-3 not on file\n",
        )
        .unwrap();
        assert!(!ae.accepted());
        assert_eq!(
            ae.text,
            "Unknown patient; PID-3 not on file; 204^Unknown key identifier^HL70357"
        );
        assert_eq!(parse_ack("hello"), Err(AckError::NoHeader));
        assert_eq!(parse_ack("MSH|^~\\&|x"), Err(AckError::NoMsa));
    }

    #[test]
    fn frames_wrap_the_message() {
        assert_eq!(frame("MSH"), b"\x0bMSH\x1c\x0d");
    }
}
