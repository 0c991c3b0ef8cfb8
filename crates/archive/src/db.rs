//! The SQLite database: connection pools and migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::ArchiveError;

/// The current time as every timestamp column stores it: UTC, ISO 8601
/// with milliseconds, so text order is time order.
pub(crate) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// The migrations in the workspace's `migrations/` folder, embedded.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Writes go through one connection, so concurrent associations queue in
/// the pool instead of failing with SQLITE_BUSY; reads use their own pool,
/// which WAL lets run beside the writer.
pub(crate) struct Db {
    pub write: SqlitePool,
    pub read: SqlitePool,
}

fn base_options(path: &Path) -> Result<SqliteConnectOptions, ArchiveError> {
    let url = format!("sqlite://{}", path.display());
    Ok(SqliteConnectOptions::from_str(&url)
        .map_err(ArchiveError::db("parsing the database path"))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30)))
}

/// Admin and read-only opens never create a database.
fn must_exist(path: &Path) -> Result<(), ArchiveError> {
    if path.exists() {
        return Ok(());
    }
    Err(ArchiveError::io(
        "open the database",
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} does not exist (has the daemon run with this storage dir?)",
                path.display()
            ),
        ),
    ))
}

impl Db {
    pub async fn open(path: &Path) -> Result<Db, ArchiveError> {
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(base_options(path)?.create_if_missing(true))
            .await
            .map_err(ArchiveError::db("opening the database"))?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base_options(path)?)
            .await
            .map_err(ArchiveError::db("opening the database for reading"))?;
        Ok(Db { write, read })
    }

    /// One write connection for an admin command beside a running daemon:
    /// the database must exist; migrations are applied (idempotent).
    pub async fn open_admin(path: &Path) -> Result<SqlitePool, ArchiveError> {
        must_exist(path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base_options(path)?)
            .await
            .map_err(ArchiveError::db("opening the database"))?;
        MIGRATOR.run(&pool).await?;
        Ok(pool)
    }

    pub async fn open_read_only(path: &Path) -> Result<SqlitePool, ArchiveError> {
        must_exist(path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base_options(path)?.read_only(true))
            .await
            .map_err(ArchiveError::db("opening the database"))?;
        Ok(pool)
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Every migration's SQL, for tests that check the schema names what the
/// code stores.
#[cfg(test)]
pub(crate) fn schema_text() -> String {
    MIGRATOR
        .iter()
        .map(|m| m.sql.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
