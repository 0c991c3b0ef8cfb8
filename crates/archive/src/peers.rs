//! Sources and destinations set from the admin console, kept on top of the
//! configuration file: a row overrides the file's entry of the same kind
//! and name, or hides it (`removed`). The daemon re-reads them after every
//! change, so they take effect without a restart.

use serde::Serialize;
use sqlx::FromRow;

use crate::db::Pool;

use crate::db::NOW;
use crate::ArchiveError;

/// Which list a peer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    Source,
    Destination,
}

impl PeerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerKind::Source => "source",
            PeerKind::Destination => "destination",
        }
    }
}

/// One override row.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct PeerOverride {
    pub kind: String,
    pub name: String,
    #[sqlx(try_from = "crate::db::Flag")]
    pub removed: bool,
    pub ae_title: Option<String>,
    /// Sources: allowed hosts, one per line.
    pub hosts: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub quiet_secs: Option<f64>,
    /// Destinations: what the console set beyond the address (JSON, read
    /// by the daemon).
    pub settings: Option<String>,
    pub updated_by: String,
    pub updated_at: String,
}

/// The admin's peer overrides.
#[derive(Clone)]
pub struct Peers {
    pool: Pool,
}

impl Peers {
    pub(crate) fn new(pool: Pool) -> Peers {
        Peers { pool }
    }

    /// What changes whenever any node changes a row: the rows' count and
    /// latest change time.
    pub async fn stamp(&self) -> Result<String, ArchiveError> {
        sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS TEXT) || ' ' || COALESCE(MAX(updated_at), '') FROM peers",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(ArchiveError::db("reading console changes"))
    }

    pub async fn list(&self) -> Result<Vec<PeerOverride>, ArchiveError> {
        sqlx::query_as("SELECT * FROM peers ORDER BY kind, name")
            .fetch_all(&self.pool)
            .await
            .map_err(ArchiveError::db("reading peers"))
    }

    /// Set a source (AE title, hosts, quiet period) by name.
    pub async fn put_source(
        &self,
        name: &str,
        ae_title: &str,
        hosts: &[String],
        quiet_secs: Option<f64>,
        user: &str,
    ) -> Result<(), ArchiveError> {
        self.put(
            PeerKind::Source,
            name,
            ae_title,
            Some(hosts.join("\n")),
            None,
            None,
            quiet_secs,
            None,
            user,
        )
        .await
    }

    /// Set a destination (AE title, host, port and its other settings) by
    /// name.
    pub async fn put_destination(
        &self,
        name: &str,
        ae_title: &str,
        host: &str,
        port: u16,
        settings: Option<&str>,
        user: &str,
    ) -> Result<(), ArchiveError> {
        self.put(
            PeerKind::Destination,
            name,
            ae_title,
            None,
            Some(host),
            Some(port as i64),
            None,
            settings,
            user,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn put(
        &self,
        kind: PeerKind,
        name: &str,
        ae_title: &str,
        hosts: Option<String>,
        host: Option<&str>,
        port: Option<i64>,
        quiet_secs: Option<f64>,
        settings: Option<&str>,
        user: &str,
    ) -> Result<(), ArchiveError> {
        sqlx::query(&format!(
            "INSERT INTO peers (kind, name, removed, ae_title, hosts, host, port, quiet_secs, settings, updated_by, updated_at)
             VALUES ($1, $2, 0, $3, $4, $5, $6, CAST($7 AS DOUBLE PRECISION), $8, $9, {NOW})
             ON CONFLICT (kind, name) DO UPDATE SET removed = 0, ae_title = excluded.ae_title,
               hosts = excluded.hosts, host = excluded.host, port = excluded.port,
               quiet_secs = excluded.quiet_secs, settings = excluded.settings,
               updated_by = excluded.updated_by, updated_at = excluded.updated_at"
        ))
        .bind(kind.as_str())
        .bind(name)
        .bind(ae_title)
        .bind(hosts)
        .bind(host)
        .bind(port)
        // As text: sqlx's Any driver declares a missing f64 as float4, and
        // PostgreSQL's cached statement then refuses a present one.
        .bind(quiet_secs.map(|q| q.to_string()))
        .bind(settings)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("saving a peer"))?;
        Ok(())
    }

    /// Remove a peer (one from the file is hidden by a `removed` row).
    pub async fn remove(&self, kind: PeerKind, name: &str, user: &str) -> Result<(), ArchiveError> {
        sqlx::query(&format!(
            "INSERT INTO peers (kind, name, removed, updated_by, updated_at) VALUES ($1, $2, 1, $3, {NOW})
             ON CONFLICT (kind, name) DO UPDATE SET removed = 1, ae_title = NULL, hosts = NULL, host = NULL,
               port = NULL, quiet_secs = NULL, settings = NULL, updated_by = excluded.updated_by, updated_at = excluded.updated_at"
        ))
        .bind(kind.as_str())
        .bind(name)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(ArchiveError::db("removing a peer"))?;
        Ok(())
    }
}
