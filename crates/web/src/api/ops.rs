//! Health, readiness, metrics, the OpenAPI document, who am I, and the
//! status strip.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ApiError;
use crate::auth::Authed;
use crate::AppState;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for the database.
const READYZ_DATABASE: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    // A database that does not answer is as unready as one that refuses:
    // a load balancer's check must not hang on the pool's own wait.
    let db = match tokio::time::timeout(READYZ_DATABASE, s.worklist.jobs_by_state()).await {
        Ok(answer) => answer.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            READYZ_DATABASE.as_secs()
        )),
    };
    match db.and_then(|_| s.control.ready()) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// The daemon's metrics, then the database's gauges (read at each scrape).
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = s.control.metrics();
    let mut registry = Registry::default();
    let node = Family::<NodeName, Gauge>::default();
    node.get_or_create(&NodeName {
        node: s.control.node(),
    })
    .set(1);
    registry.register("triaged_node", "This node's name (label node), 1", node);
    if let Ok(states) = s.worklist.jobs_by_state().await {
        let jobs = Family::<JobState, Gauge>::default();
        for (state, n) in states {
            jobs.get_or_create(&JobState {
                state: state.to_string(),
            })
            .set(n);
        }
        registry.register("triaged_jobs", "Analysis jobs by state", jobs);
    }
    if let Ok((waiting, dead)) = s.outbox.backlog().await {
        let gauge = |n: i64| {
            let g = Gauge::<i64>::default();
            g.set(n);
            g
        };
        registry.register(
            "triaged_outbox_backlog",
            "Results not yet delivered",
            gauge(waiting),
        );
        registry.register(
            "triaged_outbox_dead",
            "Results given up on (see the outbox)",
            gauge(dead),
        );
    }
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], out)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobState {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeName {
    node: String,
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn me(user: Authed) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "name": user.name, "role": user.role }))
}

/// Queue depth, outbox backlog and the last error, for the page's status
/// strip.
pub async fn status(
    _user: Authed,
    State(s): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let jobs = s.worklist.jobs_by_state().await?;
    let count = |states: &[archive::JobState]| -> i64 {
        jobs.iter()
            .filter(|(k, _)| states.contains(k))
            .map(|(_, n)| n)
            .sum()
    };
    let (waiting, dead) = s.outbox.backlog().await?;
    let last_error = s.worklist.last_error().await?;
    Ok(Json(serde_json::json!({
        "queue": count(&[archive::JobState::Ready, archive::JobState::Analysing, archive::JobState::Reporting]),
        "sending": count(&[archive::JobState::Sending]),
        "failed": count(&[archive::JobState::Failed]),
        "outbox_waiting": waiting,
        "outbox_dead": dead,
        "last_error": last_error.map(|(at, what)| serde_json::json!({"at": at, "what": what})),
    })))
}
