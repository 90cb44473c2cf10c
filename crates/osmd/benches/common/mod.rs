//! Helpers the benchmarks share: which backends to run, fresh databases, host records.
// Each benchmark uses only part of these.
#![allow(dead_code)]

use jiff::Timestamp;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::*;

/// The backends named on the command line (`-- sqlite`, `-- postgres`), both when none is.
pub fn backends() -> Vec<&'static str> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    ["sqlite", "postgres"]
        .into_iter()
        .filter(|b| args.is_empty() || args.iter().any(|a| a == b))
        .collect()
}

/// A number from the environment, or `default` when unset.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// The PostgreSQL server the benchmarks use (an administrator URL to its `postgres` database).
pub fn pg_admin_url() -> String {
    std::env::var("OSM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty PostgreSQL database: its name and URL.
pub async fn fresh_pg_database(prefix: &str) -> (String, String) {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL reachable (set OSM_TEST_PG_URL)");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    (name, url)
}

/// Drops a database [`fresh_pg_database`] made (its connections are closed first).
pub async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await
    .unwrap();
}

/// Writes PostgreSQL's dirty pages out (a CHECKPOINT) before a timed drain, so each drain
/// starts from the same state: a checkpoint falling inside one drain, and the full-page
/// images the first change of each page after it writes, otherwise land on a random one of
/// the runs compared. Returns what to print beside the figure.
pub async fn pg_checkpoint() -> String {
    use sqlx::Connection;
    let started = std::time::Instant::now();
    let done = async {
        let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await?;
        sqlx::Executor::execute(&mut conn, "CHECKPOINT").await
    }
    .await;
    match done {
        Ok(_) => format!(
            "CHECKPOINT before the drain took {} ms",
            started.elapsed().as_millis()
        ),
        Err(e) => format!("no CHECKPOINT before the drain ({e})"),
    }
}

/// The server's current WAL position in bytes (None without PostgreSQL): two readings give
/// the WAL a drain wrote, all databases together.
pub async fn pg_wal_position() -> Option<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await.ok()?;
    sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8")
        .fetch_one(&mut conn)
        .await
        .ok()
}

/// How the run's updates of the engine's tables went in database `name`: in place (HOT: no
/// index entry written) or as a new row version elsewhere. Statistics reach the view within
/// about a second of each transaction.
pub async fn pg_update_kinds(name: &str) -> String {
    use sqlx::Connection;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let url = format!("{}/{name}", pg_admin_url().rsplit_once('/').unwrap().0);
    let read = async {
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT relname::text, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
             WHERE relname IN ('work_requests', 'work_queue') ORDER BY relname",
        )
        .fetch_all(&mut conn)
        .await
    }
    .await;
    match read {
        Ok(rows) => rows
            .iter()
            .map(|(table, all, hot)| format!("{table}: {all} updates, {hot} in place (HOT)"))
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("update statistics unreadable: {e}"),
    }
}

/// The store URL for a benchmark run, and the PostgreSQL database to drop afterwards.
pub async fn db_url(backend: &str, dir: &std::path::Path) -> (String, Option<String>) {
    if backend == "sqlite" {
        return (format!("sqlite://{}", dir.join("osm.db").display()), None);
    }
    let (name, url) = fresh_pg_database("osm_bench").await;
    (url, Some(name))
}

/// A Linux host that checked in at `now`.
pub fn host(compartment: &str, i: usize, now: Timestamp) -> ManagedInstance {
    ManagedInstance {
        id: new_ocid(ResourceKind::ManagedInstance),
        compartment_id: compartment.into(),
        display_name: format!("host-{i:05}"),
        description: None,
        os_name: None,
        os_version: None,
        os_kernel_version: None,
        os_family: OsFamily::Linux,
        status: ManagedInstanceStatus::Normal,
        last_checkin: Some(now),
        last_boot: None,
        is_reboot_required: false,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: UpdateCounts::default(),
        time_created: now,
        version: 1,
    }
}

/// Figures of a sample: nearest-rank percentiles.
pub struct Percentiles {
    sorted: Vec<f64>,
}

impl Percentiles {
    pub fn new(mut sample: Vec<f64>) -> Self {
        sample.sort_by(f64::total_cmp);
        Percentiles { sorted: sample }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The value at or below which `p` percent of the sample lies.
    pub fn at(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(f64::NAN)
    }
}

/// `pg_test_fsync`'s figures for one 8 kB write at this moment, on the filesystem of `dir` (fsync
/// speed drifts on these machines, so every run records it), or why they could not be had.
pub fn pg_test_fsync(dir: &std::path::Path) -> String {
    let Some(bin) = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin/pg_test_fsync"))
        .find(|p| p.exists())
    else {
        return "pg_test_fsync not found under /usr/lib/postgresql/*/bin".into();
    };
    let out = std::process::Command::new(&bin)
        .args(["-s", "1", "-f"])
        .arg(dir.join("pg_test_fsync.out"))
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return format!(
                "pg_test_fsync failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Err(e) => return format!("pg_test_fsync could not run: {e}"),
    };
    // The first table ("one 8kB write"): method, ops/sec, ops/sec, usecs/op, usecs/op.
    let figures: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("one 8kB write"))
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 5 && w[2] == "ops/sec")
                .then(|| format!("{} {} ops/s ({} µs)", w[0], w[1], w[3]))
        })
        .collect();
    format!("pg_test_fsync, one 8 kB write: {}", figures.join(", "))
}

/// The machine's load average (1, 5, 15 minutes): other work on these shared cores.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load average {} (2 cores)", avg.join(" "))
}
