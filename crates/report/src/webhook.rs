//! The JSON an alert webhook receives: the study, its priority and
//! findings, the model, and a link to the study in the worklist. No
//! patient data unless the destination asks for it. Signing is the
//! sender's job (it depends on the time of sending).

use serde_json::{json, Value};

use crate::result::StudyResult;

/// A destination's choices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Add the patient's name, ID, birth date and sex.
    pub include_patient: bool,
    /// The worklist's address as users reach it; the link is
    /// `<worklist>/#study=<Study Instance UID>`.
    pub worklist: String,
}

/// The body of the alert for `result`; `id` is the delivery's identifier
/// (the same on every attempt).
pub fn payload(result: &StudyResult, id: &str, options: &Options) -> Value {
    let r = result;
    let mut v = json!({
        "event": "triage.result",
        "id": id,
        "study_instance_uid": r.study.instance_uid,
        "accession_number": r.study.accession_number,
        "modality": r.study.modality,
        "procedure": r.study.procedure.meaning,
        "priority": r.priority.as_str(),
        "findings": r.findings.iter().map(|f| json!({
            "label": f.label,
            "code": {"system": crate::fhir::system(&f.code.scheme), "code": f.code.code, "display": f.code.meaning},
            "probability": (f.probability as f64 * 1e4).round() / 1e4,
            "threshold": (f.threshold as f64 * 1e4).round() / 1e4,
            "flagged": f.flagged,
        })).collect::<Vec<_>>(),
        "model": {
            "name": r.producer.model_name,
            "version": r.producer.model_version,
            "weights_sha256": r.producer.weights_sha256,
            "intended_use": r.producer.intended_use,
        },
        "report_uid": r.report_uid,
        "replaces": r.replaces,
        "reported_at": r.instant(),
        "link": format!("{}/#study={}", options.worklist.trim_end_matches('/'), r.study.instance_uid),
    });
    if options.include_patient {
        v["patient"] = json!({
            "name": r.patient.name,
            "id": r.patient.id,
            "issuer": r.patient.issuer,
            "birth_date": r.patient.birth_date,
            "sex": r.patient.sex,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::sample;

    #[test]
    fn the_payload_names_the_study_and_links_to_it_without_the_patient() {
        let o = Options {
            include_patient: false,
            worklist: "https://triage.example.org/".into(),
        };
        let v = payload(&sample(), "id1", &o);
        assert_eq!(v["priority"], "urgent");
        assert_eq!(v["study_instance_uid"], "1.2.3.4");
        assert_eq!(v["link"], "https://triage.example.org/#study=1.2.3.4");
        assert_eq!(v["findings"][0]["flagged"], true);
        assert_eq!(v["findings"][0]["code"]["system"], "http://snomed.info/sct");
        assert!(v.get("patient").is_none());
        assert!(!v.to_string().contains("Phantom"));
        let with = payload(
            &sample(),
            "id1",
            &Options {
                include_patient: true,
                ..o
            },
        );
        assert_eq!(with["patient"]["name"], "Phantom^Jane^Q");
    }
}
