//! osmd, the osm server, as a library: [`start`] opens the store, bootstraps it on first
//! start, prepares TLS and serves the API until stopped. `main.rs` adds the command line; the
//! integration tests start servers in-process with the same function.

pub mod app;
pub mod bootstrap;
pub mod config;
pub mod fsutil;
pub mod http;
pub mod scheduler;
pub mod server;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use osm_store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Settings;

/// mimalloc instead of glibc's malloc, for every binary that runs osmd (the server, its tests
/// and benches): under dispatch load glibc's allocator and its chunk consolidation took about a
/// third of the request threads' CPU, on the cores the single SQLite writer needs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fired occurrences kept for a [`Server::subscribe_fired`] receiver that has not read them yet.
pub const FIRED_BUFFER: usize = 4096;

/// A running osmd.
pub struct Server {
    /// The address it listens on (with the real port when the settings asked for port 0).
    pub addr: SocketAddr,
    pub tenancy_id: String,
    pub data_dir: PathBuf,
    pub store: Arc<dyn Store>,
    /// Wakes this server's long-polling agents.
    work_signal: Arc<tokio::sync::Notify>,
    /// Whether this start created the tenancy and the administrator's files.
    pub bootstrapped: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    upkeep: JoinHandle<()>,
    scheduler: Option<JoinHandle<()>>,
    fired: tokio::sync::broadcast::Sender<scheduler::Fired>,
    /// The exclusive lock on a SQLite store (see [`lock_sqlite_store`]), held while serving.
    store_lock: Option<std::fs::File>,
}

