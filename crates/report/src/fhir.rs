//! FHIR R4 for a result: one transaction Bundle.
//!
//! The Bundle holds a Device (the model), an Observation for the triage
//! priority and one per finding (probability, threshold, interpretation
//! POS/NEG) and the DiagnosticReport (status preliminary, category
//! radiology, the patient by identifier, the ImagingStudy by its Study
//! Instance UID, the order by accession number). Every entry is a
//! conditional create on its identifier (`ifNoneExist`), each identifier a
//! function of the report's SR UID, so a Bundle sent again after a crash or
//! a timeout creates nothing twice. docs/conformance.md lists the profile.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::result::{iso_instant, Coded, StudyResult};

/// The system of identifiers that are DICOM UIDs (as ImagingStudy uses).
pub const DICOM_UID_SYSTEM: &str = "urn:dicom:uid";
/// The code system of triaged's private codes (DICOM scheme 99TRIAGED).
pub const PRIVATE_SYSTEM: &str = "urn:triaged:codes";

/// A destination's choices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// The system of the patient identifier (the DiagnosticReport's
    /// subject); none: the identifier's value alone.
    pub patient_system: Option<String>,
}

/// The FHIR system for a DICOM coding scheme designator.
pub fn system(scheme: &str) -> &str {
    match scheme {
        "SCT" => "http://snomed.info/sct",
        "DCM" => "http://dicom.nema.org/resources/ontology/DCM",
        "LN" => "http://loinc.org",
        "UCUM" => "http://unitsofmeasure.org",
        crate::codes::PRIVATE_SCHEME => PRIVATE_SYSTEM,
        other => other,
    }
}

fn concept(c: &Coded) -> Value {
    json!({"coding": [{"system": system(&c.scheme), "code": c.code, "display": c.meaning}], "text": c.meaning})
}

/// A version-4-shaped UUID from a hash of the parts: the same parts give
/// the same `urn:uuid:` on every attempt.
fn uuid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn uid_identifier(uid: &str) -> Value {
    json!({"system": DICOM_UID_SYSTEM, "value": format!("urn:oid:{uid}")})
}

/// A conditional create of `resource` with the identifier `id`.
fn entry(full_url: &str, resource: Value, id: &Value) -> Value {
    let kind = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    json!({
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": kind,
            "ifNoneExist": format!(
                "identifier={}|{}",
                id["system"].as_str().unwrap_or_default(),
                id["value"].as_str().unwrap_or_default()
            ),
        },
    })
}

