//! QIDO-RS: studies, series and instances matched by attribute (PS3.18
//! 10.6), as DICOM JSON. Matching keys may be keywords or tags
//! (`PatientName` or `00100010`); text keys take `*` and `?`; StudyDate
//! takes ranges. Keys triaged does not match on are ignored with a
//! `Warning` header, as PS3.18 allows; `includefield` is accepted and every
//! attribute triaged has is returned.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::json;
use crate::api::{ApiError, Path};
use crate::auth::Authed;
use crate::AppState;

/// The parameters of a query: (key, value) in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Params)
            .map_err(|e| ApiError::BadRequest(format!("the query string does not parse: {e}")))
    }

    /// The value of a key given by keyword or tag.
    fn get(&self, keyword: &str, tag: Tag) -> Option<String> {
        let hex = format!("{:04X}{:04X}", tag.group(), tag.element());
        self.0
            .iter()
            .find(|(k, _)| k == keyword || k.eq_ignore_ascii_case(&hex))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }

    fn number(&self, key: &str, default: u32) -> Result<u32, ApiError> {
        match self.0.iter().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, v)) => v
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("{key}={v}: not a whole number"))),
        }
    }

    /// The keys that are neither `known` (keyword or tag) nor a parameter
    /// of the query itself.
    fn ignored(&self, known: &[(&str, Tag)]) -> Vec<String> {
        const CONTROL: [&str; 4] = ["limit", "offset", "includefield", "fuzzymatching"];
        self.0
            .iter()
            .map(|(k, _)| k)
            .filter(|k| {
                !CONTROL.contains(&k.as_str())
                    && !known.iter().any(|(kw, t)| {
                        *k == kw
                            || k.eq_ignore_ascii_case(&format!(
                                "{:04X}{:04X}",
                                t.group(),
                                t.element()
                            ))
                    })
            })
            .cloned()
            .collect()
    }
}

/// A JSON array answer, with a Warning for keys not matched on.
fn answer(items: Vec<serde_json::Value>, ignored: Vec<String>) -> Response {
    let mut r = json::response(StatusCode::OK, &serde_json::Value::Array(items));
    if !ignored.is_empty() {
        let text = format!(
            "299 triaged \"matching on {} is not supported: ignored\"",
            ignored.join(", ")
        );
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().insert(header::WARNING, v);
        }
    }
    r
}

fn base(s: &AppState) -> String {
    format!("{}/dicomweb", s.base_url.trim_end_matches('/'))
}

const STUDY_KEYS: [(&str, Tag); 7] = [
    ("StudyInstanceUID", tags::STUDY_INSTANCE_UID),
    ("PatientID", tags::PATIENT_ID),
    ("PatientName", tags::PATIENT_NAME),
    ("AccessionNumber", tags::ACCESSION_NUMBER),
    ("StudyDate", tags::STUDY_DATE),
    ("ModalitiesInStudy", tags::MODALITIES_IN_STUDY),
    ("priority", json::PRIORITY),
];

pub async fn studies(
    _user: Authed,
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw)?;
    let study_date = match p.get("StudyDate", tags::STUDY_DATE) {
        None => None,
        Some(d) => Some(archive::DateRange::parse(&d).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "StudyDate={d}: not a date (YYYYMMDD) or range (A-B, -B, A-)"
            ))
        })?),
    };
    let q = archive::StudyQuery {
        study_uids: p
            .0
            .iter()
            .filter(|(k, _)| k == "StudyInstanceUID" || k.eq_ignore_ascii_case("0020000D"))
            .flat_map(|(_, v)| v.split([',', '\\']).map(str::to_string))
            .filter(|v| !v.is_empty())
            .collect(),
        patient_id: p.get("PatientID", tags::PATIENT_ID),
        patient_name: p.get("PatientName", tags::PATIENT_NAME),
        accession_number: p.get("AccessionNumber", tags::ACCESSION_NUMBER),
        study_date,
        modality: p.get("ModalitiesInStudy", tags::MODALITIES_IN_STUDY),
        priority: p
            .get("priority", json::PRIORITY)
            .map(|v| v.to_ascii_lowercase()),
        limit: p.number("limit", 100)?,
        offset: p.number("offset", 0)?,
    };
    let base = base(&s);
    let items = s
        .catalog
        .studies(&q)
        .await?
        .iter()
        .map(|r| json::value(&study(r, &base)))
        .collect();
    Ok(answer(items, p.ignored(&STUDY_KEYS)))
}

