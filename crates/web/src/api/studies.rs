//! The worklist, one study, and what radiologists say about it.

use archive::{Feedback, WorklistFilter};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::{ApiError, Body, Path, Query};
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

/// A calendar date, exactly YYYY-MM-DD (years 0001-9999), as OpenAPI's
/// `format: date` means it.
fn day(name: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(d) = v.as_deref() else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest(format!("{name}: '{d}' is not a date (YYYY-MM-DD)"));
    let b = d.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| d[r].parse::<u32>().map_err(|_| bad());
    let (y, m, dd) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if y == 0 || dd == 0 || dd > days {
        return Err(bad());
    }
    Ok(Some(d.to_string()))
}

/// `page` from 1, `per_page` 1..=500 (the worklist's largest page).
fn range(name: &str, v: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "{name}: {n} is outside 1..={max}"
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
        page: range("page", q.page, 1, u32::MAX)?,
        per_page: range("per_page", q.per_page, 50, 500)?,
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
    if b.label.trim().is_empty() || b.label.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "label: must not be empty or hold control characters".into(),
        ));
    }
    if b.comment
        .as_deref()
        .is_some_and(|c| c.chars().count() > 4000)
    {
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
