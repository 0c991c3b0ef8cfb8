//! Images for the viewer: an instance's first frame as the modality shows
//! it (Modality and VOI LUT, MONOCHROME1 inverted), at most 1024 pixels a
//! side, and the heatmap capture of a finding. Rendered once, then served
//! from a PNG cache under the storage folder.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::api::{ApiError, Path, Query};
use crate::auth::Authed;
use crate::AppState;

const MAX_SIDE: usize = 1024;

pub async fn image(
    _user: Authed,
    State(s): State<AppState>,
    Path(sop): Path<String>,
) -> Result<Response, ApiError> {
    let file = s
        .worklist
        .instance_file(crate::api::uid(&sop)?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no instance {sop}")))?;
    png(&s.cache_dir, &format!("{sop}.png"), file).await
}

#[derive(Debug, Deserialize)]
pub struct HeatmapQuery {
    label: String,
}

pub async fn heatmap(
    _user: Authed,
    State(s): State<AppState>,
    Path(sop): Path<String>,
    Query(q): Query<HeatmapQuery>,
) -> Result<Response, ApiError> {
    let file = s
        .worklist
        .heatmap_file(crate::api::uid(&sop)?, &q.label)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no heatmap of {} on {sop}", q.label)))?;
    let key = format!("{:x}", Sha256::digest(file.to_string_lossy().as_bytes()));
    png(&s.cache_dir, &format!("heatmap-{key}.png"), file).await
}

async fn png(cache: &FsPath, name: &str, source: PathBuf) -> Result<Response, ApiError> {
    let cached = cache.join(name);
    let cache = cache.to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        if let Ok(b) = std::fs::read(&cached) {
            return Ok(b);
        }
        let bytes = render(&source)?;
        // A cache write that fails costs a re-render next time, nothing more.
        let _ = std::fs::create_dir_all(&cache).and_then(|_| {
            let tmp = cached.with_extension("tmp");
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &cached)
        });
        Ok(bytes)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

fn render(file: &FsPath) -> Result<Vec<u8>, ApiError> {
    imaging::preview_png(file, MAX_SIDE).map_err(|e| match e {
        imaging::ImagingError::Read { .. } => ApiError::Internal(e.to_string()),
        e => ApiError::BadRequest(format!("cannot display this image: {e}")),
    })
}
