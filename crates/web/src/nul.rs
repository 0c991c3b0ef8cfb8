//! Requests carrying a NUL character are refused (400) before any handler:
//! no identifier, name or filter triaged keeps can hold one, and
//! PostgreSQL's text cannot store it.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const REFUSED: &str = "a NUL character (%00, \\u0000) is not allowed in a request";

/// Whether the path or query, percent-decoded, holds a NUL.
fn uri_has_nul(uri: &axum::http::Uri) -> bool {
    let text = uri.path_and_query().map_or("", |p| p.as_str());
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

pub(crate) async fn refuse_nul(request: Request, next: Next) -> Response {
    if uri_has_nul(request.uri()) {
        return refused();
    }
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return next.run(request).await;
    }
    // API bodies are small (axum's 2 MB limit applies after this too).
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 2 << 20).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    if bytes.windows(6).any(|w| w == b"\\u0000") || bytes.contains(&0) {
        return refused();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn refused() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": REFUSED })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_nul_anywhere_in_the_uri_is_found() {
        let u = |s: &str| s.parse::<axum::http::Uri>().unwrap();
        assert!(uri_has_nul(&u("/api/worklist?accession=A%00B")));
        assert!(uri_has_nul(&u("/api/studies/1.2%003")));
        assert!(!uri_has_nul(&u("/api/worklist?accession=A%20B&page=100")));
    }
}
