//! The database an archive test runs on: SQLite in the test's folder, or,
//! when `TRIAGED_TEST_POSTGRES` names a server (`postgres://user@host:port`),
//! a fresh PostgreSQL database of its own there (scripts/test.sh runs the
//! suite both ways).

#![allow(dead_code)]

use std::hash::{Hash, Hasher};
use std::path::Path;

use archive::{ArchiveOptions, DatabaseOptions};
use sqlx::Connection;

/// The PostgreSQL server the suite runs on, if any.
pub fn postgres() -> Option<String> {
    std::env::var("TRIAGED_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The test's own database, named after its folder.
fn database_url(server: &str, dir: &Path) -> (String, String) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    let name = format!("t_{:016x}", h.finish());
    (format!("{}/{name}", server.trim_end_matches('/')), name)
}

/// Options for an archive in `dir`, on the suite's database.
pub async fn options(dir: &Path) -> ArchiveOptions {
    let o = ArchiveOptions::new(dir);
    let Some(server) = postgres() else {
        return o;
    };
    let (url, name) = database_url(&server, dir);
    let mut admin =
        sqlx::PgConnection::connect(&format!("{}/postgres", server.trim_end_matches('/')))
            .await
            .expect("connect to TRIAGED_TEST_POSTGRES");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
    o.with_database(DatabaseOptions {
        url: Some(url),
        password: None,
        max_connections: 8,
    })
}

/// A connection of the test's own to the archive's database in `dir`.
pub async fn raw(dir: &Path) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match postgres() {
        Some(server) => database_url(&server, dir).0,
        None => format!("sqlite://{}", dir.join(archive::DATABASE_FILE).display()),
    };
    sqlx::AnyPool::connect(&url).await.unwrap()
}
