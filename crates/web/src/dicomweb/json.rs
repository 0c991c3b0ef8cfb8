//! DICOM JSON (PS3.18 F.2) answers, built as data sets and written by
//! dicom-rs's `dicom-json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::InMemDicomObject;

pub const MEDIA_TYPE: &str = "application/dicom+json";

/// triaged's own attributes in QIDO-RS answers: a private block.
pub const PRIVATE_CREATOR: &str = "TRIAGED 1.0";
pub const PRIVATE_GROUP: u16 = 0x0011;
/// (0011,1001) CS: the study's triage priority (urgent, flagged, routine).
pub const PRIORITY: Tag = Tag(0x0011, 0x1001);
/// (0011,1002) LO: its flagged findings, "label probability" each.
pub const FINDINGS: Tag = Tag(0x0011, 0x1002);
/// (0011,1003) CS: its latest analysis' state.
pub const STATUS: Tag = Tag(0x0011, 0x1003);

/// A data set being written for an answer.
pub struct Answer(InMemDicomObject);

impl Default for Answer {
    fn default() -> Answer {
        Answer(InMemDicomObject::new_empty())
    }
}

impl Answer {
    pub fn new() -> Answer {
        Answer::default()
    }

    /// A text attribute, left out without a value.
    pub fn opt(&mut self, tag: Tag, vr: VR, v: Option<&str>) -> &mut Answer {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.0
                .put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        }
        self
    }

    /// A Type 2 text attribute: empty without a value.
    pub fn type2(&mut self, tag: Tag, vr: VR, v: Option<&str>) -> &mut Answer {
        match v.filter(|v| !v.is_empty()) {
            Some(v) => self.opt(tag, vr, Some(v)),
            None => {
                self.0.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
                self
            }
        }
    }

    pub fn one(&mut self, tag: Tag, vr: VR, v: &str) -> &mut Answer {
        self.opt(tag, vr, Some(v))
    }

    /// Several values; left out when there is none.
    pub fn texts(&mut self, tag: Tag, vr: VR, values: &[String]) -> &mut Answer {
        if !values.is_empty() {
            self.0.put(DataElement::new(
                tag,
                vr,
                PrimitiveValue::Strs(values.iter().cloned().collect()),
            ));
        }
        self
    }

    /// A number (IS, US, UL), left out without a value.
    pub fn int(&mut self, tag: Tag, vr: VR, v: Option<i64>) -> &mut Answer {
        if let Some(v) = v {
            let value = match vr {
                VR::US => PrimitiveValue::from(v.clamp(0, u16::MAX as i64) as u16),
                VR::UL => PrimitiveValue::from(v.clamp(0, u32::MAX as i64) as u32),
                _ => PrimitiveValue::from(v.to_string()),
            };
            self.0.put(DataElement::new(tag, vr, value));
        }
        self
    }

    /// triaged's private creator, before its attributes in group 0011.
    pub fn private_block(&mut self) -> &mut Answer {
        self.one(Tag(PRIVATE_GROUP, 0x0010), VR::LO, PRIVATE_CREATOR)
    }

    pub fn sequence(&mut self, tag: Tag, items: Vec<Answer>) -> &mut Answer {
        let items: Vec<InMemDicomObject> = items.into_iter().map(|a| a.0).collect();
        self.0
            .put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
        self
    }

    pub fn value(&self) -> serde_json::Value {
        value(&self.0)
    }
}

/// A JSON value of one data set.
pub fn value(o: &InMemDicomObject) -> serde_json::Value {
    let mut v = dicom_json::to_value(o).unwrap_or_else(|e| {
        tracing::error!(error = %e, "dicomweb: cannot write DICOM JSON");
        serde_json::Value::Object(Default::default())
    });
    numbers(&mut v);
    v
}

/// IS and DS values as JSON numbers (PS3.18 F.2.3.1): dicom-json writes the
/// text it was given, and values read from files are text.
fn numbers(v: &mut serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Object(m) => {
            let numeric = matches!(m.get("vr").and_then(J::as_str), Some("IS" | "DS"));
            for (k, child) in m.iter_mut() {
                if numeric && k == "Value" {
                    if let J::Array(items) = child {
                        for item in items.iter_mut() {
                            let parsed = item.as_str().and_then(|s| {
                                let s = s.trim();
                                s.parse::<i64>().map(J::from).ok().or_else(|| {
                                    s.parse::<f64>().ok().and_then(|f| {
                                        serde_json::Number::from_f64(f).map(J::Number)
                                    })
                                })
                            });
                            if let Some(n) = parsed {
                                *item = n;
                            }
                        }
                    }
                } else {
                    numbers(child);
                }
            }
        }
        J::Array(items) => items.iter_mut().for_each(numbers),
        _ => {}
    }
}

/// An answer of `status` with a DICOM JSON body.
pub fn response(status: axum::http::StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_and_ds_are_numbers() {
        let mut o = Answer::new();
        o.int(Tag(0x0020, 0x1208), VR::IS, Some(12))
            .one(Tag(0x0018, 0x0050), VR::DS, "2.5")
            .one(Tag(0x0008, 0x0050), VR::SH, "12");
        let v = o.value();
        assert_eq!(v["00201208"]["Value"][0], 12);
        assert_eq!(v["00180050"]["Value"][0], 2.5);
        assert_eq!(v["00080050"]["Value"][0], "12", "text stays text");
    }
}