impl Server {
    /// Stops accepting connections and waits for requests in flight.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.end_background();
        (&mut self.task).await??;
        Ok(())
    }

    /// Tells the request task to finish (it stops accepting and ends the requests in flight)
    /// and ends the scheduler and the upkeep.
    fn end_background(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.upkeep.abort();
        if let Some(s) = &self.scheduler {
            s.abort();
        }
    }

    /// Occurrences this server's scheduler records from now on, with their commit times
    /// (benchmarks and tests watch firing with it; a receiver that falls more than
    /// [`FIRED_BUFFER`] behind is told how many it missed).
    pub fn subscribe_fired(&self) -> tokio::sync::broadcast::Receiver<scheduler::Fired> {
        self.fired.subscribe()
    }

    /// Wakes the agents long-polling this server, for work queued straight into the store
    /// (benchmarks); the API and the scheduler do it themselves.
    pub fn notify_work(&self) {
        self.work_signal.notify_waiters();
    }

    pub fn admin_config(&self) -> PathBuf {
        bootstrap::AdminPaths::new(&self.data_dir).config
    }

    pub fn ca_file(&self) -> PathBuf {
        tls::TlsPaths::new(&self.data_dir).ca_cert
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::stop`] stops serving too, before its store lock is
    /// released with it: its tasks would otherwise go on writing a SQLite store that the next
    /// osmd may then open. (After `stop` there is nothing left to end.)
    fn drop(&mut self) {
        self.end_background();
        self.task.abort();
    }
}

/// Opens the store and starts serving; returns once the listener is bound.
pub async fn start(settings: Settings) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let store_lock = lock_sqlite_store(&settings.db_url())?;
    let store = osm_store::connect(&settings.db_url())
        .await
        .with_context(|| format!("opening the store {}", redact(&settings.db_url())))?;
    let mut server = start_with_store(settings, store).await?;
    server.store_lock = store_lock;
    Ok(server)
}

/// A SQLite store keeps its queue of agent work in the memory of the osmd serving it (see
/// docs/work-requests.md), so one osmd serves a SQLite file at a time: it holds an exclusive
/// lock on `<file>.lock` while it runs (the system drops it when the process ends, however it
/// ends). PostgreSQL stores take any number of replicas.
fn lock_sqlite_store(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Ok(None);
    };
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    // Through the real directory, so two paths to one file find one lock.
    let file = std::path::Path::new(path);
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let real = std::fs::canonicalize(dir)
        .map(|d| d.join(file.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| file.to_path_buf());
    let lock_path = format!("{}.lock", real.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening the store's lock file {lock_path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another osmd already serves the SQLite store {path} (it holds {lock_path}); a SQLite store serves one osmd at a time: stop the other one, or give this one its own --data-dir or --db (several replicas share a PostgreSQL store)"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking the store's lock file {lock_path}"))
        }
    }
}

/// Like [`start`] with a store opened by the caller (tests share one between servers).
pub async fn start_with_store(settings: Settings, store: Arc<dyn Store>) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let tls = tls::ensure(&settings.data_dir, &addr.ip().to_string()).context("preparing TLS")?;
    let outcome = bootstrap::ensure(store.as_ref(), &settings.data_dir, addr)
        .await
        .context("bootstrapping the store")?;
    if let Some(dir) = &settings.errata_dir {
        let summary = app::errata::import_dir(store.as_ref(), &outcome.tenancy_id, dir)
            .await
            .with_context(|| {
                format!(
                    "importing the OSV advisories of errata_dir {} (fix or remove the file named, or unset errata_dir / OSM_ERRATA_DIR)",
                    dir.display()
                )
            })?;
        tracing::info!(
            dir = %dir.display(),
            records = summary.records,
            created = summary.created,
            updated = summary.updated,
            unchanged = summary.unchanged,
            stale = summary.stale,
            updates_changed = summary.updates_changed,
            "imported the OSV advisories of errata_dir"
        );
    }
    let metrics = telemetry::metrics_handle();
    let app = Arc::new(
        app::App::new(
            store.clone(),
            outcome.tenancy_id.clone(),
            settings.home_region_key.clone(),
        )
        .with_lease(jiff::SignedDuration::from_secs(settings.lease_secs as i64))
        .with_report_limit(settings.report_max_detail_updates),
    );
    let state = http::AppState {
        app,
        settings: Arc::new(settings.clone()),
        metrics: metrics.clone(),
    };
    let (fired, _) = tokio::sync::broadcast::channel(FIRED_BUFFER);
    let scheduler = settings.scheduler.then(|| {
        tokio::spawn(scheduler::run(
            store.clone(),
            state.app.scheduler_wake.clone(),
            state.app.work_signal.clone(),
            fired.clone(),
            jiff::SignedDuration::from_secs(settings.catch_up_secs as i64),
        ))
    });
    let work_signal = state.app.work_signal.clone();
    let router = http::router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, tls, router, async {
        let _ = rx.await;
    }));
    let purge_store = store.clone();
    let retention_days = settings.retention_days;
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut ticks: u64 = 0;
        loop {
            tick.tick().await;
            metrics.run_upkeep();
            // Leases that ran out: the agent went silent; fail its work with the cause.
            match purge_store
                .work_request_expire_leases(jiff::Timestamp::now(), 1000)
                .await
            {
                Ok(expired) if !expired.is_empty() => {
                    metrics::counter!("osm_work_requests_lease_expired_total")
                        .increment(expired.len() as u64);
                    tracing::warn!(
                        count = expired.len(),
                        "work requests failed: their agent's lease expired"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expiring leases failed"),
            }
            // Retention: terminal work requests older than the retention period, in batches.
            if ticks.is_multiple_of(12) {
                let before = jiff::Timestamp::now()
                    - jiff::SignedDuration::from_hours(24 * retention_days as i64);
                loop {
                    match purge_store.work_request_purge(before, 1000).await {
                        Ok(0) => break,
                        Ok(n) => metrics::counter!("osm_work_requests_purged_total").increment(n),
                        Err(e) => {
                            tracing::warn!(error = %e, "purging old work requests failed");
                            break;
                        }
                    }
                }
            }
            // Retry tokens are valid for 24 hours; forget older ones every ten minutes.
            if ticks.is_multiple_of(120) {
                let cutoff = jiff::Timestamp::now() - app::RETRY_TOKEN_LIFETIME;
                if let Err(e) = purge_store.retry_record_purge(cutoff).await {
                    tracing::warn!(error = %e, "purging old retry tokens failed");
                }
            }
            ticks += 1;
        }
    });
    Ok(Server {
        addr,
        tenancy_id: outcome.tenancy_id,
        data_dir: settings.data_dir.clone(),
        store,
        work_signal,
        bootstrapped: outcome.created,
        shutdown: Some(tx),
        task,
        upkeep,
        scheduler,
        fired,
        store_lock: None,
    })
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
