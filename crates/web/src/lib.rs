//! The radiologists' worklist and the admins' console, served over HTTP by
//! the daemon itself.
//!
//! - [`api`]: a JSON API (worklist, study details, images and heatmaps,
//!   acknowledgements and verdicts; sources, destinations, outbox, models)
//!   described by an OpenAPI document at `/api/openapi.json`.
//! - [`page`]: one HTML page with a little JavaScript that uses the API.
//! - [`auth`]: bearer tokens with a role (radiologist or admin). Tokens
//!   travel in the `Authorization` header, never in cookies, so no other
//!   site can make a browser send them (CSRF-safe by construction).
//! - `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! What only the daemon knows (its live configuration, C-ECHO, its
//! counters) is reached through the [`Control`] trait, which the binary
//! implements; everything else is read from the archive.

#![forbid(unsafe_code)]

pub mod api;
mod audit;
pub mod auth;
mod control;
pub mod dicomweb;
mod images;
mod log;
mod nul;
pub mod page;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use archive::{Outbox, Worklist};
use axum::routing::{get, post, put};
use axum::Router;

pub use audit::AuditTrail;
pub use auth::{Role, User};
pub use control::{
    BoxFuture, ConsoleKind, Control, ControlError, DestinationInput, DestinationView, MinPriority,
    ModelStateInput, ModelView, Origin, SourceInput, SourceView,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub worklist: Worklist,
    pub outbox: Outbox,
    pub control: Arc<dyn Control>,
    pub users: Arc<Vec<User>>,
    /// Rendered PNGs are kept here (created on first use).
    pub cache_dir: PathBuf,
    /// Who looked at and changed what.
    pub audit: Arc<AuditTrail>,
    /// DICOMweb: what QIDO-RS and WADO-RS read, where STOW-RS stores.
    pub catalog: archive::Catalog,
    pub store: Arc<dyn dicomweb::InstanceStore>,
    /// How clients reach this server (RetrieveURL, BulkDataURI).
    pub base_url: String,
    /// The largest STOW-RS request body.
    pub max_stow_bytes: usize,
}

/// Every route of the daemon's HTTP server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/favicon.ico", get(page::favicon))
        .route("/healthz", get(api::ops::healthz))
        .route("/readyz", get(api::ops::readyz))
        .route("/metrics", get(api::ops::metrics))
        .route("/api/openapi.json", get(api::ops::openapi))
        .route("/api/me", get(api::ops::me))
        .route("/api/status", get(api::ops::status))
        .route("/api/worklist", get(api::studies::worklist))
        .route("/api/studies/{study_uid}", get(api::studies::study))
        .route("/api/studies/{study_uid}/ack", post(api::studies::ack))
        .route(
            "/api/studies/{study_uid}/feedback",
            post(api::studies::feedback),
        )
        .route("/api/instances/{sop_uid}/image.png", get(images::image))
        .route("/api/instances/{sop_uid}/heatmap.png", get(images::heatmap))
        .route("/api/models", get(api::admin::models))
        .route(
            "/api/models/{name}/{version}/state",
            put(api::admin::set_model_state),
        )
        .route("/api/sources", get(api::admin::sources))
        .route(
            "/api/sources/{name}",
            put(api::admin::put_source).delete(api::admin::remove_source),
        )
        .route("/api/destinations", get(api::admin::destinations))
        .route(
            "/api/destinations/{name}",
            put(api::admin::put_destination).delete(api::admin::remove_destination),
        )
        .route("/api/destinations/{name}/echo", post(api::admin::echo))
        .route("/api/outbox", get(api::admin::outbox))
        .route("/api/outbox/{id}/retry", post(api::admin::retry))
        .route("/api/audit", get(api::admin::audit))
        .route("/api/monitoring", get(api::admin::monitoring))
        .merge(dicomweb::routes(state.max_stow_bytes))
        .layer(axum::middleware::from_fn(nul::refuse_nul))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            log::access,
        ))
        .with_state(state)
}

/// Serve `router(state)` on `listener` until `stop` resolves; requests in
/// flight then finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}
