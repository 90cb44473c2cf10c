//! SQLite, the embedded default. WAL with `synchronous=FULL`, so a committed write survives a
//! crash or power loss; one writer connection whose transactions start with `BEGIN IMMEDIATE`
//! (writers queue in osmd instead of failing with SQLITE_BUSY); several reader connections.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use osm_core::{OperationType, WorkRequestStatus};

use crate::open_work::{Held, OpenWork};
use crate::rows::{Cell, CompletionState, ExpiredLease, FinishedRow, StartedWork, parse_enum};
use crate::{Backend, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    /// Copies committed WAL frames into the database file (see [`checkpoints`]).
    checkpointer: Option<tokio::task::JoinHandle<()>>,
    /// Queued and held agent work, in memory instead of a queue table (see `open_work.rs`).
    open_work: Mutex<OpenWork>,
    /// Set when a write changed `open_work` and ended without committing: the index may
    /// differ from the rows, and the next write that uses it reloads it from them first.
    open_work_stale: AtomicBool,
    /// Whether the write holding the work turn changed `open_work` (and has not committed).
    open_work_changed: AtomicBool,
    /// Held from before a write transaction that reads or changes `open_work` begins until
    /// after it commits, so those writes change the index in their commit order.
    work_turn: tokio::sync::Mutex<()>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = self.checkpointer.take() {
            task.abort();
        }
    }
}

/// A write's turn at the open work (see [`SqliteStore::work_turn`]). A turn that changed the
/// index and ends without [`SqliteStore::open_work_committed`] (an error, a rollback, a failed
/// commit) leaves it stale for the next turn to reload, before the next turn can begin.
pub(crate) struct WorkTurn<'a> {
    store: &'a SqliteStore,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Drop for WorkTurn<'_> {
    fn drop(&mut self) {
        if self.store.open_work_changed.swap(false, Ordering::Relaxed) {
            self.store.open_work_stale.store(true, Ordering::Release);
        }
    }
}

/// Rows the writer connection's thread may hand over before it waits for them to be taken.
/// sqlx's default (50) makes a dispatch batch, which returns thousands of rows, wait for the
/// async side every 50 rows: two thread wake-ups each time.
const ROW_BUFFER: usize = 4096;

/// How long a write waits for the writer connection, and for the work turn before it, until it
/// gives up with an error that asks the caller to retry.
const WRITE_WAIT: Duration = Duration::from_secs(30);

/// The page size of a database this store creates. Each commit's cost is mostly writing its
/// dirty pages to the WAL and syncing them, and the pages a dispatch batch dirties are runs of
/// neighbouring work requests: with 16 KiB pages the same rows go out in a quarter of the WAL
/// frames, and the single writer drained 27 % more work requests a second than with SQLite's
/// 4 KiB default (docs/benchmarks.md, run R). A database created with another size keeps it:
/// SQLite can change the page size of a WAL database only by rewriting it (README, `osm.db`).
const PAGE_SIZE: u32 = 16 << 10;

/// How the WAL is kept from growing (see [`checkpoints`]).
#[derive(Debug, Clone, Copy)]
struct WalLimits {
    /// How often the background checkpoint runs.
    checkpoint_every: Duration,
    /// Bytes of WAL frames past which the checkpointer makes the WAL start over.
    restart_bytes: i64,
    /// Bytes the WAL file is cut back to when it starts over, if a burst made it larger.
    size_limit: i64,
}

