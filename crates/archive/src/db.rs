//! The database: SQLite (embedded, one node) or PostgreSQL (a cluster),
//! connection pools and migrations.
//!
//! Both run the same queries through sqlx's `Any` driver: placeholders are
//! `$1`, `$2`…, integers and 0/1 flags are BIGINT, timestamps are text.
//! The few SQLite functions the queries use (`strftime`, `julianday`,
//! `glob`, `printf`, `group_concat`, two-argument `max`) exist in the
//! PostgreSQL schema as functions of the same name and meaning
//! (`migrations/postgres`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, Arguments, Connection, Decode, Encode, Executor, FromRow, Type};

use crate::ArchiveError;

pub(crate) type Pool = sqlx::AnyPool;
pub(crate) type Tx<'c> = sqlx::Transaction<'c, Any>;

/// The current time as every timestamp column stores it: UTC, ISO 8601
/// with milliseconds, so text order is time order.
pub(crate) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// SQLite's migrations: the schema built up since the first release.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
/// PostgreSQL's: the same schema from its version 13 on.
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Name of the SQLite database file inside the storage directory.
pub const DATABASE_FILE: &str = "triaged.db";

/// Which database an archive's index lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the index is: `[database]` of the configuration.
#[derive(Clone, Default)]
pub struct DatabaseOptions {
    /// `postgres://user@host:port/db`, or `sqlite://FILE`; `None`: SQLite
    /// in `triaged.db` of the storage folder.
    pub url: Option<String>,
    /// The PostgreSQL password (from a file or the environment, never the
    /// URL, so never in a log).
    pub password: Option<String>,
    /// Connections this process opens to PostgreSQL at most.
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseOptions")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The database of one archive, resolved.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres { url: String, max_connections: u32 },
}

impl Backend {
    /// The backend a database URL names (`None`: not one triaged knows).
    pub fn of_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }
}

impl Target {
    pub(crate) fn resolve(options: &DatabaseOptions, dir: &Path) -> Result<Target, ArchiveError> {
        let Some(url) = &options.url else {
            return Ok(Target::Sqlite(dir.join(DATABASE_FILE)));
        };
        match Backend::of_url(url) {
            Some(Backend::Sqlite) => {
                let path = url
                    .trim_start_matches("sqlite:")
                    .trim_start_matches("//")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                Ok(Target::Sqlite(PathBuf::from(path)))
            }
            Some(Backend::Postgres) => {
                let mut parsed = url::Url::parse(url)
                    .map_err(|e| ArchiveError::BadDatabaseUrl(e.to_string()))?;
                if parsed.password().is_some() {
                    return Err(ArchiveError::BadDatabaseUrl(
                        "the URL carries a password: give it in a file or the environment instead"
                            .into(),
                    ));
                }
                if let Some(p) = &options.password {
                    parsed.set_password(Some(p)).map_err(|_| {
                        ArchiveError::BadDatabaseUrl("the URL cannot take a password".into())
                    })?;
                }
                Ok(Target::Postgres {
                    url: parsed.into(),
                    max_connections: options.max_connections.max(2),
                })
            }
            None => Err(ArchiveError::BadDatabaseUrl(
                "the URL must start with sqlite:// or postgres://".into(),
            )),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres { .. } => Backend::Postgres,
        }
    }
}

/// The backend a pool talks to.
pub(crate) fn backend(pool: &Pool) -> Backend {
    match pool.connect_options().database_url.scheme() {
        "sqlite" => Backend::Sqlite,
        _ => Backend::Postgres,
    }
}

/// How a transaction that will write begins: SQLite takes the write lock
/// at once (no deadlock between two readers that both want to write);
/// PostgreSQL locks rows as it goes.
pub(crate) fn begin_write(pool: &Pool) -> &'static str {
    match backend(pool) {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    }
}

/// What a claim's inner SELECT ends with: PostgreSQL locks the rows it
/// picks and skips those another node is claiming; SQLite has one writer.
pub(crate) fn skip_locked(pool: &Pool) -> &'static str {
    match backend(pool) {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
    }
}

fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// SQLite's settings, on every connection: WAL (readers beside the
/// writer), `synchronous = FULL` (a commit survives power loss), foreign
/// keys, and a generous wait for the write lock.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";

async fn sqlite_pool(path: &Path, mode: &str, max: u32) -> Result<Pool, sqlx::Error> {
    install_drivers();
    let url = format!("sqlite://{}?mode={mode}", path.display());
    // One connection first, so that a file that is not a database fails
    // the open at once instead of the pool retrying until its timeout.
    let mut probe = AnyConnection::connect(&url).await?;
    probe.execute(SQLITE_PRAGMAS).await?;
    probe.close().await?;
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(max.min(1))
        .acquire_timeout(Duration::from_secs(60))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(SQLITE_PRAGMAS).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
}

/// How long a statement waits for a PostgreSQL connection before it fails
/// (a C-STORE then answers 0xA700): long enough for a busy pool, short
/// enough that a sender hears the refusal before its own timeout when the
/// server is down (Orthanc's default is 10 s; connections are retried
/// until then).
const POSTGRES_ACQUIRE: Duration = Duration::from_secs(8);

