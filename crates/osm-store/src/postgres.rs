//! PostgreSQL, for several osmd replicas sharing one database. Migrations run under the
//! migrator's advisory lock, so replicas starting together apply them once.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::rows::{Cell, CompletionState, FinishedRow, StartedWork};
use crate::{Backend, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub(crate) fn read(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
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

    /// The [`CompletionState`] of each work request among `ids`, locked in id
    /// order (so replicas completing overlapping batches cannot deadlock).
    pub(crate) async fn completion_states(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        ids: &[&str],
    ) -> StoreResult<Vec<CompletionState>> {
        // Tuples decode by column position.
        Ok(sqlx::query_as(
            "SELECT id, managed_instance_id, status, operation_type, time_started, parent_id FROM work_requests \
             WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        )
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Ends these work requests (each with its status and kept report lines) at `now`: one
    /// statement over three parallel arrays.
    pub(crate) async fn finish_completed(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        rows: &[FinishedRow<'_>],
        now: i64,
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let statuses: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let lines: Vec<Option<&str>> = rows.iter().map(|r| r.2.as_deref()).collect();
        sqlx::query(
            "UPDATE work_requests w SET status = v.status, time_started = COALESCE(w.time_started, $1), \
             time_finished = $1, percent_complete = 100, outcome_lines = v.lines \
             FROM unnest($2::text[], $3::text[], $4::text[]) AS v(id, status, lines) WHERE w.id = v.id",
        )
        .bind(now)
        .bind(ids)
        .bind(statuses)
        .bind(lines)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Starts the ACCEPTED work requests among `ids` (IN_PROGRESS, started at `now`) and
    /// returns what their agents need.
    pub(crate) async fn start_claimed(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        ids: &[String],
        now: i64,
    ) -> StoreResult<Vec<StartedWork>> {
        Ok(sqlx::query_as(
            "UPDATE work_requests SET status = 'IN_PROGRESS', time_started = $1, time_claimed = $1 \
             WHERE status = 'ACCEPTED' AND id = ANY($2::text[]) \
             RETURNING id, managed_instance_id, parent_id, description, action, time_accepted",
        )
        .bind(now)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Queued (unleased) work requests of each `(instance, limit)`, oldest first, at most its limit, locked
    /// for this transaction; rows another replica is claiming are skipped, not waited for.
    pub(crate) async fn claim_candidates(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        wanted: &[(String, u32)],
    ) -> StoreResult<Vec<String>> {
        use sqlx::Row;
        let instances: Vec<String> = wanted.iter().map(|(i, _)| i.clone()).collect();
        let limits: Vec<i64> = wanted.iter().map(|(_, n)| *n as i64).collect();
        let rows = sqlx::query(
            "SELECT q.work_request_id AS id FROM unnest($1::text[], $2::int8[]) AS c(instance_id, lim) CROSS JOIN LATERAL \
             (SELECT x.work_request_id FROM work_queue x WHERE x.managed_instance_id = c.instance_id AND x.lease_expires IS NULL \
             ORDER BY x.time_accepted, x.work_request_id LIMIT c.lim FOR UPDATE SKIP LOCKED) q",
        )
        .bind(instances)
        .bind(limits)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
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