fn study(r: &archive::StudyRecord, base: &str) -> InMemDicomObject {
    let sum = &r.summary;
    let mut o = InMemDicomObject::new_empty();
    let t = json::text;
    t(
        &mut o,
        tags::SPECIFIC_CHARACTER_SET,
        VR::CS,
        Some("ISO_IR 192"),
        false,
    );
    t(
        &mut o,
        tags::STUDY_DATE,
        VR::DA,
        sum.study_date.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::STUDY_TIME,
        VR::TM,
        r.study_time.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::ACCESSION_NUMBER,
        VR::SH,
        sum.accession_number.as_deref(),
        true,
    );
    let availability = if sum.purged_at.is_some() {
        "UNAVAILABLE"
    } else {
        "ONLINE"
    };
    t(
        &mut o,
        tags::INSTANCE_AVAILABILITY,
        VR::CS,
        Some(availability),
        false,
    );
    json::texts(&mut o, tags::MODALITIES_IN_STUDY, VR::CS, &sum.modalities);
    t(
        &mut o,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        r.referring_physician.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::STUDY_DESCRIPTION,
        VR::LO,
        sum.study_description.as_deref(),
        false,
    );
    let url = format!("{base}/studies/{}", sum.study_instance_uid);
    t(&mut o, tags::RETRIEVE_URL, VR::UR, Some(&url), false);
    t(
        &mut o,
        tags::PATIENT_NAME,
        VR::PN,
        r.patient_name.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::PATIENT_ID,
        VR::LO,
        r.patient_id.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        r.patient_birth_date.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::PATIENT_SEX,
        VR::CS,
        r.patient_sex.as_deref(),
        true,
    );
    t(
        &mut o,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        Some(&sum.study_instance_uid),
        false,
    );
    t(&mut o, tags::STUDY_ID, VR::SH, r.study_id.as_deref(), true);
    json::int(
        &mut o,
        tags::NUMBER_OF_STUDY_RELATED_SERIES,
        VR::IS,
        Some(sum.series),
    );
    json::int(
        &mut o,
        tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
        VR::IS,
        Some(sum.instances),
    );
    t(
        &mut o,
        Tag(json::PRIVATE_GROUP, 0x0010),
        VR::LO,
        Some(json::PRIVATE_CREATOR),
        false,
    );
    t(
        &mut o,
        json::PRIORITY,
        VR::CS,
        sum.priority.as_deref().map(str::to_uppercase).as_deref(),
        false,
    );
    json::texts(&mut o, json::FINDINGS, VR::LO, &sum.findings);
    t(
        &mut o,
        json::STATUS,
        VR::CS,
        sum.status.as_deref().map(str::to_uppercase).as_deref(),
        false,
    );
    o
}

