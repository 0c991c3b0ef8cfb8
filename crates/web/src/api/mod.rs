//! The JSON API. Errors are `{"error": "..."}` with the matching status,
//! request parsing errors included: the extractors below replace axum's
//! own, whose rejections are plain text. `crates/web/openapi.json` states
//! every status, content type and constraint; a contract test
//! (schemathesis, tests/web.rs) holds the two together.

pub mod admin;
pub mod ops;
pub mod studies;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::ControlError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The caller's role may not do this; the message says which may.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// The request body's media type is not one this route takes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No representation the Accept header allows (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The request body is larger than this route takes (413).
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Internal(String),
}

impl From<archive::ArchiveError> for ApiError {
    fn from(e: archive::ArchiveError) -> Self {
        tracing::error!(error = %e, "http: archive error");
        ApiError::Internal(e.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Invalid(m) => ApiError::BadRequest(m),
            ControlError::NotFound(m) => ApiError::NotFound(m),
            ControlError::Failed(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut r = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// A UID from the path, or a 400.
pub(crate) fn uid(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        Ok(s)
    } else {
        Err(ApiError::BadRequest(format!("'{s}' is not a UID")))
    }
}

/// An axum extractor of request parts whose rejection becomes a JSON 400.
macro_rules! json_rejection {
    ($(#[$doc:meta])* $name:ident, $inner:path) => {
        $(#[$doc])*
        pub struct $name<T>(pub T);

        impl<T, S> axum::extract::FromRequestParts<S> for $name<T>
        where
            T: serde::de::DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, ApiError> {
                match <$inner>::from_request_parts(parts, state).await {
                    Ok(v) => Ok($name(v.0)),
                    Err(e) => Err(ApiError::BadRequest(e.body_text())),
                }
            }
        }
    };
}

json_rejection!(
    /// Query parameters, with a JSON 400 when they do not parse (an
    /// unknown parameter, a value of the wrong type, a missing required one).
    Query,
    axum::extract::Query<T>
);
json_rejection!(
    /// Path parameters, with a JSON 400 when they do not parse (an outbox
    /// id that is not an integer).
    Path,
    axum::extract::Path<T>
);

/// A JSON body, with a clear 400 when it does not parse (axum's own
/// rejection would be plain text).
pub struct Body<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
