//! STOW-RS: `POST /dicomweb/studies[/{study}]` with a
//! `multipart/related; type="application/dicom"` body, one instance a part.
//! Each part is stored or refused on its own; the answer lists both
//! (PS3.18 10.5): 200 all stored, 202 some refused, 409 none stored (503
//! when the archive is out of resources).

use std::net::SocketAddr;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use dicom_core::VR;
use dicom_dictionary_std::tags;
use futures_util::StreamExt;

use super::json::{self, Answer};
use super::multipart;
use super::Urls;
use crate::api::{ApiError, Path};
use crate::auth::{Authed, Sender};
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
    who: Result<Sender, ApiError>,
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (who, body) = admit(who, body, s.max_stow_bytes).await?;
    stow(&s, &who.name, peer, None, &headers, &body).await
}

pub async fn store_in_study(
    who: Result<Sender, ApiError>,
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(study): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (who, body) = admit(who, body, s.max_stow_bytes).await?;
    let study = crate::api::uid(&study)?.to_string();
    stow(&s, &who.name, peer, Some(&study), &headers, &body).await
}

/// The caller and the whole body (at most `max` bytes: 413 past it). A
/// refused caller's body is read and dropped before the refusal is
/// answered: a server that answers and closes with the body unread makes
/// the kernel reset the connection, and a client still sending (one that
/// did not ask `Expect: 100-continue`) loses the 401/403 to "connection
/// reset". Past `max` the refusal goes out with the rest unread.
async fn admit(
    who: Result<Sender, ApiError>,
    body: Body,
    max: usize,
) -> Result<(Authed, Vec<u8>), ApiError> {
    match who {
        Ok(Sender(who)) => Ok((who, read(body, max, true).await?)),
        Err(refusal) => {
            let _ = read(body, max, false).await;
            Err(refusal)
        }
    }
}

/// Read `body` to its end, keeping it if `keep`; an error past `max` bytes.
async fn read(body: Body, max: usize, keep: bool) -> Result<Vec<u8>, ApiError> {
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(max);
    let mut kept = Vec::with_capacity(if keep { hint.min(max) } else { 0 });
    let mut seen = 0usize;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        seen += chunk.len();
        if seen > max {
            return Err(ApiError::TooLarge(format!(
                "the body is larger than [http] max_stow_mb allows ({max} bytes)"
            )));
        }
        if keep {
            kept.extend_from_slice(&chunk);
        }
    }
    Ok(kept)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `n` chunks of 1000 bytes with no announced length, as a
    /// chunked upload arrives.
    fn chunked(n: usize) -> Body {
        let chunks =
            (0..n).map(|i| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![i as u8; 1000])));
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_up_to_the_limit_and_refused_past_it() {
        let kept = read(chunked(3), 3000, true).await.unwrap();
        assert_eq!(kept.len(), 3000);
        assert_eq!((kept[0], kept[1000], kept[2999]), (0, 1, 2));
        assert!(matches!(
            read(chunked(4), 3000, true).await,
            Err(ApiError::TooLarge(_))
        ));
        // A refused caller's body is read to its end and not kept.
        assert!(read(chunked(3), 3000, false).await.unwrap().is_empty());
    }
}
