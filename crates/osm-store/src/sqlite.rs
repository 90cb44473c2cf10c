//! SQLite, the embedded default. WAL with `synchronous=FULL`, so a committed write survives a
//! crash or power loss; one writer connection whose transactions start with `BEGIN IMMEDIATE`
//! (writers queue in osmd instead of failing with SQLITE_BUSY); several reader connections.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::rows::{Cell, CompletionState, FinishedRow, StartedWork};
use crate::{Backend, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// Copies committed WAL frames into the database file (see [`checkpoints`]).
    checkpointer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = self.checkpointer.take() {
            task.abort();
        }
    }
}

/// Rows the writer connection's thread may hand over before it waits for them to be taken.
/// sqlx's default (50) makes a dispatch batch, which returns thousands of rows, wait for the
/// async side every 50 rows: two thread wake-ups each time.
const ROW_BUFFER: usize = 4096;

/// How the WAL is kept from growing (see [`checkpoints`]).
#[derive(Debug, Clone, Copy)]
struct WalLimits {
    /// How often the background checkpoint runs.
    checkpoint_every: Duration,
    /// Frames (pages) past which the checkpointer makes the WAL start over.
    restart_frames: i64,
    /// Bytes the WAL file is cut back to when it starts over, if a burst made it larger.
    size_limit: i64,
}

/// A checkpoint every 500 ms; the WAL starts over past 32 MiB of 4 KiB pages and keeps at most
/// 64 MiB of file.
const WAL_LIMITS: WalLimits = WalLimits {
    checkpoint_every: Duration::from_millis(500),
    restart_frames: 8192,
    size_limit: 64 << 20,
};

/// Checkpoints the WAL from a connection of its own, so the writer's commits never pay for
/// one (SQLite's automatic checkpoint runs inside the commit that crosses 1,000 pages, on the
/// single writer everything else waits for). PASSIVE never blocks the writer or readers.
/// Durability does not depend on it: a commit is on disk once its WAL frames are
/// (`synchronous=FULL`).
///
/// The WAL only starts over from its beginning when a write transaction begins with every
/// frame already copied, which back-to-back dispatch transactions never leave time for: under
/// a sustained load it would grow without bound, each commit appending to a longer file and
/// every page lookup searching a longer WAL index. So once it holds `restart_frames`, the
/// checkpointer takes the writer connection (in turn with the other writers) and checkpoints
/// there: only what was committed since its last pass is left to copy, and the next write
/// transaction starts the WAL over.
async fn checkpoints(checkpointer: SqlitePool, writer: SqlitePool, wal: WalLimits) {
    let mut tick = tokio::time::interval(wal.checkpoint_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match passive_checkpoint(&checkpointer).await {
            Ok(frames) if frames >= wal.restart_frames => passive_checkpoint(&writer).await,
            other => other,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; retrying");
        }
    }
}