pub async fn series(
    _user: Authed,
    State(s): State<AppState>,
    Path(study): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let study = super::uid(&study)?;
    let p = Params::parse(raw)?;
    let found = s
        .catalog
        .series(
            study,
            p.get("SeriesInstanceUID", tags::SERIES_INSTANCE_UID)
                .as_deref(),
            p.get("Modality", tags::MODALITY).as_deref(),
            p.number("limit", archive::MAX_MATCHES)?,
            p.number("offset", 0)?,
        )
        .await?;
    let base = base(&s);
    let items = found
        .iter()
        .map(|r| {
            let mut o = InMemDicomObject::new_empty();
            let t = json::text;
            t(&mut o, tags::MODALITY, VR::CS, r.modality.as_deref(), true);
            t(
                &mut o,
                tags::SERIES_DESCRIPTION,
                VR::LO,
                r.series_description.as_deref(),
                false,
            );
            t(
                &mut o,
                tags::BODY_PART_EXAMINED,
                VR::CS,
                r.body_part_examined.as_deref(),
                false,
            );
            let url = format!(
                "{base}/studies/{}/series/{}",
                r.study_instance_uid, r.series_instance_uid
            );
            t(&mut o, tags::RETRIEVE_URL, VR::UR, Some(&url), false);
            t(
                &mut o,
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                Some(&r.study_instance_uid),
                false,
            );
            t(
                &mut o,
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                Some(&r.series_instance_uid),
                false,
            );
            json::int(&mut o, tags::SERIES_NUMBER, VR::IS, r.series_number);
            json::int(
                &mut o,
                tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
                VR::IS,
                Some(r.instances),
            );
            json::value(&o)
        })
        .collect();
    Ok(answer(
        items,
        p.ignored(&[
            ("SeriesInstanceUID", tags::SERIES_INSTANCE_UID),
            ("Modality", tags::MODALITY),
        ]),
    ))
}

pub async fn study_instances(
    user: Authed,
    state: State<AppState>,
    Path(study): Path<String>,
    raw: RawQuery,
) -> Result<Response, ApiError> {
    instances(user, state, study, None, raw).await
}

pub async fn series_instances(
    user: Authed,
    state: State<AppState>,
    Path((study, series)): Path<(String, String)>,
    raw: RawQuery,
) -> Result<Response, ApiError> {
    instances(user, state, study, Some(series), raw).await
}

async fn instances(
    _user: Authed,
    State(s): State<AppState>,
    study: String,
    series: Option<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let study = super::uid(&study)?;
    let p = Params::parse(raw)?;
    let series = match series {
        Some(se) => Some(super::uid(&se)?.to_string()),
        None => p.get("SeriesInstanceUID", tags::SERIES_INSTANCE_UID),
    };
    let q = archive::InstanceQuery {
        series_uid: series,
        sop_instance_uid: p.get("SOPInstanceUID", tags::SOP_INSTANCE_UID),
        sop_class_uid: p.get("SOPClassUID", tags::SOP_CLASS_UID),
        limit: p
            .number("limit", archive::MAX_MATCHES)?
            .min(archive::MAX_MATCHES),
        offset: p.number("offset", 0)?,
    };
    let base = base(&s);
    let items = s
        .catalog
        .instances(study, &q)
        .await?
        .iter()
        .map(|r| {
            let mut o = InMemDicomObject::new_empty();
            let t = json::text;
            t(
                &mut o,
                tags::SOP_CLASS_UID,
                VR::UI,
                Some(&r.sop_class_uid),
                false,
            );
            t(
                &mut o,
                tags::SOP_INSTANCE_UID,
                VR::UI,
                Some(&r.sop_instance_uid),
                false,
            );
            let url = format!(
                "{base}/studies/{}/series/{}/instances/{}",
                r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid
            );
            t(&mut o, tags::RETRIEVE_URL, VR::UR, Some(&url), false);
            t(
                &mut o,
                tags::AVAILABLE_TRANSFER_SYNTAX_UID,
                VR::UI,
                Some(&r.transfer_syntax_uid),
                false,
            );
            t(
                &mut o,
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                Some(&r.study_instance_uid),
                false,
            );
            t(
                &mut o,
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                Some(&r.series_instance_uid),
                false,
            );
            json::int(&mut o, tags::INSTANCE_NUMBER, VR::IS, r.instance_number);
            json::int(&mut o, tags::NUMBER_OF_FRAMES, VR::IS, r.number_of_frames);
            json::int(&mut o, tags::ROWS, VR::US, r.rows);
            json::int(&mut o, tags::COLUMNS, VR::US, r.columns);
            json::value(&o)
        })
        .collect();
    Ok(answer(
        items,
        p.ignored(&[
            ("SeriesInstanceUID", tags::SERIES_INSTANCE_UID),
            ("SOPInstanceUID", tags::SOP_INSTANCE_UID),
            ("SOPClassUID", tags::SOP_CLASS_UID),
        ]),
    ))
}
