//! WADO-RS (PS3.18 10.4): a study, series or instance as stored
//! (`multipart/related; type="application/dicom"`), or re-encoded as
//! Explicit VR Little Endian when asked and the pixels are not compressed;
//! its metadata (DICOM JSON, pixel data by BulkDataURI); frames; a
//! rendered PNG (Modality and VOI LUT applied).

use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dicom_core::value::Value;
use dicom_dictionary_std::tags;

use super::{json, multipart};
use crate::api::{ApiError, Path};
use crate::auth::Authed;
use crate::AppState;

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Uncompressed syntaxes dicom-rs re-encodes to Explicit VR Little Endian.
const NATIVE: [&str; 4] = [
    "1.2.840.10008.1.2",
    EXPLICIT_VR_LE,
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
];

/// The instances a retrieval names, or a 404.
async fn select(
    s: &AppState,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Vec<archive::InstanceRecord>, ApiError> {
    let study = crate::api::uid(study)?;
    let q = archive::InstanceQuery {
        series_uid: series.map(crate::api::uid).transpose()?.map(str::to_string),
        sop_instance_uid: sop.map(crate::api::uid).transpose()?.map(str::to_string),
        sop_class_uid: None,
        limit: u32::MAX,
        offset: 0,
    };
    let found = s.catalog.instances(study, &q).await?;
    if found.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no instance of study {study}{}{}",
            series.map(|s| format!(", series {s}")).unwrap_or_default(),
            sop.map(|s| format!(", SOP instance {s}"))
                .unwrap_or_default()
        )));
    }
    Ok(found)
}

/// The transfer syntax the Accept header asks for: `None` as stored.
/// `Err`: the header accepts nothing WADO-RS returns for instances.
fn wanted_syntax(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let mut acceptable = false;
    for range in accept.split(',') {
        let (essence, params) = multipart::media_type(range);
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match essence.as_str() {
            "*/*" | "multipart/*" => acceptable = true,
            "multipart/related"
                if param("type").is_none_or(|t| t.eq_ignore_ascii_case("application/dicom")) =>
            {
                match param("transfer-syntax") {
                    None => acceptable = true,
                    Some(ts) if ts == "*" => acceptable = true,
                    Some(ts) => return Ok(Some(ts)),
                }
            }
            _ => {}
        }
    }
    if acceptable {
        Ok(None)
    } else {
        Err(ApiError::NotAcceptable(format!(
            "Accept: {accept}: instances are returned as multipart/related; type=\"application/dicom\""
        )))
    }
}

