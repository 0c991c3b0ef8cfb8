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

use super::json::{self, Answer};
use super::Urls;
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
    let urls = Urls::of(&s);
    let items = s
        .catalog
        .studies(&q)
        .await?
        .iter()
        .map(|r| study(r, &urls).value())
        .collect();
    Ok(answer(items, p.ignored(&STUDY_KEYS)))
}

fn study(r: &archive::StudyRecord, urls: &Urls) -> Answer {
    let sum = &r.summary;
    let upper = |v: &Option<String>| v.as_deref().map(str::to_uppercase);
    let availability = match sum.purged_at {
        Some(_) => "UNAVAILABLE",
        None => "ONLINE",
    };
    let mut o = Answer::new();
    o.one(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192")
        .type2(tags::STUDY_DATE, VR::DA, sum.study_date.as_deref())
        .type2(tags::STUDY_TIME, VR::TM, r.study_time.as_deref())
        .type2(
            tags::ACCESSION_NUMBER,
            VR::SH,
            sum.accession_number.as_deref(),
        )
        .one(tags::INSTANCE_AVAILABILITY, VR::CS, availability)
        .texts(tags::MODALITIES_IN_STUDY, VR::CS, &sum.modalities)
        .type2(
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            r.referring_physician.as_deref(),
        )
        .opt(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            sum.study_description.as_deref(),
        )
        .one(
            tags::RETRIEVE_URL,
            VR::UR,
            &urls.study(&sum.study_instance_uid),
        )
        .type2(tags::PATIENT_NAME, VR::PN, r.patient_name.as_deref())
        .type2(tags::PATIENT_ID, VR::LO, r.patient_id.as_deref())
        .type2(
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            r.patient_birth_date.as_deref(),
        )
        .type2(tags::PATIENT_SEX, VR::CS, r.patient_sex.as_deref())
        .one(tags::STUDY_INSTANCE_UID, VR::UI, &sum.study_instance_uid)
        .type2(tags::STUDY_ID, VR::SH, r.study_id.as_deref())
        .int(
            tags::NUMBER_OF_STUDY_RELATED_SERIES,
            VR::IS,
            Some(sum.series),
        )
        .int(
            tags::NUMBER_OF_STUDY_RELATED_INSTANCES,
            VR::IS,
            Some(sum.instances),
        )
        .private_block()
        .opt(json::PRIORITY, VR::CS, upper(&sum.priority).as_deref())
        .texts(json::FINDINGS, VR::LO, &sum.findings)
        .opt(json::STATUS, VR::CS, upper(&sum.status).as_deref());
    o
}

pub async fn series(
    _user: Authed,
    State(s): State<AppState>,
    Path(study): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let study = crate::api::uid(&study)?;
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
    let urls = Urls::of(&s);
    let items = found
        .iter()
        .map(|r| {
            let (study, series) = (&r.study_instance_uid, &r.series_instance_uid);
            Answer::new()
                .type2(tags::MODALITY, VR::CS, r.modality.as_deref())
                .opt(
                    tags::SERIES_DESCRIPTION,
                    VR::LO,
                    r.series_description.as_deref(),
                )
                .opt(
                    tags::BODY_PART_EXAMINED,
                    VR::CS,
                    r.body_part_examined.as_deref(),
                )
                .one(tags::RETRIEVE_URL, VR::UR, &urls.series(study, series))
                .one(tags::STUDY_INSTANCE_UID, VR::UI, study)
                .one(tags::SERIES_INSTANCE_UID, VR::UI, series)
                .int(tags::SERIES_NUMBER, VR::IS, r.series_number)
                .int(
                    tags::NUMBER_OF_SERIES_RELATED_INSTANCES,
                    VR::IS,
                    Some(r.instances),
                )
                .value()
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
    let study = crate::api::uid(&study)?;
    let p = Params::parse(raw)?;
    let series = match series {
        Some(se) => Some(crate::api::uid(&se)?.to_string()),
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
    let urls = Urls::of(&s);
    let items = s
        .catalog
        .instances(study, &q)
        .await?
        .iter()
        .map(|r| {
            let (study, series) = (&r.study_instance_uid, &r.series_instance_uid);
            let url = urls.instance(study, series, &r.sop_instance_uid);
            Answer::new()
                .one(tags::SOP_CLASS_UID, VR::UI, &r.sop_class_uid)
                .one(tags::SOP_INSTANCE_UID, VR::UI, &r.sop_instance_uid)
                .one(tags::RETRIEVE_URL, VR::UR, &url)
                .one(
                    tags::AVAILABLE_TRANSFER_SYNTAX_UID,
                    VR::UI,
                    &r.transfer_syntax_uid,
                )
                .one(tags::STUDY_INSTANCE_UID, VR::UI, study)
                .one(tags::SERIES_INSTANCE_UID, VR::UI, series)
                .int(tags::INSTANCE_NUMBER, VR::IS, r.instance_number)
                .int(tags::NUMBER_OF_FRAMES, VR::IS, r.number_of_frames)
                .int(tags::ROWS, VR::US, r.rows)
                .int(tags::COLUMNS, VR::US, r.columns)
                .value()
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
