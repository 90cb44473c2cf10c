//! PostgreSQL, for several osmd replicas sharing one database. Migrations run under the
//! migrator's advisory lock, so replicas starting together apply them once.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use osm_core::WorkRequestStatus;

use crate::rows::{Cell, CompletionState, ExpiredLease, FinishedRow, StartedWork, parse_enum};
use crate::{Backend, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// What finishing a work request writes, joined with `v(…, status, lines)` by each of
/// [`PgStore::finish_completed`]'s two statements (so both finish a request alike).
macro_rules! finish_update {
    () => {
        "UPDATE work_requests w SET status = v.status, time_started = COALESCE(w.time_started, $1), \
         time_finished = $1, percent_complete = 100, outcome_lines = v.lines "
    };
}

/// What [`PgStore::work_turn`] hands out: nothing to hold.
pub(crate) struct NoTurn;

/// Removes the queue rows (queued or leased) of these work requests, in one statement.
async fn dequeue(tx: &mut Tx, ids: &[impl AsRef<str>]) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = ids.iter().map(AsRef::as_ref).collect();
    sqlx::query("DELETE FROM work_queue WHERE work_request_id = ANY($1::text[])")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub struct PgStore {
    pool: PgPool,
    /// The server has `plan_cache_mode` (PostgreSQL 12 and newer); see [`PgStore::engine_tx`].
    plan_cache_mode: bool,
}

impl PgStore {
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&pool)
            .await?;
        let plan_cache_mode = version.parse::<u32>().is_ok_and(|v| v >= 120_000);
        Ok(PgStore {
            pool,
            plan_cache_mode,
        })
    }

    pub(crate) fn read(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A write transaction of the work-request engine (dispatch, lease renewals and rescues),
    /// whose statements take arrays of anything from one to thousands of ids or row locators.
    /// Each statement is planned once per connection for arrays of any length (a generic
    /// plan: one index probe, or one visit to a locator, per element). Otherwise PostgreSQL
    /// plans a connection's first five executions of a statement for the array at hand, and
    /// for a few thousand elements on a table of a few thousand pages it picks a sequential
    /// scan with a hash join (measured: 55 ms for 3,000 locators on 20,000 rows, where the
    /// visits take 3 ms). The setting is a statement of its own inside the transaction, so
    /// that if it fails the transaction is rolled back like any other (sqlx does not roll back
    /// a failed custom `BEGIN`); a server older than the setting plans as before.
    pub(crate) async fn engine_tx(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if self.plan_cache_mode {
            sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The log entries of `work_request_logs l` (to be narrowed with `WHERE l.…`): a row with
    /// `lines` gives one entry per element (see migration 0011), keyed by the row's entry id and
    /// the element's position, zero-padded so the keys sort in line order.
    pub(crate) const LOG_ENTRIES: &str = "SELECT l.time_created, l.entry_id || '.' || lpad(COALESCE(j.idx, 0)::text, 6, '0') AS entry_key, \
         COALESCE(j.value, l.message) AS message FROM work_request_logs l \
         LEFT JOIN LATERAL jsonb_array_elements_text(l.lines::jsonb) WITH ORDINALITY AS j(value, idx) ON true";

    /// The entries of the report lines kept in `work_requests w` (to be narrowed with
    /// `WHERE w.…`; migration 0012), keyed after any log row's entry id.
    pub(crate) const OUTCOME_ENTRIES: &str = "SELECT w.time_finished, 'z.' || lpad(j.idx::text, 6, '0'), j.value \
         FROM work_requests w CROSS JOIN LATERAL jsonb_array_elements_text(w.outcome_lines::jsonb) WITH ORDINALITY AS j(value, idx)";

    /// A list of ids as [`in_ids`](crate::common) binds it: a text array (no JSON to parse, and
    /// `= ANY` needs no de-duplicating step before the index lookups).
    pub(crate) const IN_ID_LIST: &str = "= ANY($P::text[])";

    pub(crate) fn id_list(ids: &[impl AsRef<str>]) -> Vec<&str> {
        ids.iter().map(AsRef::as_ref).collect()
    }

    /// The work turn of a write that reads or changes the queue: PostgreSQL's queue is a
    /// table whose rows each transaction locks, so there is nothing to take.
    pub(crate) async fn work_turn(&self) -> StoreResult<NoTurn> {
        Ok(NoTurn)
    }

    /// The queue is a table: nothing to bring in step after a commit.
    pub(crate) fn open_work_committed(&self) {}

    /// The [`CompletionState`] of each work request among `ids`, locked in id
    /// order (so replicas completing overlapping batches cannot deadlock), with its `ctid`.
    pub(crate) async fn completion_states(
        &self,
        tx: &mut Tx,
        ids: &[&str],
    ) -> StoreResult<Vec<CompletionState>> {
        // Tuples decode by column position.
        Ok(sqlx::query_as(
            "SELECT id, managed_instance_id, status, operation_type, time_started, parent_id, ctid::text FROM work_requests \
             WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        )
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Ends these work requests (each with its status and kept report lines) at `now`: one
    /// statement over parallel arrays; their leases (queue rows) end with them.
    ///
    /// Each row is found where [`completion_states`](Self::completion_states) locked it (its
    /// `ctid`), not through the primary key: a key lookup costs about as much again as the
    /// update itself (measured: 500 rows by id 4.1–5.5 ms, by `ctid` 2.0–3.4 ms). The id is
    /// checked too, and a row not found there is updated by id.
    pub(crate) async fn finish_completed(
        &self,
        tx: &mut Tx,
        rows: &[FinishedRow<'_>],
        now: i64,
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let statuses: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let lines: Vec<Option<&str>> = rows.iter().map(|r| r.2.as_deref()).collect();
        let locators: Vec<&str> = rows
            .iter()
            .map(|r| r.3.as_deref().unwrap_or("(0,0)"))
            .collect();
        let found: Vec<String> = sqlx::query_scalar(concat!(
            finish_update!(),
            "FROM unnest($2::tid[], $3::text[], $4::text[], $5::text[]) AS v(locator, id, status, lines) \
             WHERE w.ctid = v.locator AND w.id = v.id RETURNING w.id"
        ))
        .bind(now)
        .bind(&locators)
        .bind(&ids)
        .bind(&statuses)
        .bind(&lines)
        .fetch_all(&mut **tx)
        .await?;
        if found.len() < rows.len() {
            let found: std::collections::HashSet<&str> = found.iter().map(String::as_str).collect();
            let missed: Vec<usize> = (0..rows.len())
                .filter(|&i| !found.contains(ids[i]))
                .collect();
            sqlx::query(concat!(
                finish_update!(),
                "FROM unnest($2::text[], $3::text[], $4::text[]) AS v(id, status, lines) WHERE w.id = v.id"
            ))
            .bind(now)
            .bind(missed.iter().map(|&i| ids[i]).collect::<Vec<_>>())
            .bind(missed.iter().map(|&i| statuses[i]).collect::<Vec<_>>())
            .bind(missed.iter().map(|&i| lines[i]).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        }
        dequeue(tx, &ids).await
    }

    /// Starts the ACCEPTED work requests among `ids` (IN_PROGRESS, started at `now`; their
    /// [`claim_candidates`](Self::claim_candidates) leased them) and returns what their agents
    /// need.
    pub(crate) async fn start_claimed(
        &self,
        tx: &mut Tx,
        ids: &[String],
        now: i64,
        _lease_until: i64,
    ) -> StoreResult<Vec<StartedWork>> {
        let rows: Vec<StartedWork> = sqlx::query_as(
            "UPDATE work_requests SET status = 'IN_PROGRESS', time_started = $1, time_claimed = $1 \
             WHERE status = 'ACCEPTED' AND id = ANY($2::text[]) \
             RETURNING id, managed_instance_id, parent_id, description, action, time_accepted",
        )
        .bind(now)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?;
        let started: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        // A queued request that is no longer ACCEPTED leaves the queue (the store keeps the
        // two in step, so this only mends an inconsistency).
        if started.len() < ids.len() {
            let stale: Vec<&str> = ids
                .iter()
                .map(String::as_str)
                .filter(|id| !started.contains(id))
                .collect();
            dequeue(tx, &stale).await?;
        }
        Ok(rows)
    }

    /// Queued (unleased) work requests of each `(instance, limit)`, oldest first, at most its
    /// limit, leased until `lease_until`: a claimed request keeps its queue row, which then
    /// carries the lease (migration 0014); one that turns out not to be ACCEPTED leaves the
    /// queue in [`start_claimed`](Self::start_claimed). Rows another replica is claiming are
    /// skipped, not waited for. One statement: the rows it locks are leased where they lie
    /// (`ctid`), without a second lookup of each. A row another transaction changed but left
    /// unleased after this statement began would be locked here under its new `ctid`, which
    /// the update's older snapshot does not see: it would stay queued for the next claim.
    /// Every write to a queue row leases it or deletes it, so that cannot happen now; keep it so.
    pub(crate) async fn claim_candidates(
        &self,
        tx: &mut Tx,
        wanted: &[(String, u32)],
        lease_until: i64,
    ) -> StoreResult<Vec<String>> {
        let instances: Vec<&str> = wanted.iter().map(|(i, _)| i.as_str()).collect();
        let limits: Vec<i64> = wanted.iter().map(|(_, n)| *n as i64).collect();
        Ok(sqlx::query_scalar(
            "UPDATE work_queue SET lease_expires = $3 WHERE ctid = ANY(ARRAY(\
             SELECT q.ctid FROM unnest($1::text[], $2::int8[]) AS c(instance_id, lim) CROSS JOIN LATERAL \
             (SELECT x.ctid FROM work_queue x WHERE x.managed_instance_id = c.instance_id AND x.lease_expires IS NULL \
             ORDER BY x.time_accepted, x.work_request_id LIMIT c.lim FOR UPDATE SKIP LOCKED) q)) \
             RETURNING work_request_id",
        )
        .bind(instances)
        .bind(limits)
        .bind(lease_until)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Queues new work requests for their agents: `(id, instance, time accepted)`.
    pub(crate) async fn queue_work(
        &self,
        tx: &mut Tx,
        queued: &[(&str, &str, i64)],
    ) -> StoreResult<()> {
        let rows: Vec<Vec<Cell>> = queued
            .iter()
            .map(|(id, instance, accepted)| {
                vec![
                    Cell::text(*id),
                    Cell::text(*instance),
                    Cell::Int(Some(*accepted)),
                ]
            })
            .collect();
        Self::insert_rows_then(
            tx,
            "INSERT INTO work_queue (work_request_id, managed_instance_id, time_accepted)",
            &rows,
            "",
        )
        .await
    }

    /// Moves the deadline of every lease `instance`'s agent holds to `until`; returns those
    /// work requests and their statuses, oldest first.
    pub(crate) async fn renew_leases(
        &self,
        tx: &mut Tx,
        instance: &str,
        until: i64,
    ) -> StoreResult<Vec<(String, WorkRequestStatus)>> {
        sqlx::query("UPDATE work_queue SET lease_expires = $1 WHERE managed_instance_id = $2 AND lease_expires IS NOT NULL")
            .bind(until)
            .bind(instance)
            .execute(&mut **tx)
            .await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT w.id, w.status FROM work_queue q JOIN work_requests w ON w.id = q.work_request_id \
             WHERE q.managed_instance_id = $1 AND q.lease_expires IS NOT NULL ORDER BY w.time_accepted, w.id",
        )
        .bind(instance)
        .fetch_all(&mut **tx)
        .await?;
        rows.into_iter()
            .map(|(id, status)| Ok((id, parse_enum("status", &status)?)))
            .collect()
    }

    /// Up to `limit` leases that ended before `now`, earliest first, locked (another replica
    /// takes the others): id, instance name, deadline, parent.
    pub(crate) async fn expired_leases(
        &self,
        tx: &mut Tx,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<ExpiredLease>> {
        Ok(sqlx::query_as(
            "SELECT w.id, w.managed_instance_name, q.lease_expires, w.parent_id FROM work_queue q \
             JOIN work_requests w ON w.id = q.work_request_id WHERE q.lease_expires < $1 \
             ORDER BY q.lease_expires LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// The leases (queue rows) of these work requests ended with them.
    pub(crate) async fn end_leases(&self, tx: &mut Tx, ids: &[String]) -> StoreResult<()> {
        dequeue(tx, ids).await
    }

    /// Before a transition of `id`: its queue row is locked first, as a claim takes them
    /// (queue row, then the request); the other order could deadlock with a claim.
    pub(crate) async fn lock_queued(&self, tx: &mut Tx, id: &str) -> StoreResult<()> {
        sqlx::query("SELECT work_request_id FROM work_queue WHERE work_request_id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(())
    }

    /// After `id` moved to `to`: queued (no lease) exactly while ACCEPTED, leased exactly
    /// while an agent holds it, so a request leaving ACCEPTED leaves the queue and one ending
    /// loses its lease.
    pub(crate) async fn transitioned(
        &self,
        tx: &mut Tx,
        id: &str,
        to: WorkRequestStatus,
    ) -> StoreResult<()> {
        if to == WorkRequestStatus::Accepted {
            return Ok(());
        }
        let ends = !matches!(
            to,
            WorkRequestStatus::InProgress | WorkRequestStatus::Cancelling
        );
        sqlx::query(
            "DELETE FROM work_queue WHERE work_request_id = $1 AND (lease_expires IS NULL OR $2)",
        )
        .bind(id)
        .bind(ends)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Inserts `rows` (a value per column of `into`) in one statement whatever their number:
    /// one typed array per column, `unnest`ed into rows (one statement text per table, planned
    /// once; about half the server's work of extracting the columns from a JSON array).
    pub(crate) async fn insert_rows_then(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        into: &str,
        rows: &[Vec<Cell>],
        then: &str,
    ) -> StoreResult<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        // A column's type is its first row's cell's (the rows of a call come from one place).
        let types: Vec<String> = first
            .iter()
            .enumerate()
            .map(|(i, cell)| match cell {
                Cell::Text(_) => format!("${}::text[]", i + 1),
                Cell::Int(_) => format!("${}::int8[]", i + 1),
                Cell::Float(_) => format!("${}::float8[]", i + 1),
            })
            .collect();
        debug_assert!(rows.iter().all(|r| {
            r.len() == first.len()
                && r.iter()
                    .zip(first)
                    .all(|(a, b)| std::mem::discriminant(a) == std::mem::discriminant(b))
        }));
        let sql = format!("{into} SELECT * FROM unnest({}){then}", types.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for column in 0..first.len() {
            query = match &first[column] {
                Cell::Text(_) => query.bind(
                    rows.iter()
                        .map(|r| match &r[column] {
                            Cell::Text(v) => v.clone(),
                            _ => None,
                        })
                        .collect::<Vec<Option<String>>>(),
                ),
                Cell::Int(_) => query.bind(
                    rows.iter()
                        .map(|r| match &r[column] {
                            Cell::Int(v) => *v,
                            _ => None,
                        })
                        .collect::<Vec<Option<i64>>>(),
                ),
                Cell::Float(_) => query.bind(
                    rows.iter()
                        .map(|r| match &r[column] {
                            Cell::Float(v) => Some(*v),
                            _ => None,
                        })
                        .collect::<Vec<Option<f64>>>(),
                ),
            };
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    pub(crate) async fn backup_impl(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Conflict(
            "osmd backup copies SQLite stores; back up PostgreSQL with pg_dump (e.g. pg_dump -Fc DBNAME > osm.dump)".into(),
        ))
    }
}

crate::common::impl_store!(
    PgStore,
    sqlx::Postgres,
    Backend::Postgres,
    "postgres",
    " FOR UPDATE",
    " FOR SHARE",
    " FOR UPDATE SKIP LOCKED",
    // Through an array so the planner guesses 10 elements (its default for an array it cannot
    // see) instead of a set-returning function's 100: at 100 it answers a join of a few ids
    // with a table of 10,000 rows by scanning the table (5–8 ms a statement, measured with
    // the firing bench) instead of probing its primary key (0.1–0.5 ms). Probing stays the
    // right plan for lists of thousands.
    "(SELECT unnest(ARRAY(SELECT jsonb_array_elements_text($P::jsonb))))",
    "unnest(ARRAY(SELECT jsonb_array_elements($P::jsonb))) AS j(value)"
);

crate::inventory::impl_inventory_store!(PgStore, sqlx::Postgres, "postgres", " FOR UPDATE");

// The advisory lock (key 0x6f736d07, "osm" and migration 7) orders imports and uploads.
crate::errata::impl_errata_store!(
    PgStore,
    sqlx::Postgres,
    " FOR UPDATE",
    "SELECT pg_advisory_xact_lock_shared(1869835527)",
    "SELECT pg_advisory_xact_lock(1869835527)"
);

// One snapshot for the report's statements; json_agg is NULL over no rows.
crate::report::impl_report_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "json_build_array",
    "COALESCE(CAST(json_agg({}) AS text), '[]')",
    "CAST({} AS json)"
);

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// The PostgreSQL the conformance tests use too.
    fn admin_url() -> String {
        std::env::var("OSM_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A store on a database of its own (dropped by [`drop_database`]) on [`admin_url`]'s
    /// server.
    async fn fresh_store() -> (PgStore, String) {
        let admin = admin_url();
        let name = format!("osm_unit_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        (PgStore::connect(&url).await.unwrap(), name)
    }

    async fn drop_database(store: PgStore, name: &str) {
        store.pool.close().await;
        let mut conn = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }

    /// A completion updates each row where it was locked; one that is no longer there (a new
    /// version of it was written in between) is still finished, found by its id, and every
    /// lease ends.
    #[tokio::test]
    async fn a_completion_finishes_rows_found_where_they_were_locked_or_by_id() {
        let (store, name) = fresh_store().await;
        for id in ["wr-in-place", "wr-moved"] {
            sqlx::query(
                "INSERT INTO work_requests (id, compartment_id, operation_type, os_family, time_accepted, resources, status, percent_complete, managed_instance_id) \
                 VALUES ($1, 'c', 'UPDATEALL', 'LINUX', 1, '[]', 'IN_PROGRESS', 0, 'mi')",
            )
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO work_queue (work_request_id, managed_instance_id, time_accepted, lease_expires) VALUES ($1, 'mi', 1, 10)")
                .bind(id)
                .execute(&store.pool)
                .await
                .unwrap();
        }
        let mut tx = store.engine_tx().await.unwrap();
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(mode, "force_generic_plan", "the engine plans for any array");
        let states = store
            .completion_states(&mut tx, &["wr-in-place", "wr-moved"])
            .await
            .unwrap();
        let rows: Vec<FinishedRow> = states
            .iter()
            .map(|s| {
                assert!(s.6.is_some(), "{} has a locator", s.0);
                (s.0.as_str(), "SUCCEEDED", None, s.6.clone())
            })
            .collect();
        // A new version of one row, so its locator points at a version that is gone.
        sqlx::query("UPDATE work_requests SET percent_complete = 50 WHERE id = 'wr-moved'")
            .execute(&mut *tx)
            .await
            .unwrap();
        store.finish_completed(&mut tx, &rows, 99).await.unwrap();
        tx.commit().await.unwrap();
        let finished: Vec<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT id, status, time_finished FROM work_requests ORDER BY id")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            finished,
            vec![
                ("wr-in-place".into(), "SUCCEEDED".into(), Some(99)),
                ("wr-moved".into(), "SUCCEEDED".into(), Some(99)),
            ]
        );
        let leases: i64 = sqlx::query_scalar("SELECT count(*) FROM work_queue")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(leases, 0);
        drop_database(store, &name).await;
    }
}
