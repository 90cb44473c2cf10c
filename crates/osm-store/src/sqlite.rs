//! SQLite, the embedded default. WAL with `synchronous=FULL`, so a committed write survives a
//! crash or power loss; one writer connection whose transactions start with `BEGIN IMMEDIATE`
//! (writers queue in osmd instead of failing with SQLITE_BUSY); several reader connections.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{Backend, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

/// The settings a connection of the store runs with (see [`SqliteStore::settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    pub journal_mode: String,
    /// `2` is `FULL`.
    pub synchronous: i64,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite://PATH` URL names and migrates it.
    /// `sqlite::memory:` opens a private in-memory store (tests).
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Conflict(format!("not a sqlite URL: {url}")))?;
        if path.is_empty() {
            return Err(StoreError::Conflict("the sqlite URL names no file".into()));
        }
        if path == ":memory:" {
            return Self::open_memory().await;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let readers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8) as u32
            * 2;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }

    /// An in-memory database lives as long as its one connection: the pool keeps exactly one,
    /// forever, and reads share it with writes.
    async fn open_memory() -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?
            .journal_mode(SqliteJournalMode::Memory)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore {
            write: pool.clone(),
            read: pool,
        })
    }

    /// The settings of the writer connection, for `osmd doctor`-style checks and tests.
    pub async fn settings(&self) -> StoreResult<SqliteSettings> {
        use sqlx::Row;
        let mut conn = self.write.acquire().await?;
        let mut int = async |pragma: &'static str| -> StoreResult<i64> {
            Ok(sqlx::query(pragma)
                .fetch_one(&mut *conn)
                .await?
                .try_get::<i64, _>(0)?)
        };
        let synchronous = int("PRAGMA synchronous").await?;
        let foreign_keys = int("PRAGMA foreign_keys").await? == 1;
        let busy_timeout_ms = int("PRAGMA busy_timeout").await?;
        let journal_mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(SqliteSettings {
            journal_mode,
            synchronous,
            foreign_keys,
            busy_timeout_ms,
        })
    }

    pub(crate) fn read(&self) -> &SqlitePool {
        &self.read
    }

    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    /// `VACUUM INTO` writes a consistent snapshot while other connections keep working.
    pub(crate) async fn backup_impl(&self, path: &std::path::Path) -> StoreResult<()> {
        if path.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists",
                path.display()
            )));
        }
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Conflict("the backup path is not valid UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.read)
            .await?;
        Ok(())
    }
}

crate::common::impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite,
    "sqlite",
    "",
    "",
    ""
);

crate::inventory::impl_inventory_store!(SqliteStore, sqlx::Sqlite, "sqlite", "");

crate::report::impl_report_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN",
    "json_array",
    "json_group_array({})",
    "json({})"
);
