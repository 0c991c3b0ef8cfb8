//! The worklist, one study, and what radiologists say about it.

use archive::{Feedback, WorklistFilter};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use super::{ApiError, Body};
use crate::auth::Authed;
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorklistQuery {
    status: Option<String>,
    modality: Option<String>,
    flagged: Option<bool>,
    acknowledged: Option<bool>,
    /// Received on or after (YYYY-MM-DD).
    from: Option<String>,
    /// Received on or before (YYYY-MM-DD).
    to: Option<String>,
    /// Part of the accession number.
    accession: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

fn day(name: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(d)
            if d.len() == 10
                && d.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                }) =>
        {
            Ok(Some(d.to_string()))
        }
        Some(d) => Err(ApiError::BadRequest(format!(
            "{name}: '{d}' is not a date (YYYY-MM-DD)"
        ))),
    }
}

fn text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn worklist(
    _user: Authed,
    State(s): State<AppState>,
    Query(q): Query<WorklistQuery>,
) -> Result<Json<archive::WorklistPage>, ApiError> {
    let filter = WorklistFilter {
        received_from: day("from", &q.from)?,
        received_to: day("to", &q.to)?,
        status: text(q.status),
        modality: text(q.modality),
        flagged: q.flagged,
        acknowledged: q.acknowledged,
        accession: text(q.accession),
        page: q.page.unwrap_or(1),
        per_page: q.per_page.unwrap_or(50),
    };
    Ok(Json(s.worklist.page(&filter).await?))
}

pub async fn study(
    _user: Authed,
    State(s): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Json<archive::StudyDetail>, ApiError> {
    s.worklist
        .study(&uid)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no study {uid}")))
}

pub async fn ack(
    user: Authed,
    State(s): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !s.worklist.acknowledge(&uid, &user.name).await? {
        return Err(ApiError::NotFound(format!("no study {uid}")));
    }
    tracing::info!(study_instance_uid = %uid, user = %user.name, "study acknowledged");
    Ok(Json(serde_json::json!({ "acknowledged_by": user.name })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    label: String,
    /// agree | disagree
    verdict: String,
    #[serde(default)]
    comment: Option<String>,
}

pub async fn feedback(
    user: Authed,
    State(s): State<AppState>,
    Path(uid): Path<String>,
    Body(b): Body<FeedbackBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agree = match b.verdict.as_str() {
        "agree" => true,
        "disagree" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "verdict: '{other}' is not agree or disagree"
            )))
        }
    };
    if b.label.trim().is_empty() {
        return Err(ApiError::BadRequest("label: must not be empty".into()));
    }
    if b.comment.as_deref().is_some_and(|c| c.len() > 4000) {
        return Err(ApiError::BadRequest(
            "comment: at most 4000 characters".into(),
        ));
    }
    let f = Feedback {
        label: b.label.trim().to_string(),
        agree,
        comment: b.comment.filter(|c| !c.trim().is_empty()),
    };
    if !s.worklist.feedback(&uid, &user.name, &f).await? {
        return Err(ApiError::NotFound(format!("no study {uid}")));
    }
    tracing::info!(study_instance_uid = %uid, user = %user.name, label = %f.label, agree, "feedback recorded");
    Ok(Json(serde_json::json!({ "recorded": true })))
}