async fn postgres_pool(url: &str, max: u32) -> Result<Pool, sqlx::Error> {
    install_drivers();
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(POSTGRES_ACQUIRE)
        .connect(url)
        .await
}

/// Writes go through one connection on SQLite, so concurrent associations
/// queue in the pool instead of failing with SQLITE_BUSY; reads use their
/// own pool, which WAL lets run beside the writer. PostgreSQL has one pool
/// for both.
pub(crate) struct Db {
    pub write: Pool,
    pub read: Pool,
    pub backend: Backend,
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
    pub async fn open(target: &Target) -> Result<Db, ArchiveError> {
        const OPEN: &str = "opening the database";
        match target {
            Target::Sqlite(path) => {
                let write = sqlite_pool(path, "rwc", 1)
                    .await
                    .map_err(ArchiveError::db(OPEN))?;
                migrate(&write, Backend::Sqlite).await?;
                let read = sqlite_pool(path, "rw", 4)
                    .await
                    .map_err(ArchiveError::db("opening the database for reading"))?;
                Ok(Db {
                    write,
                    read,
                    backend: Backend::Sqlite,
                })
            }
            Target::Postgres {
                url,
                max_connections,
            } => {
                let pool = postgres_pool(url, *max_connections)
                    .await
                    .map_err(ArchiveError::db(OPEN))?;
                migrate(&pool, Backend::Postgres).await?;
                Ok(Db {
                    write: pool.clone(),
                    read: pool,
                    backend: Backend::Postgres,
                })
            }
        }
    }

    /// One write connection for an admin command beside a running daemon:
    /// the database must exist; migrations are applied (idempotent).
    pub async fn open_admin(target: &Target) -> Result<Pool, ArchiveError> {
        let pool = match target {
            Target::Sqlite(path) => {
                must_exist(path)?;
                sqlite_pool(path, "rw", 1).await
            }
            Target::Postgres { url, .. } => postgres_pool(url, 2).await,
        }
        .map_err(ArchiveError::db("opening the database"))?;
        migrate(&pool, target.backend()).await?;
        Ok(pool)
    }

    pub async fn open_read_only(target: &Target) -> Result<Pool, ArchiveError> {
        match target {
            Target::Sqlite(path) => {
                must_exist(path)?;
                sqlite_pool(path, "ro", 1).await
            }
            Target::Postgres { url, .. } => postgres_pool(url, 2).await,
        }
        .map_err(ArchiveError::db("opening the database"))
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Apply the backend's migrations. On PostgreSQL, sqlx holds an advisory
/// lock meanwhile, so of several nodes starting together one migrates and
/// the others wait for it. A database migrated by a newer triaged is
/// refused: this build does not know its schema.
async fn migrate(pool: &Pool, backend: Backend) -> Result<(), ArchiveError> {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    };
    match migrator.run(pool).await {
        Err(sqlx::migrate::MigrateError::VersionMissing(found)) => {
            Err(ArchiveError::SchemaTooNew {
                found,
                known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
            })
        }
        r => Ok(r?),
    }
}

/// A 0/1 flag column (BIGINT on both databases: SQLite has no boolean
/// type), read into a `bool` field with `#[sqlx(try_from = "Flag")]`.
pub(crate) struct Flag(i64);

impl Type<Any> for Flag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as Type<Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as Type<Any>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Any> for Flag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <i64 as Decode<Any>>::decode(value).map(Flag)
    }
}

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0 != 0
    }
}

/// A query assembled piece by piece (optional filters), numbering its
/// placeholders as it binds.
pub(crate) struct Sql<'a> {
    text: String,
    args: AnyArguments<'a>,
    n: usize,
}

impl<'a> Sql<'a> {
    pub fn new(text: impl Into<String>) -> Sql<'a> {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
            n: 0,
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append the next placeholder and bind `value` to it.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.n += 1;
        self.text.push_str(&format!("${}", self.n));
        // Encoding into Any's buffer cannot fail for the types it has.
        let _ = self.args.add(value);
        self
    }

    /// `(…, …)` of one placeholder per value.
    pub fn push_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.push_bind(v);
        }
        self.text.push(')');
        self
    }

    pub async fn fetch_all(self, pool: &Pool) -> Result<Vec<AnyRow>, sqlx::Error> {
        sqlx::query_with(&self.text, self.args)
            .fetch_all(pool)
            .await
    }

    pub async fn fetch_all_as<T>(self, pool: &Pool) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        sqlx::query_as_with(&self.text, self.args)
            .fetch_all(pool)
            .await
    }

    pub async fn fetch_scalar<T>(self, pool: &Pool) -> Result<T, sqlx::Error>
    where
        T: for<'r> Decode<'r, Any> + Type<Any> + Send + Unpin,
    {
        sqlx::query_scalar_with(&self.text, self.args)
            .fetch_one(pool)
            .await
    }
}

/// Every migration's SQL, for tests that check the schema names what the
/// code stores.
#[cfg(test)]
pub(crate) fn schema_text() -> String {
    SQLITE_MIGRATOR
        .iter()
        .chain(POSTGRES_MIGRATOR.iter())
        .map(|m| m.sql.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
