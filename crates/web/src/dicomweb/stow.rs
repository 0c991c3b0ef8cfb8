//! STOW-RS: `POST /dicomweb/studies[/{study}]` with a
//! `multipart/related; type="application/dicom"` body, one instance a part.
//! Each part is stored or refused on its own; the answer lists both
//! (PS3.18 10.5): 200 all stored, 202 some refused, 409 none stored (503
//! when the archive is out of resources).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::json::{self, Answer};
use super::multipart;
use super::Urls;
use crate::api::{ApiError, Path};
use crate::auth::Sender;
use crate::AppState;

/// An instance stored.
#[derive(Debug, Clone)]
pub struct StoredInstance {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
}

/// An instance (or part) not stored: the DIMSE status PS3.18 reports as
/// its Failure Reason, and what went wrong in words.
#[derive(Debug, Clone)]
pub struct StoreRefusal {
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub status: u16,
    pub reason: String,
}

/// Failure Reason 0xC000: cannot understand.
const CANNOT_UNDERSTAND: u16 = 0xC000;
/// 0xA700: out of resources.
const OUT_OF_RESOURCES: u16 = 0xA700;
/// (0011,1010) LT: why a part was refused, in words.
const REASON: dicom_core::Tag = dicom_core::Tag(0x0011, 0x1010);

pub async fn store(
    Sender(who): Sender,
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    stow(&s, &who.name, peer, None, &headers, &body).await
}

pub async fn store_in_study(
    Sender(who): Sender,
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(study): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let study = crate::api::uid(&study)?.to_string();
    stow(&s, &who.name, peer, Some(&study), &headers, &body).await
}

/// The boundary of a STOW-RS body, or why it is not one.
fn boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType(
                "Content-Type must be multipart/related; type=\"application/dicom\"".into(),
            )
        })?;
    let (essence, params) = multipart::media_type(ct);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if essence != "multipart/related" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {essence}: STOW-RS takes multipart/related; type=\"application/dicom\""
        )));
    }
    if let Some(t) = param("type").filter(|t| !t.eq_ignore_ascii_case("application/dicom")) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "multipart/related of type {t}: only application/dicom parts are taken (no metadata and bulk data form)"
        )));
    }
    param("boundary")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::BadRequest("Content-Type has no boundary parameter".into()))
}

async fn stow(
    s: &AppState,
    sender: &str,
    peer: SocketAddr,
    study: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let boundary = boundary(headers)?;
    let parts = multipart::parse(body, &boundary)
        .map_err(|e| ApiError::BadRequest(format!("the multipart body is malformed: {e}")))?;
    if parts.is_empty() {
        return Err(ApiError::BadRequest(
            "the multipart body has no part".into(),
        ));
    }
    let mut stored = Vec::new();
    let mut refused = Vec::new();
    for part in &parts {
        let dicom = part
            .content_type
            .as_deref()
            .is_none_or(|ct| multipart::media_type(ct).0 == "application/dicom");
        if !dicom {
            refused.push(StoreRefusal {
                sop_class_uid: None,
                sop_instance_uid: None,
                status: CANNOT_UNDERSTAND,
                reason: format!(
                    "a part of type {}: only application/dicom parts are taken",
                    part.content_type.as_deref().unwrap_or("")
                ),
            });
            continue;
        }
        match s.store.store(part.body, study, sender, peer.ip()).await {
            Ok(i) => stored.push(i),
            Err(r) => {
                tracing::warn!(sop_instance_uid = r.sop_instance_uid.as_deref().unwrap_or("?"), status = r.status, reason = %r.reason, "stow-rs: instance refused");
                refused.push(r)
            }
        }
    }
    let urls = Urls::of(s);
    let study_url = study
        .or_else(|| {
            let first = stored.first()?;
            stored
                .iter()
                .all(|i| i.study_instance_uid == first.study_instance_uid)
                .then_some(first.study_instance_uid.as_str())
        })
        .map(|st| urls.study(st));
    let mut o = Answer::new();
    o.opt(tags::RETRIEVE_URL, VR::UR, study_url.as_deref());
    if !refused.is_empty() {
        let items = refused
            .iter()
            .map(|r| {
                let mut i = Answer::new();
                i.type2(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    r.sop_class_uid.as_deref(),
                )
                .type2(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    r.sop_instance_uid.as_deref(),
                )
                .int(tags::FAILURE_REASON, VR::US, Some(i64::from(r.status)))
                .private_block()
                .one(REASON, VR::LT, &r.reason);
                i
            })
            .collect();
        o.private_block().sequence(tags::FAILED_SOP_SEQUENCE, items);
    }
    if !stored.is_empty() {
        let items = stored
            .iter()
            .map(|i| {
                let url = urls.instance(
                    &i.study_instance_uid,
                    &i.series_instance_uid,
                    &i.sop_instance_uid,
                );
                let mut it = Answer::new();
                it.one(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &i.sop_class_uid)
                    .one(
                        tags::REFERENCED_SOP_INSTANCE_UID,
                        VR::UI,
                        &i.sop_instance_uid,
                    )
                    .one(tags::RETRIEVE_URL, VR::UR, &url);
                it
            })
            .collect();
        o.sequence(tags::REFERENCED_SOP_SEQUENCE, items);
    }
    let status = match (stored.is_empty(), refused.is_empty()) {
        (_, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, false) if refused.iter().all(|r| r.status == OUT_OF_RESOURCES) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        (true, false) => StatusCode::CONFLICT,
    };
    Ok(json::response(status, &o.value()))
}