/// The transaction Bundle for `result`.
pub fn bundle(result: &StudyResult, options: &Options) -> Value {
    let r = result;
    let p = &r.producer;
    let issued = r.instant();
    let effective = iso_instant(&r.study.date, &r.study.time).unwrap_or_else(|| issued.clone());
    let mut subject = json!({"type": "Patient", "identifier": {"value": r.patient.id}});
    if let Some(system) = &options.patient_system {
        subject["identifier"]["system"] = json!(system);
    }
    let study =
        json!({"type": "ImagingStudy", "identifier": uid_identifier(&r.study.instance_uid)});
    let note = |text: &str| {
        if text.is_empty() {
            json!([])
        } else {
            json!([{"text": text}])
        }
    };
    let status = "preliminary";
    let derived = |parts: &[&str]| {
        let mut all = vec![r.report_uid.as_str()];
        all.extend_from_slice(parts);
        crate::uid_from(&all)
    };

    let device_uid =
        crate::uid_from(&["device", &p.model_name, &p.model_version, &p.weights_sha256]);
    let device_id = uid_identifier(&device_uid);
    let device_url = uuid(&["device", &device_uid]);
    let device = json!({
        "resourceType": "Device",
        "identifier": [device_id],
        "status": "active",
        "manufacturer": p.device_manufacturer,
        "deviceName": [
            {"name": p.model_name, "type": "model-name"},
            {"name": format!("{} {}", p.device_name, p.device_version), "type": "user-friendly-name"},
        ],
        "version": [
            {"value": p.model_version},
            {"type": {"text": "weights SHA-256"}, "value": p.weights_sha256},
        ],
        "note": note(&p.intended_use),
    });
    let mut entries = vec![entry(&device_url, device, &device_id)];

    let observation = |id: &Value, code: Value, value: (&str, Value)| {
        let mut o = json!({
            "resourceType": "Observation",
            "identifier": [id],
            "status": status,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging", "display": "Imaging"}]}],
            "code": code,
            "subject": subject,
            "effectiveDateTime": effective,
            "issued": issued,
            "device": {"reference": device_url},
            "derivedFrom": [study],
            "note": note(&p.intended_use),
        });
        o[value.0] = value.1;
        o
    };
    let mut results = Vec::new();
    let priority_id = uid_identifier(&derived(&["priority"]));
    let priority_url = uuid(&[&r.report_uid, "priority"]);
    let priority_code = match r.priority {
        crate::result::PriorityName::Urgent => &crate::codes::URGENT,
        crate::result::PriorityName::Flagged => &crate::codes::FLAGGED,
        crate::result::PriorityName::Routine => &crate::codes::ROUTINE,
    };
    entries.push(entry(
        &priority_url,
        observation(
            &priority_id,
            concept(&(&crate::codes::TRIAGE_PRIORITY).into()),
            ("valueCodeableConcept", concept(&priority_code.into())),
        ),
        &priority_id,
    ));
    results.push(json!({"reference": priority_url}));
    for f in &r.findings {
        let id = uid_identifier(&derived(&["finding", &f.label]));
        let url = uuid(&[&r.report_uid, "finding", &f.label]);
        let (code, display) = if f.flagged {
            ("POS", "Positive")
        } else {
            ("NEG", "Negative")
        };
        let mut o = observation(
            &id,
            concept(&f.code),
            (
                "valueQuantity",
                json!({"value": round4(f.probability), "unit": "probability", "system": "http://unitsofmeasure.org", "code": "1"}),
            ),
        );
        o["interpretation"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": code, "display": display}]}]);
        o["referenceRange"] = json!([{"high": {"value": round4(f.threshold)}, "text": format!("present at or above {}", round4(f.threshold))}]);
        entries.push(entry(&url, o, &id));
        results.push(json!({"reference": url}));
    }

    let report_id = uid_identifier(&r.report_uid);
    let flagged: Vec<String> = r
        .flagged()
        .map(|f| format!("{} ({})", f.label, round4(f.probability)))
        .collect();
    let mut conclusion = format!(
        "AI triage: {}; {}",
        r.priority.as_str(),
        if flagged.is_empty() {
            "no finding flagged".to_string()
        } else {
            format!("flagged {}", flagged.join(", "))
        }
    );
    if !p.intended_use.is_empty() {
        conclusion = format!("{conclusion}. {}", p.intended_use);
    }
    let mut report = json!({
        "resourceType": "DiagnosticReport",
        "identifier": [report_id],
        "status": status,
        "category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"},
            {"system": "http://loinc.org", "code": "LP29684-5", "display": "Radiology"},
        ]}],
        "code": concept(&r.study.procedure),
        "subject": subject,
        "effectiveDateTime": effective,
        "issued": issued,
        "imagingStudy": [study],
        "result": results,
        "conclusion": conclusion,
        "conclusionCode": r.flagged().map(|f| concept(&f.code)).collect::<Vec<_>>(),
    });
    if !r.study.accession_number.is_empty() {
        report["basedOn"] = json!([{"type": "ServiceRequest", "identifier": {
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
            "value": r.study.accession_number,
        }}]);
    }
    if report["conclusionCode"]
        .as_array()
        .is_some_and(Vec::is_empty)
    {
        report.as_object_mut().map(|o| o.remove("conclusionCode"));
    }
    entries.push(entry(&uuid(&[&r.report_uid, "report"]), report, &report_id));
    // FHIR forbids empty arrays.
    for e in &mut entries {
        if e["resource"]["note"].as_array().is_some_and(Vec::is_empty) {
            e["resource"].as_object_mut().map(|o| o.remove("note"));
        }
    }
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