/// Copies what it can of the WAL into the database; returns the frames the WAL holds.
async fn passive_checkpoint(conn: &SqlitePool) -> Result<i64, sqlx::Error> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(conn)
            .await?;
    Ok(frames)
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
        Self::open_file(path, WAL_LIMITS).await
    }

    async fn open_file(path: &str, wal: WalLimits) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000")
            .pragma("journal_size_limit", wal.size_limit.to_string());
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            // A file connection in this process cannot go stale: no round trip to its thread
            // before every transaction.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    .row_buffer_size(ROW_BUFFER),
            )
            .await?;
        MIGRATOR.run(&write).await?;
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
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
        Ok(SqliteStore {
            checkpointer: Some(tokio::spawn(checkpoints(checkpoint, write.clone(), wal))),
            write,
            read,
        })
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
            checkpointer: None,
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

    /// The log entries of `work_request_logs l` (to be narrowed with `WHERE l.…`): a row with
    /// `lines` gives one entry per element (see migration 0011), keyed by the row's entry id and
    /// the element's position, zero-padded so the keys sort in line order.
    pub(crate) const LOG_ENTRIES: &str = "SELECT l.time_created, l.entry_id || '.' || printf('%06d', COALESCE(j.key, 0)) AS entry_key, \
         COALESCE(j.value, l.message) AS message FROM work_request_logs l LEFT JOIN json_each(l.lines) j";

    /// The entries of the report lines kept in `work_requests w` (to be narrowed with
    /// `WHERE w.…`; migration 0012), keyed after any log row's entry id.
    pub(crate) const OUTCOME_ENTRIES: &str = "SELECT w.time_finished, 'z.' || printf('%06d', j.key), j.value \
         FROM work_requests w JOIN json_each(w.outcome_lines) j";

    /// A list of ids as [`in_ids`](crate::common) binds it: a JSON array, read by `json_each`.
    pub(crate) const IN_ID_LIST: &str = "IN (SELECT value FROM json_each($P))";

    pub(crate) fn id_list(ids: &[impl AsRef<str>]) -> String {
        serde_json::to_string(&ids.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
            .expect("serialisable")
    }

    /// The [`CompletionState`] of each work request among `ids`, as one aggregated
    /// row: the connection's thread hands each result row over on its own, which for the
    /// thousands of a dispatch batch costs more than building and parsing one JSON text.
    pub(crate) async fn completion_states(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        ids: &[&str],
    ) -> StoreResult<Vec<CompletionState>> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT json_group_array(json_array(id, managed_instance_id, status, operation_type, time_started, parent_id)) \
             FROM work_requests WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(Self::id_list(ids))
        .fetch_one(&mut **tx)
        .await?;
        crate::rows::from_json("completion states", &row.try_get::<String, _>(0)?)
    }

    /// Ends these work requests (each with its status and kept report lines) at `now`: one
    /// statement over a JSON array of `[id, status, lines]`.
    pub(crate) async fn finish_completed(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        rows: &[FinishedRow<'_>],
        now: i64,
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE work_requests SET status = v.value ->> 1, time_started = COALESCE(time_started, $1), \
             time_finished = $1, percent_complete = 100, outcome_lines = v.value ->> 2 \
             FROM json_each($2) v WHERE work_requests.id = v.value ->> 0",
        )
        .bind(now)
        .bind(serde_json::to_string(rows).expect("serialisable"))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Starts the ACCEPTED work requests among `ids` (IN_PROGRESS, started at `now`) and
    /// returns what their agents need, each row as one JSON value: sqlx copies every column
    /// of every result row on its own.
    pub(crate) async fn start_claimed(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        ids: &[String],
        now: i64,
    ) -> StoreResult<Vec<StartedWork>> {
        use sqlx::Row;
        let rows = sqlx::query(
            "UPDATE work_requests SET status = 'IN_PROGRESS', time_started = $1, time_claimed = $1 \
             WHERE status = 'ACCEPTED' AND id IN (SELECT value FROM json_each($2)) \
             RETURNING json_array(id, managed_instance_id, parent_id, description, action, time_accepted)",
        )
        .bind(now)
        .bind(Self::id_list(ids))
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| crate::rows::from_json("claimed work", &r.try_get::<String, _>(0)?))
            .collect()
    }

    /// Queued (unleased) work requests of each `(instance, limit)`, oldest first, at most its limit: one
    /// statement (the per-instance lookup runs as a correlated subquery on the queue's index).
    pub(crate) async fn claim_candidates(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        wanted: &[(String, u32)],
    ) -> StoreResult<Vec<String>> {
        use sqlx::Row;
        let mut out = vec![];
        for chunk in wanted.chunks(500) {
            // SQLite's LIMIT cannot refer to the outer row: take the largest, trim below.
            let most = chunk.iter().map(|(_, n)| *n).max().unwrap_or(0);
            let instances: Vec<&str> = chunk.iter().map(|(i, _)| i.as_str()).collect();
            // One aggregated row (see `completion_states`).
            let row = sqlx::query(
                "SELECT json_group_array(json_array(q.managed_instance_id, q.time_accepted, q.work_request_id)) \
                 FROM (SELECT value AS instance_id FROM json_each($1)) c JOIN work_queue q \
                 ON q.work_request_id IN (SELECT x.work_request_id FROM work_queue x WHERE x.managed_instance_id = c.instance_id AND x.lease_expires IS NULL \
                 ORDER BY x.time_accepted, x.work_request_id LIMIT $2)",
            )
            .bind(serde_json::to_string(&instances).expect("serialisable"))
            .bind(most as i64)
            .fetch_one(&mut **tx)
            .await?;
            let mut found: Vec<(String, i64, String)> =
                crate::rows::from_json("claim candidates", &row.try_get::<String, _>(0)?)?;
            found.sort();
            let mut taken: std::collections::HashMap<&str, u32> = Default::default();
            let limits: std::collections::HashMap<&str, u32> =
                chunk.iter().map(|(i, n)| (i.as_str(), *n)).collect();
            for (instance, _, id) in &found {
                let n = taken.entry(instance.as_str()).or_default();
                if *n < limits.get(instance.as_str()).copied().unwrap_or(0) {
                    *n += 1;
                    out.push(id.clone());
                }
            }
        }
        Ok(out)
    }

    /// Inserts `rows` (a value per column of `into`) as bound VALUES in chunks of 128, 64, …, 1
    /// rows, so at most eight statement texts per table exist and each is prepared once (a JSON
    /// array would be re-parsed for every column SQLite reads of each row).
    pub(crate) async fn insert_rows_then(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        into: &str,
        rows: &[Vec<Cell>],
        then: &str,
    ) -> StoreResult<()> {
        let mut rest = rows;
        while !rest.is_empty() {
            let n = if rest.len() >= 128 {
                128
            } else {
                1 << (usize::BITS - 1 - rest.len().leading_zeros())
            };
            let (chunk, tail) = rest.split_at(n);
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("{into} "));
            qb.push_values(chunk, |mut b, row| {
                for cell in row {
                    match cell {
                        Cell::Text(v) => b.push_bind(v.clone()),
                        Cell::Int(v) => b.push_bind(*v),
                        Cell::Float(v) => b.push_bind(*v),
                    };
                }
            });
            qb.push(then);
            qb.build().execute(&mut **tx).await?;
            rest = tail;
        }
        Ok(())
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
    "",
    "(SELECT value FROM json_each($P))",
    "json_each($P)"
);

