//! What an export of one study copies: its received instances and the
//! report objects of its latest analysis.

use std::path::{Path, PathBuf};

use crate::db::Pool;

use crate::outbox::kept_path;
use crate::ArchiveError;

/// The files of one study.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudyFiles {
    /// The received instances, in series and instance order (none once
    /// retention has purged the study).
    pub instances: Vec<PathBuf>,
    /// The SR and heatmap captures of the latest analysis that made a
    /// report, SR first, as far as they are still kept.
    pub reports: Vec<PathBuf>,
    /// When retention deleted the instances, if it has.
    pub purged_at: Option<String>,
}

/// `None`: no such study.
pub(crate) async fn study_files(
    pool: &Pool,
    dir: &Path,
    study: &str,
) -> Result<Option<StudyFiles>, ArchiveError> {
    let e = ArchiveError::db("listing a study's files");
    let Some(purged_at): Option<Option<String>> =
        sqlx::query_scalar("SELECT purged_at FROM studies WHERE study_instance_uid = $1")
            .bind(study)
            .fetch_optional(pool)
            .await
            .map_err(e)?
    else {
        return Ok(None);
    };
    let e = ArchiveError::db("listing a study's files");
    let instances: Vec<String> = sqlx::query_scalar(
        "SELECT i.file_path FROM instances i JOIN series se ON se.series_instance_uid = i.series_instance_uid
         WHERE i.study_instance_uid = $1
         ORDER BY se.series_number, i.series_instance_uid, i.instance_number, i.sop_instance_uid",
    )
    .bind(study)
    .fetch_all(pool)
    .await
    .map_err(e)?;
    let e = ArchiveError::db("listing a study's reports");
    let latest: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, report_uids FROM jobs WHERE study_instance_uid = $1 AND report_uids IS NOT NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(study)
    .fetch_optional(pool)
    .await
    .map_err(e)?;
    let mut uids = Vec::new();
    if let Some((job, reports)) = latest {
        uids.extend(reports.split(',').map(str::to_string));
        let e = ArchiveError::db("listing a study's heatmaps");
        let heatmaps: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT heatmap_uid FROM findings
             WHERE job_id = $1 AND heatmap_uid IS NOT NULL AND shadow = 0 ORDER BY heatmap_uid",
        )
        .bind(job)
        .fetch_all(pool)
        .await
        .map_err(e)?;
        uids.extend(heatmaps);
    }
    Ok(Some(StudyFiles {
        instances: instances.into_iter().map(|p| dir.join(p)).collect(),
        reports: uids
            .iter()
            .filter_map(|u| kept_path(dir, u))
            .filter(|p| p.is_file())
            .collect(),
        purged_at,
    }))
}