fn round4(v: f32) -> f64 {
    (v as f64 * 1e4).round() / 1e4
}

/// The diagnostics of an OperationOutcome (or the start of any other
/// answer), for the outbox's last error.
pub fn outcome_text(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let issues: Vec<String> = parsed
        .as_ref()
        .and_then(|v| v["issue"].as_array())
        .map(|issues| {
            issues
                .iter()
                .filter_map(|i| {
                    i["diagnostics"]
                        .as_str()
                        .or_else(|| i["details"]["text"].as_str())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    if issues.is_empty() {
        body.chars().take(300).collect()
    } else {
        issues.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::sample;

    #[test]
    fn a_bundle_creates_each_resource_once_by_identifier() {
        let b = bundle(&sample(), &Options::default());
        assert_eq!(b["type"], "transaction");
        let entries = b["entry"].as_array().unwrap();
        let kinds: Vec<&str> = entries
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Device",
                "Observation",
                "Observation",
                "Observation",
                "DiagnosticReport"
            ]
        );
        for e in entries {
            let id = &e["resource"]["identifier"][0];
            assert_eq!(
                e["request"]["ifNoneExist"],
                format!(
                    "identifier={}|{}",
                    id["system"].as_str().unwrap(),
                    id["value"].as_str().unwrap()
                )
            );
            assert!(e["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        }
        let report = &entries[4]["resource"];
        assert_eq!(report["status"], "preliminary");
        assert_eq!(report["identifier"][0]["value"], "urn:oid:2.25.1234");
        assert_eq!(
            report["imagingStudy"][0]["identifier"]["value"],
            "urn:oid:1.2.3.4"
        );
        assert_eq!(report["subject"]["identifier"]["value"], "PH-001");
        assert_eq!(report["basedOn"][0]["identifier"]["value"], "ACC|42");
        assert_eq!(report["result"].as_array().unwrap().len(), 3);
        assert_eq!(report["conclusionCode"][0]["coding"][0]["code"], "36118008");
        let pneumothorax = &entries[2]["resource"];
        assert_eq!(pneumothorax["valueQuantity"]["value"], 0.93);
        assert_eq!(
            pneumothorax["interpretation"][0]["coding"][0]["code"],
            "POS"
        );
        assert_eq!(
            entries[3]["resource"]["interpretation"][0]["coding"][0]["code"],
            "NEG"
        );
        assert_eq!(pneumothorax["device"]["reference"], entries[0]["fullUrl"]);
        // No patient name anywhere: the subject is an identifier.
        assert!(!b.to_string().contains("Phantom"));
    }

    #[test]
    fn the_same_result_makes_the_same_bundle() {
        let a = bundle(&sample(), &Options::default());
        assert_eq!(a, bundle(&sample(), &Options::default()));
        let mut other = sample();
        other.report_uid = "2.25.5678".into();
        assert_ne!(
            a["entry"][4]["fullUrl"],
            bundle(&other, &Options::default())["entry"][4]["fullUrl"]
        );
    }

    #[test]
    fn a_patient_system_qualifies_the_subject() {
        let b = bundle(
            &sample(),
            &Options {
                patient_system: Some("urn:oid:1.2.36.1".into()),
            },
        );
        assert_eq!(
            b["entry"][4]["resource"]["subject"]["identifier"]["system"],
            "urn:oid:1.2.36.1"
        );
    }

    #[test]
    fn outcomes_are_read_for_their_diagnostics() {
        let oo = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Bundle.entry[4]: bad"}]}"#;
        assert_eq!(outcome_text(oo), "Bundle.entry[4]: bad");
        assert_eq!(outcome_text("Service Unavailable"), "Service Unavailable");
    }
}