/// One instance's file as sent: as stored, or re-encoded.
fn instance_bytes(r: &archive::InstanceRecord, syntax: Option<&str>) -> Result<Vec<u8>, String> {
    match syntax {
        Some(ts) if ts != r.transfer_syntax_uid => {
            if ts != EXPLICIT_VR_LE || !NATIVE.contains(&r.transfer_syntax_uid.as_str()) {
                return Err(format!(
                    "instance {} is stored as {} and can be returned as stored or, when not compressed, as {EXPLICIT_VR_LE}; not as {ts}",
                    r.sop_instance_uid, r.transfer_syntax_uid
                ));
            }
            let mut obj = dicom_object::open_file(&r.path).map_err(|e| e.to_string())?;
            obj.meta_mut().set_transfer_syntax(
                &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN,
            );
            let mut out = Vec::new();
            obj.write_all(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
        _ => std::fs::read(&r.path).map_err(|e| format!("{}: {e}", r.path.display())),
    }
}

/// The instances as a multipart body, read one at a time as it is sent.
fn multipart_response(found: Vec<archive::InstanceRecord>, syntax: Option<String>) -> Response {
    let boundary = format!("triaged-{}", found.len() as u64 ^ 0x5bd1_e995_dead_beef);
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let part_type = match &syntax {
        Some(ts) => format!("application/dicom; transfer-syntax={ts}"),
        None => "application/dicom".to_string(),
    };
    let state = (found.into_iter(), true, false);
    let stream = futures_util::stream::unfold(state, move |(mut it, first, done)| {
        let (boundary, part_type, syntax) = (boundary.clone(), part_type.clone(), syntax.clone());
        async move {
            if done {
                return None;
            }
            let Some(r) = it.next() else {
                return Some((
                    Ok(Bytes::from(multipart::close(&boundary))),
                    (it, false, true),
                ));
            };
            let read =
                tokio::task::spawn_blocking(move || instance_bytes(&r, syntax.as_deref())).await;
            let chunk = match read {
                Ok(Ok(bytes)) => {
                    let mut b = multipart::part_head(&boundary, &part_type, first);
                    b.extend(bytes);
                    Ok(Bytes::from(b))
                }
                Ok(Err(e)) => Err(std::io::Error::other(e)),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Err(e) = &chunk {
                tracing::error!(error = %e, "wado-rs: an instance could not be read; the answer is cut short");
            }
            Some((chunk, (it, false, false)))
        }
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn retrieve(
    s: &AppState,
    headers: &HeaderMap,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Response, ApiError> {
    let syntax = wanted_syntax(headers)?;
    let found = select(s, study, series, sop).await?;
    // Refuse before the first byte rather than cut the answer short.
    if let Some(ts) = &syntax {
        if let Some(r) = found.iter().find(|r| {
            &r.transfer_syntax_uid != ts
                && (ts != EXPLICIT_VR_LE || !NATIVE.contains(&r.transfer_syntax_uid.as_str()))
        }) {
            return Err(ApiError::NotAcceptable(format!(
                "instance {} is stored as {} (compressed): it can be returned as stored, not as {ts}",
                r.sop_instance_uid, r.transfer_syntax_uid
            )));
        }
    }
    Ok(multipart_response(found, syntax))
}

pub async fn study(
    _user: Authed,
    State(s): State<AppState>,
    Path(study): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    retrieve(&s, &headers, &study, None, None).await
}

pub async fn series(
    _user: Authed,
    State(s): State<AppState>,
    Path((study, series)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    retrieve(&s, &headers, &study, Some(&series), None).await
}

pub async fn instance(
    _user: Authed,
    State(s): State<AppState>,
    Path((study, series, sop)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    retrieve(&s, &headers, &study, Some(&series), Some(&sop)).await
}

/// The DICOM JSON of each instance, the pixel data by BulkDataURI (its
/// frames).
async fn metadata(
    s: &AppState,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Response, ApiError> {
    let found = select(s, study, series, sop).await?;
    let urls = super::Urls::of(s);
    let items = tokio::task::spawn_blocking(move || {
        found
            .iter()
            .map(|r| {
                let obj = dicom_object::OpenFileOptions::new()
                    .read_until(tags::PIXEL_DATA)
                    .open_file(&r.path)
                    .map_err(|e| ApiError::Internal(format!("{}: {e}", r.path.display())))?;
                let mut v = json::value(&obj.into_inner());
                if r.rows.is_some() {
                    let frames: Vec<String> = (1..=r.number_of_frames.unwrap_or(1).max(1))
                        .map(|n| n.to_string())
                        .collect();
                    let uri = format!(
                        "{}/frames/{}",
                        urls.instance(
                            &r.study_instance_uid,
                            &r.series_instance_uid,
                            &r.sop_instance_uid
                        ),
                        frames.join(",")
                    );
                    if let Some(m) = v.as_object_mut() {
                        m.insert(
                            "7FE00010".into(),
                            serde_json::json!({ "vr": "OW", "BulkDataURI": uri }),
                        );
                    }
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(json::response(
        StatusCode::OK,
        &serde_json::Value::Array(items),
    ))
}

pub async fn study_metadata(
    _user: Authed,
    State(s): State<AppState>,
    Path(study): Path<String>,
) -> Result<Response, ApiError> {
    metadata(&s, &study, None, None).await
}

pub async fn series_metadata(
    _user: Authed,
    State(s): State<AppState>,
    Path((study, series)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    metadata(&s, &study, Some(&series), None).await
}

pub async fn instance_metadata(
    _user: Authed,
    State(s): State<AppState>,
    Path((study, series, sop)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    metadata(&s, &study, Some(&series), Some(&sop)).await
}

/// The bytes of frames `numbers` (1-based) of one file, and their media
/// type: native pixels as `application/octet-stream`, compressed ones as
/// their fragments with the transfer syntax named.
fn frame_bytes(path: &PathBuf, numbers: &[usize]) -> Result<(String, Vec<Vec<u8>>), ApiError> {
    let obj = dicom_object::open_file(path)
        .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| ApiError::NotFound("this instance has no pixel data".into()))?;
    let count = attrs::int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > count) {
        return Err(ApiError::NotFound(format!(
            "frame {bad}: the instance has {count} frame(s)"
        )));
    }
    match pixels.value() {
        Value::PixelSequence(seq) => {
            let fragments = seq.fragments();
            let frame = |n: usize| -> Result<Vec<u8>, ApiError> {
                if count == 1 {
                    Ok(fragments.concat())
                } else if fragments.len() == count {
                    Ok(fragments[n - 1].clone())
                } else {
                    Err(ApiError::Internal(format!(
                        "{count} frames in {} fragments: frames are not separable without an offset table",
                        fragments.len()
                    )))
                }
            };
            let frames = numbers
                .iter()
                .map(|&n| frame(n))
                .collect::<Result<_, _>>()?;
            Ok((
                format!("application/octet-stream; transfer-syntax={ts}"),
                frames,
            ))
        }
        Value::Primitive(p) => {
            let bytes = p.to_bytes();
            let size = bytes.len() / count;
            Ok((
                "application/octet-stream".into(),
                numbers
                    .iter()
                    .map(|&n| bytes[(n - 1) * size..n * size].to_vec())
                    .collect(),
            ))
        }
        Value::Sequence(_) => Err(ApiError::Internal("pixel data is a sequence".into())),
    }
}

pub async fn frames(
    _user: Authed,
    State(s): State<AppState>,
    Path((study, series, sop, list)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let numbers = list
        .split(',')
        .map(|n| n.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::BadRequest(format!("frames {list}: not a list of frame numbers")))?;
    let found = select(&s, &study, Some(&series), Some(&sop)).await?;
    let path = found[0].path.clone();
    let (media, frames) = tokio::task::spawn_blocking(move || frame_bytes(&path, &numbers))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let boundary = multipart::boundary_for(frames.iter().map(Vec::as_slice));
    let mut body = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        body.extend(multipart::part_head(&boundary, &media, i == 0));
        body.extend_from_slice(f);
    }
    body.extend(multipart::close(&boundary));
    let essence = multipart::media_type(&media).0;
    Ok((
        [(
            header::CONTENT_TYPE,
            format!("multipart/related; type=\"{essence}\"; boundary={boundary}"),
        )],
        body,
    )
        .into_response())
}

/// The largest side of a rendered image.
const RENDERED_MAX_SIDE: usize = 4096;

pub async fn rendered(
    _user: Authed,
    State(s): State<AppState>,
    Path((study, series, sop)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        let ok = accept.split(',').any(|r| {
            matches!(
                multipart::media_type(r).0.as_str(),
                "image/png" | "image/*" | "*/*"
            )
        });
        if !ok {
            return Err(ApiError::NotAcceptable(format!(
                "Accept: {accept}: rendered images are image/png"
            )));
        }
    }
    let found = select(&s, &study, Some(&series), Some(&sop)).await?;
    let path = found[0].path.clone();
    let png = tokio::task::spawn_blocking(move || imaging::preview_png(&path, RENDERED_MAX_SIDE))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(format!("cannot render this instance: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
