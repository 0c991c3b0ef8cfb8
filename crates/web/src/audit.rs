//! Which requests the audit trail records, and recording them: every
//! access to a study, image or heatmap, every review and every change,
//! refused attempts included, with the user, the client's address and the
//! study's UID (from the path; for an image, from the index).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use archive::{Audit, AuditAction, AuditOutcome, AuditRole, NewAuditEvent};
use axum::extract::{ConnectInfo, RawPathParams};
use axum::http::{Method, StatusCode};

use crate::auth::Role;

/// The console refreshes the worklist every 10 s: the same user asking for
/// the same page again within this time is not recorded again.
const WORKLIST_REPEAT: Duration = Duration::from_secs(300);

/// The audit trail as the HTTP server writes it.
pub struct AuditTrail {
    audit: Audit,
    /// (user, query) -> when a worklist view was last recorded.
    worklist_seen: Mutex<HashMap<(String, String), Instant>>,
}

/// What the middleware knows of a finished request.
pub(crate) struct Request<'a> {
    pub method: &'a Method,
    pub route: &'a str,
    pub query: &'a str,
    pub params: Option<&'a RawPathParams>,
    pub client: Option<&'a ConnectInfo<SocketAddr>>,
    pub user: Option<(String, Role)>,
    pub status: StatusCode,
}

impl AuditTrail {
    pub fn new(audit: Audit) -> AuditTrail {
        AuditTrail {
            audit,
            worklist_seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Record `r` if its route is audited. A failure to record is logged
    /// (the response has been produced already).
    pub(crate) async fn request(&self, r: Request<'_>) {
        let Some(action) = action(r.method, r.route) else {
            return;
        };
        let (user, role) = match &r.user {
            Some((name, Role::Admin)) => (name.clone(), AuditRole::Admin),
            Some((name, Role::Radiologist)) => (name.clone(), AuditRole::Radiologist),
            Some((name, Role::Sender)) => (name.clone(), AuditRole::Sender),
            None => (String::new(), AuditRole::None),
        };
        let outcome = match r.status {
            s if s.is_success() => AuditOutcome::Ok,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => AuditOutcome::Denied,
            _ => AuditOutcome::Failed,
        };
        if action == AuditAction::WorklistView
            && outcome == AuditOutcome::Ok
            && !self.first_worklist_view(&user, r.query)
        {
            return;
        }
        let param = |name: &str| {
            r.params.and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        let object = match action {
            AuditAction::ImageView | AuditAction::HeatmapView => param("sop_uid"),
            AuditAction::ModelState => param("name")
                .zip(param("version"))
                .map(|(n, v)| format!("{n} {v}")),
            AuditAction::OutboxRetry => param("id"),
            AuditAction::DicomwebRetrieve => param("sop_uid").or(param("series_uid")),
            _ => param("name"),
        };
        let event = NewAuditEvent {
            user,
            role,
            action,
            study_instance_uid: param("study_uid"),
            object,
            outcome,
            address: r.client.map(|c| c.0.ip().to_string()),
        };
        if let Err(e) = self.audit.record(&event).await {
            tracing::error!(error = %e, action = action.as_str(), "cannot record an audit event");
        }
    }

    fn first_worklist_view(&self, user: &str, query: &str) -> bool {
        let mut seen = self.worklist_seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < WORKLIST_REPEAT);
        seen.insert((user.to_string(), query.to_string()), now)
            .is_none()
    }
}

/// The audited routes.
fn action(method: &Method, route: &str) -> Option<AuditAction> {
    use AuditAction::*;
    Some(match (method.as_str(), route) {
        ("GET", "/api/worklist") => WorklistView,
        ("GET", "/api/studies/{study_uid}") => StudyView,
        ("POST", "/api/studies/{study_uid}/ack") => StudyAcknowledge,
        ("POST", "/api/studies/{study_uid}/feedback") => StudyFeedback,
        ("GET", "/api/instances/{sop_uid}/image.png") => ImageView,
        ("GET", "/api/instances/{sop_uid}/heatmap.png") => HeatmapView,
        ("PUT", "/api/models/{name}/{version}/state") => ModelState,
        ("PUT", "/api/sources/{name}") => SourceSave,
        ("DELETE", "/api/sources/{name}") => SourceRemove,
        ("PUT", "/api/destinations/{name}") => DestinationSave,
        ("DELETE", "/api/destinations/{name}") => DestinationRemove,
        ("POST", "/api/destinations/{name}/echo") => DestinationEcho,
        ("GET", "/api/outbox") => OutboxView,
        ("POST", "/api/outbox/{id}/retry") => OutboxRetry,
        ("GET", "/api/audit") => AuditView,
        ("POST", "/dicomweb/studies" | "/dicomweb/studies/{study_uid}") => DicomwebStore,
        (
            "GET",
            "/dicomweb/studies"
            | "/dicomweb/studies/{study_uid}/series"
            | "/dicomweb/studies/{study_uid}/instances"
            | "/dicomweb/studies/{study_uid}/series/{series_uid}/instances",
        ) => DicomwebQuery,
        ("GET", r) if r.starts_with("/dicomweb/studies/{study_uid}") => DicomwebRetrieve,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_and_changes_are_audited_and_housekeeping_is_not() {
        assert_eq!(
            action(&Method::GET, "/api/studies/{study_uid}"),
            Some(AuditAction::StudyView)
        );
        assert_eq!(
            action(&Method::DELETE, "/api/destinations/{name}"),
            Some(AuditAction::DestinationRemove)
        );
        for (m, r) in [
            (Method::GET, "/api/status"),
            (Method::GET, "/api/me"),
            (Method::GET, "/metrics"),
            (Method::GET, "/api/openapi.json"),
        ] {
            assert_eq!(action(&m, r), None, "{r}");
        }
    }
}