/// A checkpoint every 500 ms; the WAL starts over past 32 MiB of frames and keeps at most 64 MiB
/// of file.
const WAL_LIMITS: WalLimits = WalLimits {
    checkpoint_every: Duration::from_millis(500),
    restart_bytes: 32 << 20,
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
/// every page lookup searching a longer WAL index. So once it holds `restart_bytes`, the
/// checkpointer takes the writer connection (in turn with the other writers) and checkpoints
/// there: only what was committed since its last pass is left to copy, and the next write
/// transaction starts the WAL over.
async fn checkpoints(checkpointer: SqlitePool, writer: SqlitePool, wal: WalLimits, page_size: i64) {
    let restart_frames = wal.restart_bytes / page_size.max(512);
    let mut tick = tokio::time::interval(wal.checkpoint_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = match passive_checkpoint(&checkpointer).await {
            Ok(frames) if frames >= restart_frames => passive_checkpoint(&writer).await,
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
    /// Bytes; [`PAGE_SIZE`] unless the database was created with another.
    pub page_size: i64,
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
            .pragma("journal_size_limit", wal.size_limit.to_string())
            // sqlx sets it before the journal mode, so a new file is created with it.
            .page_size(PAGE_SIZE);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            // A file connection in this process cannot go stale: no round trip to its thread
            // before every transaction.
            .test_before_acquire(false)
            .acquire_timeout(WRITE_WAIT)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    .row_buffer_size(ROW_BUFFER),
            )
            .await?;
        MIGRATOR.run(&write).await?;
        let (page_size,): (i64,) = sqlx::query_as("PRAGMA page_size").fetch_one(&write).await?;
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
        let checkpointer = tokio::spawn(checkpoints(checkpoint, write.clone(), wal, page_size));
        Self::with_pools(write, read, Some(checkpointer)).await
    }

    /// The store on its pools, its open work read from the rows.
    async fn with_pools(
        write: SqlitePool,
        read: SqlitePool,
        checkpointer: Option<tokio::task::JoinHandle<()>>,
    ) -> StoreResult<SqliteStore> {
        let store = SqliteStore {
            write,
            read,
            checkpointer,
            open_work: Mutex::default(),
            open_work_stale: AtomicBool::new(true),
            open_work_changed: AtomicBool::new(false),
            work_turn: tokio::sync::Mutex::default(),
        };
        store.load_open_work().await?;
        Ok(store)
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
        Self::with_pools(pool.clone(), pool, None).await
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
        let page_size = int("PRAGMA page_size").await?;
        let journal_mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(SqliteSettings {
            journal_mode,
            synchronous,
            foreign_keys,
            busy_timeout_ms,
            page_size,
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

    /// A write transaction of the work-request engine: an ordinary write (SQLite plans a
    /// statement once for any bound values).
    pub(crate) async fn engine_tx(&self) -> Result<Tx, sqlx::Error> {
        self.write_tx().await
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

    /// Reads the open work from the rows into memory (see `open_work.rs`): every ACCEPTED
    /// work request an agent runs is queued, every IN_PROGRESS or CANCELLING one with a lease
    /// is held (work requests from before actions were stored hold theirs too). One pass over
    /// `work_requests`, at open and after a write failed midway.
    async fn load_open_work(&self) -> StoreResult<()> {
        let _turn = self.work_turn.lock().await;
        let mut tx = self.write_tx().await?;
        self.open_work_fresh(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reloads the open work inside this write transaction (holding the work turn) if a write
    /// that changed it did not commit.
    async fn open_work_fresh(&self, tx: &mut Tx) -> StoreResult<()> {
        if !self.open_work_stale.load(Ordering::Acquire) {
            return Ok(());
        }
        type OpenRow = (
            String,
            String,
            i64,
            String,
            String,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<OpenRow> = sqlx::query_as(
            "SELECT id, managed_instance_id, time_accepted, status, operation_type, time_started, parent_id, lease_expires \
             FROM work_requests WHERE status IN ('ACCEPTED', 'IN_PROGRESS', 'CANCELLING') \
             AND managed_instance_id IS NOT NULL AND (action IS NOT NULL OR status <> 'ACCEPTED')",
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut open = OpenWork::default();
        for (id, instance, time_accepted, status, operation, started, parent, lease) in rows {
            let status: WorkRequestStatus = parse_enum("status", &status)?;
            match (status, lease) {
                (WorkRequestStatus::Accepted, _) => open.queue(&id, &instance, time_accepted),
                // An IN_PROGRESS request no agent claimed (set by hand) has no lease to expire.
                (_, None) => {}
                (status, Some(lease_expires)) => open.hold(
                    &id,
                    Held {
                        instance: instance.into(),
                        time_accepted,
                        status,
                        operation: parse_enum("operation_type", &operation)?,
                        started,
                        parent,
                        lease_expires,
                    },
                ),
            }
        }
        *self
            .open_work
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = open;
        self.open_work_stale.store(false, Ordering::Release);
        Ok(())
    }

    /// Changes the open work from inside a write transaction holding the work turn; unless
    /// [`Self::open_work_committed`] follows, the end of the turn marks the index stale (a
    /// panic inside `change` too: the poisoned lock is then taken over and its contents
    /// replaced by the reload).
    fn open_work_change<R>(&self, change: impl FnOnce(&mut OpenWork) -> R) -> R {
        debug_assert!(
            self.work_turn.try_lock().is_err(),
            "open work changed outside the work turn"
        );
        self.open_work_changed.store(true, Ordering::Relaxed);
        change(
            &mut self
                .open_work
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn open_work_read<R>(&self, read: impl FnOnce(&OpenWork) -> R) -> R {
        read(
            &self
                .open_work
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The turn a write that reads or changes the open work takes before its transaction.
    pub(crate) async fn work_turn(&self) -> StoreResult<WorkTurn<'_>> {
        self.work_turn_within(WRITE_WAIT).await
    }

    /// The work turn, or the error of a writer connection that did not come free in time (a
    /// 503 for the caller) if the writes before this one hold it longer than `wait`.
    async fn work_turn_within(&self, wait: Duration) -> StoreResult<WorkTurn<'_>> {
        let guard = tokio::time::timeout(wait, self.work_turn.lock())
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))?;
        Ok(WorkTurn {
            _guard: guard,
            store: self,
        })
    }

    /// The write holding the work turn committed: the open work matches the rows.
    pub(crate) fn open_work_committed(&self) {
        self.open_work_changed.store(false, Ordering::Relaxed);
    }

    /// The [`CompletionState`] of each work request among `ids`: those an agent holds from
    /// memory, the others (a late or foreign report) from their rows.
    pub(crate) async fn completion_states(
        &self,
        tx: &mut Tx,
        ids: &[&str],
    ) -> StoreResult<Vec<CompletionState>> {
        use sqlx::Row;
        self.open_work_fresh(tx).await?;
        let mut states = Vec::with_capacity(ids.len());
        let mut unheld = vec![];
        self.open_work_read(|open| {
            for id in ids {
                match open.held(id) {
                    Some(h) => states.push((
                        id.to_string(),
                        Some(h.instance.to_string()),
                        h.status.as_str().to_string(),
                        h.operation.as_str().to_string(),
                        h.started,
                        h.parent.clone(),
                        None,
                    )),
                    None => unheld.push(*id),
                }
            }
        });
        if !unheld.is_empty() {
            let row = sqlx::query(
                "SELECT json_group_array(json_array(id, managed_instance_id, status, operation_type, time_started, parent_id, NULL)) \
                 FROM work_requests WHERE id IN (SELECT value FROM json_each($1))",
            )
            .bind(Self::id_list(&unheld))
            .fetch_one(&mut **tx)
            .await?;
            let read: Vec<CompletionState> =
                crate::rows::from_json("completion states", &row.try_get::<String, _>(0)?)?;
            states.extend(read);
        }
        Ok(states)
    }

    /// Ends these work requests (each with its status and kept report lines) at `now`, and
    /// their leases: one statement over a JSON array of `[id, status, lines]`.
    pub(crate) async fn finish_completed(
        &self,
        tx: &mut Tx,
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
        .bind(
            serde_json::to_string(&rows.iter().map(|(id, status, lines, _)| (id, status, lines)).collect::<Vec<_>>())
                .expect("serialisable"),
        )
        .execute(&mut **tx)
        .await?;
        self.open_work_change(|open| {
            for (id, ..) in rows {
                open.release(id);
            }
        });
        Ok(())
    }

    /// Starts the ACCEPTED work requests among `ids` (IN_PROGRESS, started at `now`, leased
    /// until `lease_until`) and returns what their agents need, each row as one JSON value:
    /// sqlx copies every column of every result row on its own. Candidates no longer
    /// ACCEPTED leave the queue.
    pub(crate) async fn start_claimed(
        &self,
        tx: &mut Tx,
        ids: &[String],
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<StartedWork>> {
        use sqlx::Row;
        let rows = sqlx::query(
            "UPDATE work_requests SET status = 'IN_PROGRESS', time_started = $1, time_claimed = $1, lease_expires = $2 \
             WHERE status = 'ACCEPTED' AND id IN (SELECT value FROM json_each($3)) \
             RETURNING json_array(id, managed_instance_id, parent_id, description, action, time_accepted, operation_type)",
        )
        .bind(now)
        .bind(lease_until)
        .bind(Self::id_list(ids))
        .fetch_all(&mut **tx)
        .await?;
        type Started = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            String,
        );
        let rows: Vec<Started> = rows
            .iter()
            .map(|r| crate::rows::from_json("claimed work", &r.try_get::<String, _>(0)?))
            .collect::<StoreResult<_>>()?;
        let operations: Vec<OperationType> = rows
            .iter()
            .map(|r| parse_enum("operation_type", &r.6))
            .collect::<StoreResult<_>>()?;
        self.open_work_change(|open| {
            for id in ids {
                open.unqueue(id);
            }
            for (r, operation) in rows.iter().zip(operations) {
                open.hold(
                    &r.0,
                    Held {
                        instance: r.1.as_deref().unwrap_or_default().into(),
                        time_accepted: r.5,
                        status: WorkRequestStatus::InProgress,
                        operation,
                        started: Some(now),
                        parent: r.2.clone(),
                        lease_expires: lease_until,
                    },
                );
            }
        });
        Ok(rows
            .into_iter()
            .map(|(id, instance, parent, description, action, accepted, _)| {
                (id, instance, parent, description, action, accepted)
            })
            .collect())
    }

    /// Queued work requests of each `(instance, limit)`, oldest first, at most its limit
    /// ([`start_claimed`](Self::start_claimed) leases those it starts).
    pub(crate) async fn claim_candidates(
        &self,
        tx: &mut Tx,
        wanted: &[(String, u32)],
        _lease_until: i64,
    ) -> StoreResult<Vec<String>> {
        self.open_work_fresh(tx).await?;
        Ok(self.open_work_read(|open| {
            wanted
                .iter()
                .flat_map(|(instance, limit)| open.queued_of(instance, *limit as usize))
                .map(str::to_string)
                .collect()
        }))
    }

    /// Queues new work requests for their agents: `(id, instance, time accepted)`.
    pub(crate) async fn queue_work(
        &self,
        tx: &mut Tx,
        queued: &[(&str, &str, i64)],
    ) -> StoreResult<()> {
        if queued.is_empty() {
            return Ok(());
        }
        self.open_work_fresh(tx).await?;
        self.open_work_change(|open| {
            for (id, instance, accepted) in queued {
                open.queue(id, instance, *accepted);
            }
        });
        Ok(())
    }

    /// Moves the deadline of every lease `instance`'s agent holds to `until`; returns those
    /// work requests and their statuses, oldest first.
    pub(crate) async fn renew_leases(
        &self,
        tx: &mut Tx,
        instance: &str,
        until: i64,
    ) -> StoreResult<Vec<(String, WorkRequestStatus)>> {
        self.open_work_fresh(tx).await?;
        let held = self.open_work_change(|open| open.renew(instance, until));
        if !held.is_empty() {
            let ids: Vec<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
            sqlx::query("UPDATE work_requests SET lease_expires = $1 WHERE id IN (SELECT value FROM json_each($2))")
                .bind(until)
                .bind(Self::id_list(&ids))
                .execute(&mut **tx)
                .await?;
        }
        Ok(held)
    }

    /// Up to `limit` held work requests whose lease ended before `now`, earliest first: id,
    /// instance name, deadline, parent.
    pub(crate) async fn expired_leases(
        &self,
        tx: &mut Tx,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<ExpiredLease>> {
        use sqlx::Row;
        self.open_work_fresh(tx).await?;
        let expired = self.open_work_read(|open| open.expired(now, limit as usize));
        if expired.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<&str> = expired.iter().map(|(id, _)| id.as_str()).collect();
        let row = sqlx::query(
            "SELECT json_group_object(id, json_array(managed_instance_name, parent_id)) \
             FROM work_requests WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(Self::id_list(&ids))
        .fetch_one(&mut **tx)
        .await?;
        let mut names: std::collections::HashMap<String, (Option<String>, Option<String>)> =
            crate::rows::from_json("expired leases", &row.try_get::<String, _>(0)?)?;
        Ok(expired
            .into_iter()
            .map(|(id, deadline)| {
                let (host, parent) = names.remove(&id).unwrap_or_default();
                (id, host, deadline, parent)
            })
            .collect())
    }

    /// The leases of these work requests ended with them.
    pub(crate) async fn end_leases(&self, _tx: &mut Tx, ids: &[String]) -> StoreResult<()> {
        self.open_work_change(|open| {
            for id in ids {
                open.release(id);
            }
        });
        Ok(())
    }

    /// Before a transition of `id`: nothing to lock, SQLite has one writer.
    pub(crate) async fn lock_queued(&self, tx: &mut Tx, _id: &str) -> StoreResult<()> {
        self.open_work_fresh(tx).await
    }

    /// After `id` moved to `to` (from ACCEPTED, IN_PROGRESS or CANCELLING): it is queued
    /// exactly while ACCEPTED and held exactly while its agent has it.
    pub(crate) async fn transitioned(
        &self,
        _tx: &mut Tx,
        id: &str,
        to: WorkRequestStatus,
    ) -> StoreResult<()> {
        if to == WorkRequestStatus::Accepted {
            return Ok(());
        }
        self.open_work_change(|open| {
            open.unqueue(id);
            match to {
                WorkRequestStatus::InProgress | WorkRequestStatus::Cancelling => {
                    open.set_status(id, to);
                }
                _ => open.release(id),
            }
        });
        Ok(())
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
            restart_bytes: 1 << 20,
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

    /// A write that cannot get the work turn in time ends with an error that asks to retry
    /// (a 503), instead of waiting as long as the write ahead of it takes; the turn is there
    /// again once that write ends.
    #[tokio::test]
    async fn a_write_waits_for_the_work_turn_only_so_long() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let held = store.work_turn().await.unwrap();
        let err = match store.work_turn_within(Duration::from_millis(50)).await {
            Ok(_) => panic!("the work turn was taken twice"),
            Err(e) => e,
        };
        assert!(err.is_busy(), "{err}");
        drop(held);
        store
            .work_turn_within(Duration::from_millis(50))
            .await
            .unwrap();
    }

    /// A new database is created with [`PAGE_SIZE`]; one created before with SQLite's default
    /// keeps its 4 KiB pages and is migrated and served as it is.
    #[tokio::test]
    async fn new_databases_get_16_kib_pages_and_older_ones_keep_theirs() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        let store = SqliteStore::open_file(new.to_str().unwrap(), WAL_LIMITS)
            .await
            .unwrap();
        assert_eq!(store.settings().await.unwrap().page_size, 16384);

        let old = dir.path().join("old.db");
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&old)
            .create_if_missing(true)
            .page_size(4096)
            .journal_mode(SqliteJournalMode::Wal);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE before_osm (id INTEGER PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let store = SqliteStore::open_file(old.to_str().unwrap(), WAL_LIMITS)
            .await
            .unwrap();
        let settings = store.settings().await.unwrap();
        assert_eq!(settings.page_size, 4096);
        assert_eq!(settings.journal_mode.to_lowercase(), "wal");
        let mut tx = store.write_tx().await.unwrap();
        let (work_requests,): (i64,) = sqlx::query_as("SELECT count(*) FROM work_requests")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(work_requests, 0, "migrated");
        tx.commit().await.unwrap();
    }

    /// A write that changed the open work and ended without committing (here dropped, so
    /// rolled back) leaves the index stale, and the next write reads it back from the rows:
    /// the work it queued is gone with it. A committed one stays.
    #[tokio::test]
    async fn open_work_changed_by_a_write_that_did_not_commit_is_read_back() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let instance = "ocid1.instance.oc1..m".to_string();
        let queue = async |id: &str, commit: bool| {
            let _turn = store.work_turn().await.unwrap();
            let mut tx = store.write_tx().await.unwrap();
            store
                .queue_work(&mut tx, &[(id, instance.as_str(), 1)])
                .await
                .unwrap();
            if commit {
                tx.commit().await.unwrap();
                store.open_work_committed();
            }
        };
        let queued = async || {
            let _turn = store.work_turn().await.unwrap();
            let mut tx = store.write_tx().await.unwrap();
            store
                .claim_candidates(&mut tx, &[(instance.clone(), 10)], 0)
                .await
                .unwrap()
        };
        queue("ocid1.osmsworkrequest.oc1..rolled-back", false).await;
        assert!(store.open_work_stale.load(Ordering::Acquire));
        assert!(queued().await.is_empty(), "read back from the rows");
        assert!(!store.open_work_stale.load(Ordering::Acquire));
        // Queued in memory only (no row here), committed: it stays until the next reload.
        queue("ocid1.osmsworkrequest.oc1..committed", true).await;
        assert!(!store.open_work_stale.load(Ordering::Acquire));
        assert_eq!(queued().await, ["ocid1.osmsworkrequest.oc1..committed"]);
    }
}
