//! Bearer tokens with roles. The configuration holds each token's SHA-256,
//! never the token; a request names its token in `Authorization: Bearer`.
//! Radiologists read the worklist and review studies (and query and
//! retrieve over DICOMweb); admins also change sources and destinations,
//! run echoes and retry deliveries; senders (a PACS router, a modality)
//! only store instances by STOW-RS.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::ApiError;
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Radiologist,
    Admin,
    /// Stores instances by STOW-RS, and nothing else.
    Sender,
}

/// A user and the SHA-256 (hex) of their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub token_sha256: String,
}

/// A new access token: 32 random bytes from the kernel, hex.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.trim().as_bytes()))
}

/// The caller of a request: any configured user.
#[derive(Debug, Clone)]
pub struct Authed {
    pub name: String,
    pub role: Role,
}

/// The caller, who must be an admin.
#[derive(Debug, Clone)]
pub struct Admin(pub Authed);

/// The configured user whose token the request carries.
fn caller(parts: &mut Parts, state: &AppState) -> Result<Authed, ApiError> {
    let token = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let hash = token_hash(token);
    let user = state
        .users
        .iter()
        .find(|u| u.token_sha256.eq_ignore_ascii_case(&hash))
        .ok_or(ApiError::Unauthorized)?;
    // The access log names the user, never the token.
    if let Some(slot) = parts.extensions.get::<crate::log::UserSlot>() {
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((user.name.clone(), user.role));
    }
    Ok(Authed {
        name: user.name.clone(),
        role: user.role,
    })
}

/// Radiologists and admins: senders only store.
impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let a = caller(parts, state)?;
        if a.role == Role::Sender {
            return Err(ApiError::Forbidden(
                "a sender's token only stores instances (STOW-RS)",
            ));
        }
        Ok(a)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let a = Authed::from_request_parts(parts, state).await?;
        if a.role != Role::Admin {
            return Err(ApiError::Forbidden("this needs the admin role"));
        }
        Ok(Admin(a))
    }
}

/// The caller of STOW-RS: a sender or an admin.
#[derive(Debug, Clone)]
pub struct Sender(pub Authed);

impl FromRequestParts<AppState> for Sender {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let a = caller(parts, state)?;
        if !matches!(a.role, Role::Sender | Role::Admin) {
            return Err(ApiError::Forbidden(
                "storing instances needs the sender (or admin) role",
            ));
        }
        Ok(Sender(a))
    }
}
