//! The access log: method, route pattern, status, time and user. Never the
//! query string or the concrete path (accession numbers, study UIDs of a
//! search), and never a token.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Filled by the auth extractor for the access log.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSlot(pub Arc<Mutex<Option<String>>>);

pub(crate) async fn access(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(no route)".into());
    let slot = UserSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let user = slot
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    tracing::info!(
        target: "web::access",
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        user = %user,
        "http"
    );
    response
}
