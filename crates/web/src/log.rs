//! The access log: method, route pattern, status, time and user. Never the
//! query string or the concrete path (accession numbers, study UIDs of a
//! search), and never a token. Audited routes also go to the audit trail
//! (crate::audit), with the study's UID.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Role;
use crate::AppState;

/// Filled by the auth extractor for the access log and the audit trail.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSlot(pub Arc<Mutex<Option<(String, Role)>>>);

pub(crate) async fn access(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(no route)".into());
    let query = request.uri().query().unwrap_or_default().to_string();
    let client = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    let mut request = Request::from_parts(parts, body);
    let slot = UserSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let known = slot.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    state
        .audit
        .request(crate::audit::Request {
            method: &method,
            route: &route,
            query: &query,
            params: params.as_ref(),
            client: client.as_ref(),
            user: known.clone(),
            status: response.status(),
        })
        .await;
    let user = known.map(|(name, _)| name).unwrap_or_default();
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
