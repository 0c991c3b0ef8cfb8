//! The admin console: sources, destinations, echo, outbox, models.

use archive::OutboxEntry;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::{ApiError, Body, Path, Query};
use crate::auth::{Admin, Authed};
use crate::{
    AppState, DestinationInput, DestinationView, ModelStateInput, ModelView, SourceInput,
    SourceView,
};

pub async fn models(
    _user: Authed,
    State(s): State<AppState>,
) -> Result<Json<Vec<ModelView>>, ApiError> {
    Ok(Json(s.control.models().await?))
}

pub async fn set_model_state(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Body(input): Body<ModelStateInput>,
) -> Result<Json<Vec<ModelView>>, ApiError> {
    let state = input.state.clone();
    s.control
        .set_model_state(&name, &version, input, &user.name)
        .await?;
    tracing::info!(model = %name, version = %version, state = %state, user = %user.name, "model state changed");
    Ok(Json(s.control.models().await?))
}

pub async fn sources(_admin: Admin, State(s): State<AppState>) -> Json<Vec<SourceView>> {
    Json(s.control.sources())
}

pub async fn destinations(_admin: Admin, State(s): State<AppState>) -> Json<Vec<DestinationView>> {
    Json(s.control.destinations())
}

pub async fn put_source(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(input): Body<SourceInput>,
) -> Result<Json<Vec<SourceView>>, ApiError> {
    s.control.put_source(&name, input, &user.name).await?;
    tracing::info!(source = %name, user = %user.name, "source saved");
    Ok(Json(s.control.sources()))
}

pub async fn remove_source(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.control.remove_source(&name, &user.name).await?;
    tracing::info!(source = %name, user = %user.name, "source removed");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn put_destination(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(input): Body<DestinationInput>,
) -> Result<Json<Vec<DestinationView>>, ApiError> {
    s.control.put_destination(&name, input, &user.name).await?;
    tracing::info!(destination = %name, user = %user.name, "destination saved");
    Ok(Json(s.control.destinations()))
}

pub async fn remove_destination(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.control.remove_destination(&name, &user.name).await?;
    tracing::info!(destination = %name, user = %user.name, "destination removed");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn echo(
    _admin: Admin,
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match s.control.echo(&name).await {
        Ok(answer) => Ok(Json(serde_json::json!({ "ok": true, "answer": answer }))),
        Err(crate::ControlError::Failed(why)) => {
            Ok(Json(serde_json::json!({ "ok": false, "answer": why })))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn outbox(
    _admin: Admin,
    State(s): State<AppState>,
) -> Result<Json<Vec<OutboxEntry>>, ApiError> {
    let mut rows = s.outbox.list().await?;
    rows.truncate(500);
    Ok(Json(rows))
}

pub async fn retry(
    Admin(user): Admin,
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !s.outbox.retry(id).await? {
        return Err(ApiError::NotFound(format!(
            "no pending or dead outbox row {id}"
        )));
    }
    tracing::info!(outbox_id = id, user = %user.name, "delivery retried");
    Ok(Json(serde_json::json!({ "retried": id })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From this time (ISO 8601 UTC, e.g. 2026-12-01 or 2026-12-01T08:00:00Z).
    since: Option<String>,
    /// Before this time.
    until: Option<String>,
    user: Option<String>,
    action: Option<archive::AuditAction>,
    study: Option<String>,
    /// 1..=1000 (default 100).
    limit: Option<u32>,
}

/// The audit trail, newest first, filtered.
pub async fn audit(
    _admin: Admin,
    State(s): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<archive::AuditEvent>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is outside 1..=1000"
        )));
    }
    let filter = archive::AuditFilter {
        since: q.since,
        until: q.until,
        user: q.user,
        action: q.action,
        study_instance_uid: q.study,
        limit: limit as i64,
    };
    Ok(Json(s.audit.audit().list(&filter).await?))
}

/// Each model version's flag rates, agreement with radiologists and drift.
pub async fn monitoring(
    _admin: Admin,
    State(s): State<AppState>,
) -> Result<Json<Vec<archive::LabelMonitor>>, ApiError> {
    Ok(Json(s.control.monitoring().await?))
}