crate::inventory::impl_inventory_store!(SqliteStore, sqlx::Sqlite, "sqlite", "");

crate::errata::impl_errata_store!(SqliteStore, sqlx::Sqlite, "", "", "");
crate::report::impl_report_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN",
    "json_array",
    "json_group_array({})",
    "json({})"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Back-to-back write transactions leave the WAL no moment to start over by itself (every
    /// frame copied when a write transaction begins): the checkpointer must make it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_sustained_write_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osm.db");
        let wal = WalLimits {
            checkpoint_every: Duration::from_millis(20),
            restart_frames: 256,
            size_limit: 2 << 20,
        };
        let store = SqliteStore::open_file(path.to_str().unwrap(), wal)
            .await
            .unwrap();
        let mut tx = store.write_tx().await.unwrap();
        sqlx::query("CREATE TABLE scratch (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let wal_file = dir.path().join("osm.db-wal");
        // 150 transactions of 100 fresh 4 kB rows: 60 MB through the WAL, however fast.
        let (mut written, mut largest) = (0u64, 0u64);
        for round in 0..150i64 {
            let mut tx = store.write_tx().await.unwrap();
            sqlx::query(
                "WITH RECURSIVE n(v) AS (SELECT 0 UNION ALL SELECT v + 1 FROM n WHERE v < 99) \
                 INSERT INTO scratch (id, pad) SELECT $1 * 100 + v, randomblob(4000) FROM n",
            )
            .bind(round)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            written += 100 * 4000;
            largest = largest.max(std::fs::metadata(&wal_file).unwrap().len());
        }
        assert!(
            largest < 16 << 20,
            "the WAL grew to {largest} bytes while {written} bytes went through it"
        );
    }
}
