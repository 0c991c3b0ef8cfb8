//! Upgrades: a database written by an earlier release, holding data, is
//! migrated in place when the daemon starts, and nothing in it is lost.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use archive::{Archive, ArchiveOptions, DATABASE_FILE};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;

fn migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite")
}

/// A database as the release that had only the first `n` migrations left
/// it (all of them for `usize::MAX`).
async fn old_database(dir: &Path, n: usize) -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.join(DATABASE_FILE))
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    let mut m = Migrator::new(migrations()).await.unwrap();
    let n = n.min(m.migrations.len());
    m.migrations = Cow::Owned(m.migrations[..n].to_vec());
    m.run(&pool).await.unwrap();
    pool
}

async fn exec(pool: &SqlitePool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap();
}

const STUDY: &str = "INSERT INTO studies (study_instance_uid, first_received_at, last_received_at)
     VALUES ('2.25.1', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z');
   INSERT INTO series (series_instance_uid, study_instance_uid, modality, first_received_at, last_received_at)
     VALUES ('2.25.2', '2.25.1', 'CR', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z');
   INSERT INTO instances (sop_instance_uid, sop_class_uid, series_instance_uid, study_instance_uid,
       transfer_syntax_uid, file_path, file_size, calling_ae_title, source, peer_address, received_at)
     VALUES ('2.25.3', '1.2.840.10008.5.1.4.1.1.1', '2.25.2', '2.25.1', '1.2.840.10008.1.2.1',
       'x/2.25.3.dcm', 10, 'ROUTER', 'test', '127.0.0.1', '2026-01-01T00:00:01.000Z');";

#[tokio::test]
async fn a_database_with_jobs_findings_and_outbox_rows_upgrades_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let pool = old_database(dir.path(), 4).await;
    exec(&pool, STUDY).await;
    exec(
        &pool,
        "INSERT INTO jobs (id, study_instance_uid, instance_set, instances, state, attempts, report_uids, created_at, updated_at)
           VALUES (7, '2.25.1', 'abc', 1, 'done', 1, '2.25.9', '2026-01-01T00:00:07.000Z', '2026-01-01T00:00:08.000Z');
         INSERT INTO findings (job_id, study_instance_uid, series_instance_uid, sop_instance_uid, model, model_version,
             label, probability, threshold, flagged, created_at)
           VALUES (7, '2.25.1', '2.25.2', '2.25.3', 'demo', '1', 'Pneumothorax', 0.9, 0.5, 1, '2026-01-01T00:00:08.000Z'),
                  (7, '2.25.1', '2.25.2', '2.25.3', 'demo', '1', 'Effusion', 0.1, 0.5, 0, '2026-01-01T00:00:08.000Z');
         UPDATE studies SET priority = 'urgent', flagged = 1, analysed_at = last_received_at;
         INSERT INTO outbox (sop_instance_uid, sop_class_uid, study_instance_uid, file_path, destination, state,
             next_attempt_at, created_at, updated_at)
           VALUES ('2.25.9', '1.2.840.10008.5.1.4.1.1.88.34', '2.25.1', 'outbox/2.25.9.dcm', 'pacs', 'pending',
             '2026-01-01T00:00:08.000Z', '2026-01-01T00:00:08.000Z', '2026-01-01T00:00:08.000Z');",
    )
    .await;
    pool.close().await;

    let archive = Archive::open(ArchiveOptions::new(dir.path()))
        .await
        .unwrap();
    let studies = archive.studies().await.unwrap();
    assert_eq!(studies.len(), 1);
    let s = &studies[0];
    assert_eq!(s.status.as_deref(), Some("done"));
    assert_eq!(s.priority.as_deref(), Some("urgent"));
    assert_eq!(s.findings.len(), 1, "{:?}", s.findings);
    assert!(
        s.findings[0].starts_with("Pneumothorax"),
        "{:?}",
        s.findings
    );
    let outbox = archive.outbox().list().await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].state, archive::DeliveryState::Pending);
    // The new states are allowed, and the rebuilt tables keep their keys.
    archive.close().await;
    let pool = old_database(dir.path(), usize::MAX).await;
    exec(&pool, "UPDATE jobs SET state = 'sending' WHERE id = 7").await;
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let findings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM findings WHERE job_id = 7")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(findings, 2);
}

#[tokio::test]
async fn a_first_release_database_is_not_analysed_retroactively() {
    let dir = tempfile::tempdir().unwrap();
    let pool = old_database(dir.path(), 1).await;
    exec(&pool, STUDY).await;
    pool.close().await;
    let archive = Archive::open(ArchiveOptions::new(dir.path()))
        .await
        .unwrap();
    // The study predates the pipeline: it is indexed but no job is made.
    assert_eq!(archive.instance_count().await.unwrap(), 1);
    let assembly = archive
        .jobs()
        .assemble(
            &archive::QuietPeriods::uniform(std::time::Duration::ZERO),
            None,
        )
        .await
        .unwrap();
    assert!(assembly.made.is_empty(), "{assembly:?}");
    archive.close().await;
}
