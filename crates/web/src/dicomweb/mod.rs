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
