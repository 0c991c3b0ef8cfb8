//! DICOMweb (DICOM PS3.18) under `/dicomweb`: STOW-RS stores instances
//! with C-STORE's promise (on disk and indexed before the answer), QIDO-RS
//! finds studies, series and instances, WADO-RS returns them (as stored,
//! their metadata, frames, a rendered image).
//!
//! Senders (role `sender`, or admin) store; radiologists and admins query
//! and retrieve. Every answer body is DICOM JSON (`application/dicom+json`)
//! or multipart/related; errors are JSON objects like the API's.

mod json;
pub mod multipart;
mod qido;
mod stow;
mod wado;

use std::net::IpAddr;

use axum::routing::get;
use axum::Router;

use crate::{AppState, BoxFuture};

pub use stow::{StoreRefusal, StoredInstance};

/// Where STOW-RS puts instances: the daemon's archive, behind the same
/// checks and counters as C-STORE.
pub trait InstanceStore: Send + Sync + 'static {
    /// Store one Part 10 file sent by `sender` from `peer`. With `study`,
    /// an instance of another study is refused. `Ok` only once the
    /// instance is durable and indexed.
    fn store<'a>(
        &'a self,
        part10: &'a [u8],
        study: Option<&'a str>,
        sender: &'a str,
        peer: IpAddr,
    ) -> BoxFuture<'a, Result<StoredInstance, StoreRefusal>>;
}

/// The DICOMweb routes (the audit trail records them by these patterns).
/// STOW-RS reads its body itself, up to `max_stow_bytes` (stow::admit).
pub(crate) fn routes(max_stow_bytes: usize) -> Router<AppState> {
    let announced = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            refuse_announced_too_large(max_stow_bytes, req, next)
        },
    );
    Router::new()
        .route(
            "/dicomweb/studies",
            get(qido::studies)
                .post(stow::store)
                .layer(announced.clone()),
        )
        .route(
            "/dicomweb/studies/{study_uid}",
            get(wado::study).post(stow::store_in_study).layer(announced),
        )
        .route(
            "/dicomweb/studies/{study_uid}/metadata",
            get(wado::study_metadata),
        )
        .route("/dicomweb/studies/{study_uid}/series", get(qido::series))
        .route(
            "/dicomweb/studies/{study_uid}/instances",
            get(qido::study_instances),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}",
            get(wado::series),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/metadata",
            get(wado::series_metadata),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances",
            get(qido::series_instances),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
            get(wado::instance),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata",
            get(wado::instance_metadata),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/{frames}",
            get(wado::frames),
        )
        .route(
            "/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered",
            get(wado::rendered),
        )
}

/// Where this server's DICOMweb resources are, as clients reach them.
struct Urls(String);

impl Urls {
    fn of(s: &AppState) -> Urls {
        Urls(format!("{}/dicomweb", s.base_url.trim_end_matches('/')))
    }

    fn study(&self, study: &str) -> String {
        format!("{}/studies/{study}", self.0)
    }

    fn series(&self, study: &str, series: &str) -> String {
        format!("{}/series/{series}", self.study(study))
    }

    fn instance(&self, study: &str, series: &str, sop: &str) -> String {
        format!("{}/instances/{sop}", self.series(study, series))
    }
}

/// A body whose Content-Length is over the limit is refused before any of
/// it is read: a client waiting for `100 Continue` (curl's default above
/// 1 MiB) gets 413 and never sends it, and no client has its connection
/// reset while still sending (which can swallow the 413). A body without a
/// length is still cut at the limit as it is read.
async fn refuse_announced_too_large(
    max: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > max as u64 => crate::api::ApiError::TooLarge(format!(
            "the body ({n} bytes) is larger than [http] max_stow_mb allows ({max} bytes)"
        ))
        .into_response(),
        _ => next.run(req).await,
    }
}
