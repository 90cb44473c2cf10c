//! PostgreSQL, for several osmd replicas sharing one database. Migrations run under the
//! migrator's advisory lock, so replicas starting together apply them once.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

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
    " FOR UPDATE SKIP LOCKED"
);

crate::inventory::impl_inventory_store!(PgStore, sqlx::Postgres, "postgres", " FOR UPDATE");

// One snapshot for the report's statements; json_agg is NULL over no rows.
crate::report::impl_report_store!(
    PgStore,
    sqlx::Postgres,
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "json_build_array",
    "COALESCE(CAST(json_agg({}) AS text), '[]')",
    "CAST({} AS json)"
);
