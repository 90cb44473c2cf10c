//! The agent: enrolment, heartbeats (facts, lease renewal, cancel notices), inventory
//! uploads, and the work loop over the ledger.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use osm_client::AgentClient;
use osm_core::WorkAction;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

use crate::backend::{Backend, WorkCtx, WorkError};
use crate::backoff::Backoff;
use crate::config::Settings;
use crate::facts;
use crate::inventory::{Inventory, diff_is_worth_it};
use crate::ledger::{Ended, Ledger};
use crate::runner::Runner;
use crate::state::{Identity, SentInventory, StateDir};

/// Log lines per call (the server takes at most 1000 of at most 8 KiB).
const LOG_BATCH: usize = 500;
const LOG_LINE_MAX: usize = 8000;
/// Full inventories larger than this go up in pieces (the server's body limit is 1 MiB).
const BODY_BUDGET: usize = 800 * 1024;
const AVAILABLE_CHUNK: usize = 3000;

fn now_rfc3339() -> String {
    osm_core::time::format_rfc3339(jiff::Timestamp::now())
}

/// The host name to enrol under.
fn host_name(runner: &Runner) -> String {
    std::fs::read_to_string(runner.host_path("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into())
}

/// Enrols with the install key, keeps the identity and the CA in the state directory.
pub async fn enroll(settings: &Settings) -> anyhow::Result<Identity> {
    let state = StateDir::open(&settings.state_dir)
        .with_context(|| format!("state directory {}", settings.state_dir.display()))?;
    if let Some(id) = state.identity()? {
        bail!(
            "already enrolled as {} with {} (remove {} to enrol again)",
            id.instance_id,
            id.server,
            state.path("identity.json").display()
        );
    }
    let server = settings
        .server
        .clone()
        .ok_or_else(|| anyhow!("enrolment needs --server (or server in the config file)"))?;
    let ca_file = settings
        .ca
        .clone()
        .ok_or_else(|| anyhow!("enrolment needs --ca, the CA bundle of osmd's certificate"))?;
    let key = settings
        .install_key_text()
        .ok_or_else(|| anyhow!("enrolment needs --install-key (the key or a file holding it)"))?;
    let ca = std::fs::read(&ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let runner = Runner::new(settings.root.clone());
    let backend = Backend::detect(&runner, Some(&settings.backend)).map_err(|e| anyhow!(e))?;
    let mut body = json!({
        "hostname": settings.hostname.clone().unwrap_or_else(|| host_name(&runner)),
        "osFamily": "LINUX",
        "facts": facts::collect(&runner, backend.reboot_required().await, None),
    });
    if let Some(c) = &settings.compartment_id {
        body["compartmentId"] = json!(c);
    }
    let (client, answer) = AgentClient::enroll(&server, Some(&ca), &key, &body).await?;
    state.write("ca.pem", &ca)?;
    let identity = Identity {
        server,
        instance_id: client.instance_id.clone(),
        compartment_id: answer["compartmentId"].as_str().unwrap_or_default().into(),
        secret: client.secret().to_string(),
    };
    state.save_identity(&identity)?;
    Ok(identity)
}

/// What the heartbeat task and the work loop share.
struct Shared {
    facts: Mutex<Value>,
    /// Cancel flags of the work this agent is running, by id.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    heartbeat_now: Notify,
    /// Bumped after every heartbeat answered by the server.
    beats: watch::Sender<u64>,
    heartbeat_secs: AtomicU64,
    /// `inventoryRevision` of the last heartbeat answer (-1: none said).
    server_revision: std::sync::atomic::AtomicI64,
}

pub struct Agent {
    settings: Settings,
    state: StateDir,
    client: AgentClient,
    runner: Runner,
    backend: Backend,
    ledger: Ledger,
    shared: Arc<Shared>,
    /// Whether an inventory was scanned yet (it is kept on disk, not in memory).
    scanned: bool,
    last_scan: Option<tokio::time::Instant>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Agent {
    /// Loads the identity (enrolling first when there is none and an install key is set).
    pub async fn start(settings: Settings) -> anyhow::Result<Agent> {
        let state = StateDir::open(&settings.state_dir)
            .with_context(|| format!("state directory {}", settings.state_dir.display()))?;
        let identity = match state.identity()? {
            Some(id) => id,
            None if settings.install_key.is_some() => {
                let id = enroll(&settings).await?;
                tracing::info!(instance = %id.instance_id, "enrolled");
                id
            }
            None => bail!(
                "not enrolled: run `osm-agent enroll --server URL --ca FILE --install-key KEY` first"
            ),
        };
        let ca = std::fs::read(state.ca_path())
            .with_context(|| format!("reading {}", state.ca_path().display()))?;
        let server = settings.server.clone().unwrap_or(identity.server.clone());
        let client =
            AgentClient::resume(&server, Some(&ca), &identity.instance_id, &identity.secret)?;
        let runner = Runner::new(settings.root.clone());
        let backend = Backend::detect(&runner, Some(&settings.backend)).map_err(|e| anyhow!(e))?;
        let ledger = Ledger::open(&state.ledger_path())?;
        let (beats, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            facts: Mutex::new(facts::collect(&runner, false, None)),
            running: Mutex::new(HashMap::new()),
            heartbeat_now: Notify::new(),
            beats,
            heartbeat_secs: AtomicU64::new(settings.heartbeat_secs.unwrap_or(30).max(1)),
            server_revision: std::sync::atomic::AtomicI64::new(-1),
        });
        let mut status = state.status();
        status.backend = Some(backend.name().into());
        status.current_work = None;
        state.save_status(&status)?;
        let heartbeat = tokio::spawn(heartbeat_loop(
            client.clone(),
            shared.clone(),
            state.clone(),
            settings.heartbeat_secs,
        ));
        Ok(Agent {
            settings,
            state,
            client,
            runner,
            backend,
            ledger,
            shared,
            scanned: false,
            last_scan: None,
            heartbeat,
        })
    }

    pub fn instance_id(&self) -> &str {
        &self.client.instance_id
    }

    /// Runs until `stop` resolves (work in progress is finished first).
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(instance = %self.client.instance_id, backend = self.backend.name(), "osm-agent running");
        self.recover_interrupted().await?;
        let mut backoff = Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(self.settings.max_backoff_secs.max(1)),
        );
        tokio::pin!(stop);
        loop {
            // Work is never interrupted by a stop: it is only looked at between items.
            let items = tokio::select! {
                _ = &mut stop => break,
                items = self.next_work() => items,
            };
            match items {
                Some(items) => {
                    backoff.reset();
                    for item in items {
                        self.handle(item).await;
                    }
                }
                None => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        failures = backoff.failures(),
                        "server unreachable; retrying in {:.1} s",
                        delay.as_secs_f64()
                    );
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Reports pending outcomes, refreshes the inventory when due, and long-polls for work.
    /// `None` when the server could not be reached.
    async fn next_work(&mut self) -> Option<Vec<Value>> {
        if !self.report_pending().await {
            return None;
        }
        let interval = Duration::from_secs(self.settings.inventory_interval_secs.max(1));
        let server_revision = self.shared.server_revision.load(Ordering::SeqCst);
        let stale_on_server = self.scanned
            && server_revision >= 0
            && self.state.sent_inventory().map(|s| s.revision) != Some(server_revision);
        if self.last_scan.is_none_or(|t| t.elapsed() >= interval) || stale_on_server {
            self.refresh_inventory().await;
        }
        self.poll_once(self.settings.poll_wait_secs).await
    }

    /// One long-poll for work (claims at most one item). `None` when it failed.
    pub async fn poll_once(&self, wait_secs: u64) -> Option<Vec<Value>> {
        let resp = self
            .client
            .post(
                "/agent/v1/work/poll",
                &json!({"waitSeconds": wait_secs.min(30), "max": 1}),
            )
            .await;
        match resp {
            Ok(r) if r.status == 200 => Some(serde_json::from_slice(&r.body).unwrap_or_default()),
            Ok(r) => {
                self.note_error(format!("work poll answered {}: {}", r.status, r.text()));
                None
            }
            Err(e) => {
                self.note_error(format!("work poll: {e}"));
                None
            }
        }
    }

    fn note_error(&self, message: String) {
        tracing::warn!("{message}");
        let mut status = self.state.status();
        status.last_error = Some(format!("{} {message}", now_rfc3339()));
        let _ = self.state.save_status(&status);
    }

    /// Work that was running when the agent died is reported FAILED, never re-run.
    async fn recover_interrupted(&mut self) -> anyhow::Result<()> {
        for id in self.ledger.interrupted() {
            let audit = self.backend.audit().await;
            tracing::warn!(work = %id, "found interrupted work; reporting it FAILED");
            self.ledger.end(
                &id,
                Ended {
                    outcome: "FAILED".into(),
                    errors: vec![(
                        "AgentInterrupted".into(),
                        format!(
                            "osm-agent stopped while running this work request and does not run it again; check the system and retry if needed. {audit}"
                        ),
                    )],
                },
            )?;
        }
        Ok(())
    }

    /// Sends outcomes the server has not acknowledged. `false` when it cannot be reached.
    async fn report_pending(&mut self) -> bool {
        for (id, ended) in self.ledger.unreported() {
            let errors: Vec<Value> = ended
                .errors
                .iter()
                .map(|(code, message)| json!({"code": code, "message": message}))
                .collect();
            let body = json!({"outcome": ended.outcome, "errors": errors});
            match self
                .client
                .post(&format!("/agent/v1/work/{id}/complete"), &body)
                .await
            {
                // 409: already final (e.g. the lease ran out); 404: purged. Nothing more to say.
                Ok(r) if matches!(r.status, 200 | 404 | 409) => {
                    if r.status != 200 {
                        tracing::warn!(work = %id, status = r.status, "outcome not taken: {}", r.text());
                    }
                    if let Err(e) = self.ledger.reported(&id) {
                        tracing::error!("ledger: {e}");
                    }
                }
                Ok(r) => {
                    self.note_error(format!(
                        "reporting {id} answered {}: {}",
                        r.status,
                        r.text()
                    ));
                    return false;
                }
                Err(e) => {
                    self.note_error(format!("reporting {id}: {e}"));
                    return false;
                }
            }
        }
        true
    }

    /// Runs one polled work item, unless the ledger knows it already (a duplicate delivery
    /// never runs twice), reports its outcome and refreshes the inventory.
    pub async fn handle(&mut self, item: Value) {
        let Some(id) = item["id"].as_str().map(str::to_string) else {
            tracing::warn!("work item without an id: {item}");
            return;
        };
        match self.ledger.begin(&id) {
            Ok(true) => {}
            Ok(false) => {
                // Delivered again: it already ran (or is being reported); never run it twice.
                tracing::warn!(work = %id, state = ?self.ledger.get(&id), "duplicate delivery ignored");
                return;
            }
            Err(e) => {
                // Without a durable record it must not run at all.
                tracing::error!(work = %id, "ledger write failed, not running: {e}");
                return;
            }
        }
        let mut status = self.state.status();
        status.current_work = Some(id.clone());
        let _ = self.state.save_status(&status);
        tracing::info!(work = %id, action = %item["action"], "running");

        let cancel = Arc::new(AtomicBool::new(false));
        self.shared
            .running
            .lock()
            .unwrap()
            .insert(id.clone(), cancel.clone());
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let forwarder = tokio::spawn(forward_logs(self.client.clone(), id.clone(), log_rx));
        let shared = self.shared.clone();
        let ctx = WorkCtx {
            runner: self.runner.clone(),
            log: log_tx,
            cancel,
            refresh_cancel: Arc::new(move || {
                let shared = shared.clone();
                Box::pin(async move {
                    let mut beats = shared.beats.subscribe();
                    beats.borrow_and_update();
                    shared.heartbeat_now.notify_one();
                    let _ = tokio::time::timeout(Duration::from_secs(10), beats.changed()).await;
                })
            }),
            lock_wait: Duration::from_secs(self.settings.lock_wait_secs),
        };
        let result = match serde_json::from_value::<WorkAction>(item["action"].clone()) {
            Ok(action) => {
                ctx.say(format!(
                    "osm-agent {} ({}): {}",
                    env!("CARGO_PKG_VERSION"),
                    self.backend.name(),
                    item["description"].as_str().unwrap_or("work request")
                ));
                self.backend.execute(&action, &ctx).await
            }
            Err(e) => Err(WorkError::new(
                "UnsupportedAction",
                format!(
                    "this agent does not know the action {}: {e}",
                    item["action"]
                ),
            )),
        };
        let ended = match &result {
            Ok(()) => Ended {
                outcome: "SUCCEEDED".into(),
                errors: vec![],
            },
            Err(e) if e.is_cancel() => Ended {
                outcome: "CANCELED".into(),
                errors: vec![],
            },
            Err(e) => {
                ctx.say(format!("failed: {}: {}", e.code, e.message));
                Ended {
                    outcome: "FAILED".into(),
                    errors: vec![(e.code.clone(), e.message.clone())],
                }
            }
        };
        drop(ctx);
        let _ = forwarder.await;
        self.shared.running.lock().unwrap().remove(&id);
        if let Err(e) = self.ledger.end(&id, ended) {
            tracing::error!(work = %id, "ledger: {e}");
        }
        tracing::info!(work = %id, ok = result.is_ok(), "finished");
        self.report_pending().await;
        let mut status = self.state.status();
        status.current_work = None;
        let _ = self.state.save_status(&status);
        // The system changed: tell the server what it looks like now.
        self.refresh_inventory().await;
    }

    /// Scans, updates the facts, sends a heartbeat and uploads the inventory.
    pub async fn refresh_inventory(&mut self) {
        self.last_scan = Some(tokio::time::Instant::now());
        let mut inventory = match self.backend.scan().await {
            Ok(inv) => inv,
            Err(e) => {
                self.note_error(format!("inventory scan: {e}"));
                return;
            }
        };
        if !self.settings.report_available {
            inventory.available.clear();
        }
        let reboot = self.backend.reboot_required().await;
        *self.shared.facts.lock().unwrap() =
            facts::collect(&self.runner, reboot, Some(inventory.counts()));
        self.shared.heartbeat_now.notify_one();
        if let Err(e) = self.upload(&inventory).await {
            self.note_error(format!("inventory upload: {e}"));
        }
        self.scanned = true;
        drop(inventory);
        release_free_memory();
    }

    /// Sends the inventory as a diff against what the server has, or whole.
    async fn upload(&self, inventory: &Inventory) -> anyhow::Result<()> {
        let server_rev = self.shared.server_revision.load(Ordering::SeqCst);
        if let Some(sent) = self.state.sent_inventory()
            && (server_rev < 0 || server_rev == sent.revision)
        {
            let Some(diff) = inventory.diff_body(&sent.inventory, sent.revision) else {
                return Ok(());
            };
            if diff_is_worth_it(&diff, &inventory.full_body()) {
                match self.post_inventory(&diff).await? {
                    Some(revision) => return self.remember(revision, inventory),
                    None => tracing::info!("server's inventory moved on; sending it whole"),
                }
            }
        }
        self.upload_full(inventory).await
    }

    async fn upload_full(&self, inventory: &Inventory) -> anyhow::Result<()> {
        let full = inventory.full_body();
        if full.to_string().len() <= BODY_BUDGET {
            let revision = self
                .post_inventory(&full)
                .await?
                .ok_or_else(|| anyhow!("a full inventory was refused as a revision mismatch"))?;
            return self.remember(revision, inventory);
        }
        // Too big for one body: everything but the available packages, then those in pieces.
        let mut partial = inventory.clone();
        partial.available.clear();
        let mut revision = self
            .post_inventory(&partial.full_body())
            .await?
            .ok_or_else(|| anyhow!("a full inventory was refused as a revision mismatch"))?;
        for chunk in inventory.available.chunks(AVAILABLE_CHUNK) {
            let body = json!({"mode": "diff", "baseRevision": revision,
                              "available": {"upsert": chunk, "remove": []}});
            revision = self
                .post_inventory(&body)
                .await?
                .ok_or_else(|| anyhow!("inventory changed on the server during the upload"))?;
        }
        self.remember(revision, inventory)
    }

    fn remember(&self, revision: i64, inventory: &Inventory) -> anyhow::Result<()> {
        self.shared
            .server_revision
            .store(revision, Ordering::SeqCst);
        self.state.save_sent_inventory(&SentInventory {
            revision,
            inventory: inventory.clone(),
        })?;
        let mut status = self.state.status();
        status.inventory_revision = Some(revision);
        self.state.save_status(&status)?;
        Ok(())
    }

    /// `Ok(Some(revision))` when taken, `Ok(None)` on a revision mismatch.
    async fn post_inventory(&self, body: &Value) -> anyhow::Result<Option<i64>> {
        let r = self.client.post("/agent/v1/inventory", body).await?;
        match r.status {
            200 => Ok(Some(
                serde_json::from_slice::<Value>(&r.body)?["revision"]
                    .as_i64()
                    .ok_or_else(|| anyhow!("inventory answer lacks revision: {}", r.text()))?,
            )),
            409 => Ok(None),
            s => bail!("POST /agent/v1/inventory answered {s}: {}", r.text()),
        }
    }
}

/// Sends heartbeats every interval, and at once when asked; marks work the server is
/// cancelling.
async fn heartbeat_loop(
    client: AgentClient,
    shared: Arc<Shared>,
    state: StateDir,
    fixed_interval: Option<u64>,
) {
    loop {
        let facts = shared.facts.lock().unwrap().clone();
        match client.post("/agent/v1/heartbeat", &facts).await {
            Ok(r) if r.status == 200 => {
                let answer: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if fixed_interval.is_none()
                    && let Some(s) = answer["heartbeatSeconds"].as_u64()
                {
                    shared.heartbeat_secs.store(s.max(1), Ordering::SeqCst);
                }
                if let Some(rev) = answer["inventoryRevision"].as_i64() {
                    shared.server_revision.store(rev, Ordering::SeqCst);
                }
                let running = shared.running.lock().unwrap();
                for w in answer["inFlight"].as_array().into_iter().flatten() {
                    if w["status"] == "CANCELLING"
                        && let Some(flag) = w["id"].as_str().and_then(|id| running.get(id))
                    {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
                drop(running);
                let mut status = state.status();
                status.last_checkin = Some(now_rfc3339());
                let _ = state.save_status(&status);
                shared.beats.send_modify(|n| *n += 1);
            }
            Ok(r) => tracing::warn!("heartbeat answered {}: {}", r.status, r.text()),
            Err(e) => tracing::warn!("heartbeat: {e}"),
        }
        let wait = Duration::from_secs(shared.heartbeat_secs.load(Ordering::SeqCst));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.heartbeat_now.notified() => {}
        }
    }
}

/// Streams a work request's log lines to the server in batches until the sender closes.
async fn forward_logs(client: AgentClient, id: String, mut rx: mpsc::UnboundedReceiver<String>) {
    let path = format!("/agent/v1/work/{id}/log");
    let mut open = true;
    while open {
        let mut lines = vec![];
        match rx.recv().await {
            Some(l) => lines.push(l),
            None => break,
        }
        // Gather what else arrives within a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while lines.len() < LOG_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(l)) => lines.push(l),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        let lines: Vec<String> = lines
            .into_iter()
            .map(|mut l| {
                if l.len() > LOG_LINE_MAX {
                    l.truncate(l.floor_char_boundary(LOG_LINE_MAX));
                }
                l
            })
            .collect();
        match client.post(&path, &json!({ "lines": lines })).await {
            Ok(r) if r.status == 204 => {}
            Ok(r) => tracing::warn!(work = %id, "log answered {}: {}", r.status, r.text()),
            Err(e) => tracing::warn!(work = %id, "log: {e}"),
        }
    }
}

/// Hands freed heap back to the system: a scan of a large archive allocates a lot briefly,
/// and an idle agent should stay small.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What `osm-agent status` prints.
pub fn status_report(settings: &Settings) -> anyhow::Result<String> {
    let state = StateDir::open(&settings.state_dir)?;
    let mut out = String::new();
    use std::fmt::Write;
    match state.identity()? {
        Some(id) => {
            writeln!(out, "server:          {}", id.server)?;
            writeln!(out, "instance id:     {}", id.instance_id)?;
            writeln!(out, "compartment id:  {}", id.compartment_id)?;
        }
        None => writeln!(
            out,
            "not enrolled (state directory {})",
            state.dir().display()
        )?,
    }
    let s = state.status();
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(out, "backend:         {}", or_none(&s.backend))?;
    writeln!(out, "last check-in:   {}", or_none(&s.last_checkin))?;
    writeln!(out, "last error:      {}", or_none(&s.last_error))?;
    writeln!(
        out,
        "inventory:       {}",
        s.inventory_revision
            .map(|r| format!("revision {r} on the server"))
            .unwrap_or_else(|| "not sent yet".into())
    )?;
    writeln!(out, "running:         {}", or_none(&s.current_work))?;
    let ledger = Ledger::open(&state.ledger_path())?;
    let interrupted = ledger.interrupted();
    let unreported: Vec<String> = ledger
        .unreported()
        .into_iter()
        .map(|(id, e)| format!("{id} ({})", e.outcome))
        .collect();
    writeln!(
        out,
        "pending work:    {}",
        if interrupted.is_empty() && unreported.is_empty() {
            "none".to_string()
        } else {
            interrupted
                .iter()
                .map(|id| format!("{id} (interrupted)"))
                .chain(unreported)
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;
    Ok(out)
}
