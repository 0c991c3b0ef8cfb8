//! `[database]`: where the index, jobs and outbox live.
//!
//! Absent, SQLite in the storage folder (one node). A `postgres://` URL
//! puts them in PostgreSQL, which several nodes sharing one storage folder
//! use together. The password never sits in the URL (configuration files
//! are read by many and URLs end up in logs): it comes from
//! `password_file` or the environment variable
//! [`PASSWORD_ENV`].

use std::path::{Path, PathBuf};

use archive::{Backend, DatabaseOptions};
use serde::Deserialize;

/// The environment variable that may carry the PostgreSQL password.
pub const PASSWORD_ENV: &str = "TRIAGED_DATABASE_PASSWORD";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/database` or `sqlite:///path/triaged.db`;
    /// absent: `<storage dir>/triaged.db`.
    pub url: Option<String>,
    /// A file holding the PostgreSQL password (its first line).
    pub password_file: Option<PathBuf>,
    /// Connections this node opens to PostgreSQL at most.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            password_file: None,
            max_connections: 16,
        }
    }
}

impl DatabaseConfig {
    pub fn backend(&self) -> Backend {
        self.url
            .as_deref()
            .and_then(Backend::of_url)
            .unwrap_or(Backend::Sqlite)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(url) = &self.url {
            match Backend::of_url(url) {
                None => p.push(format!(
                    "database.url: '{}' must start with postgres:// or sqlite://",
                    redacted(url)
                )),
                Some(Backend::Postgres) if has_password(url) => p.push(
                    "database.url: must not carry a password: put it in database.password_file or the environment variable TRIAGED_DATABASE_PASSWORD"
                        .into(),
                ),
                Some(Backend::Postgres) => p.extend(tls_problems(url)),
                Some(_) => {}
            }
        }
        if self.password_file.is_some() && self.backend() != Backend::Postgres {
            p.push("database.password_file: only for a postgres:// url".into());
        }
        if !(2..=1000).contains(&self.max_connections) {
            p.push(format!(
                "database.max_connections: {} is outside 2..=1000",
                self.max_connections
            ));
        }
        p
    }

    /// The archive's database options, with the password read from its
    /// file or the environment.
    pub fn options(&self) -> Result<DatabaseOptions, String> {
        let password = match &self.password_file {
            Some(f) => Some(read_password(f)?),
            None => std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
        };
        Ok(DatabaseOptions {
            url: self.url.clone(),
            password: password.filter(|_| self.backend() == Backend::Postgres),
            max_connections: self.max_connections,
        })
    }
}

fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "database.password_file: cannot read {}: {e}",
            path.display()
        )
    })?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        return Err(format!(
            "database.password_file: {} is empty",
            path.display()
        ));
    }
    Ok(line)
}

/// What PostgreSQL's `sslmode` may be (libpq's names; `verify-full`
/// checks the server's certificate and name, `require` only encrypts).
const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// The URL's TLS parameters: a known `sslmode`, and a readable
/// `sslrootcert`/`sslcert`/`sslkey` (so a typo stops the start, naming
/// the key, instead of every connection failing later).
fn tls_problems(url: &str) -> Vec<String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut p = Vec::new();
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "sslmode" if !SSL_MODES.contains(&value) => p.push(format!(
                "database.url: sslmode '{value}' is not one of {}",
                SSL_MODES.join(", ")
            )),
            "sslrootcert" | "sslcert" | "sslkey" => {
                if let Err(e) = std::fs::File::open(value) {
                    p.push(format!("database.url: {key} '{value}' cannot be read: {e}"));
                }
            }
            _ => {}
        }
    }
    p
}

/// Whether `user:password@` is in the URL.
fn has_password(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or_default())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The URL with any password replaced, for messages.
pub fn redacted(url: &str) -> String {
    if !has_password(url) {
        return url.to_string();
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (userinfo, host) = rest.split_once('@').unwrap_or(("", rest));
    let user = userinfo.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_and_never_repeated() {
        let c = DatabaseConfig {
            url: Some("postgres://triaged:s3cret@db:5432/triaged".into()),
            ..Default::default()
        };
        let p = c.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("database.url:") && !p[0].contains("s3cret"));
        assert_eq!(
            redacted("postgres://triaged:s3cret@db/t"),
            "postgres://triaged:***@db/t"
        );
        let fine = DatabaseConfig {
            url: Some("postgres://triaged@db:5432/triaged".into()),
            ..Default::default()
        };
        assert!(fine.problems().is_empty());
        assert_eq!(fine.backend(), Backend::Postgres);
    }

    #[test]
    fn keys_are_named() {
        let c = DatabaseConfig {
            url: Some("mysql://x@y/z".into()),
            password_file: Some("/nonexistent".into()),
            max_connections: 1,
        };
        let p = c.problems().join("\n");
        assert!(p.contains("database.url:"), "{p}");
        assert!(p.contains("database.password_file: only for"), "{p}");
        assert!(p.contains("database.max_connections: 1"), "{p}");
        let pg = DatabaseConfig {
            url: Some("postgres://x@y/z".into()),
            password_file: Some("/nonexistent/pw".into()),
            ..Default::default()
        };
        assert!(pg
            .options()
            .unwrap_err()
            .contains("database.password_file: cannot read"));
    }

    #[test]
    fn tls_parameters_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not checked here").unwrap();
        let url = |q: &str| DatabaseConfig {
            url: Some(format!("postgres://x@db.example.org/z?{q}")),
            ..Default::default()
        };
        let fine = url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
        assert!(fine.problems().is_empty(), "{:?}", fine.problems());
        let p = url("sslmode=verify_full&sslrootcert=/nonexistent/ca.pem")
            .problems()
            .join("\n");
        assert!(
            p.contains("database.url: sslmode 'verify_full' is not one of"),
            "{p}"
        );
        assert!(
            p.contains("database.url: sslrootcert '/nonexistent/ca.pem' cannot be read"),
            "{p}"
        );
    }

    #[test]
    fn the_password_comes_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let c = DatabaseConfig {
            url: Some("postgres://x@y/z".into()),
            password_file: Some(f),
            ..Default::default()
        };
        let o = c.options().unwrap();
        assert_eq!(o.password.as_deref(), Some("hunter2"));
        assert!(!format!("{o:?}").contains("hunter2"), "Debug hides it");
    }
}
