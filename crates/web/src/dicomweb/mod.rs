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
pub(crate) fn routes(max_stow_bytes: usize) -> Router<AppState> {
    let stow_limit = axum::extract::DefaultBodyLimit::max(max_stow_bytes);
    Router::new()
        .route(
            "/dicomweb/studies",
            get(qido::studies).post(stow::store).layer(stow_limit),
        )
        .route(
            "/dicomweb/studies/{study_uid}",
            get(wado::study)
                .post(stow::store_in_study)
                .layer(stow_limit),
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

/// A UID from the path, or a 400.
fn uid(s: &str) -> Result<&str, crate::api::ApiError> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        Ok(s)
    } else {
        Err(crate::api::ApiError::BadRequest(format!(
            "'{s}' is not a UID"
        )))
    }
}
