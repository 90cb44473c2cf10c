//! `osm-sim`: enrols N simulated instances against a running osmd and serves their work
//! through the real agent protocol until stopped (Ctrl-C / SIGTERM). Each instance uploads its
//! package inventory after enrolment and a diff after every action that changes it.

mod inventory;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use inventory::{Distro, SimInventory};
use osm_client::AgentClient;
use osm_core::WorkAction;
use rand::RngExt;
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(name = "osm-sim", version, about = "Simulated fleet of osm agents", long_about = None)]
struct Args {
    /// osmd's URL, e.g. https://127.0.0.1:9443
    #[arg(long)]
    server: String,
    /// CA bundle that osmd's certificate chains to (<data-dir>/tls/ca.pem)
    #[arg(long)]
    ca: std::path::PathBuf,
    /// An install key (the text of <data-dir>/admin/install-key, or the file's path)
    #[arg(long)]
    install_key: String,
    /// How many instances to simulate
    #[arg(long)]
    instances: usize,
    /// Enrol into this compartment (in the install key's subtree) instead of the key's own
    #[arg(long)]
    compartment: Option<String>,
    /// Share of instances that miss security updates
    #[arg(long, default_value_t = 0.2)]
    security_ratio: f64,
    /// Available updates per instance
    #[arg(long, default_value_t = 10)]
    updates_per_instance: i64,
    /// Share of Windows instances
    #[arg(long, default_value_t = 0.0)]
    windows_ratio: f64,
    /// Share of actions that fail
    #[arg(long, default_value_t = 0.0)]
    fail_ratio: f64,
    /// How long each action takes, in milliseconds
    #[arg(long, default_value_t = 200)]
    action_ms: u64,
    /// Most work requests each instance claims per call (1 to 100); it runs them one after
    /// another, then reports their outcomes and claims the next ones in one call
    /// (POST /agent/v1/work/exchange)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_claim: u32,
    /// Which distribution the Linux instances run (and report as osName/osVersion)
    #[arg(long, value_enum, default_value_t = Distro::Mixed)]
    distro: Distro,
    /// First instance number (hostnames sim-00001…)
    #[arg(long, default_value_t = 1)]
    first: usize,
    /// Exit once this many work requests have ended and osmd acknowledged their outcome (load
    /// tests: the exit marks the end of a drain)
    #[arg(long)]
    exit_after: Option<u64>,
    /// Append "<work request id> <outcome>" to this file for every outcome osmd acknowledged
    /// (the crash test checks each one against the store)
    #[arg(long)]
    acknowledged_log: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Counters {
    enrolled: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    acknowledged_log: std::sync::Mutex<Option<std::fs::File>>,
    /// Told when `--exit-after` outcomes were acknowledged.
    enough: tokio::sync::Notify,
}

impl Counters {
    /// Counts an acknowledged outcome; tells `enough` when `exit_after` is reached.
    fn ended(&self, failed: bool, exit_after: Option<u64>) {
        let counter = if failed {
            &self.failed
        } else {
            &self.succeeded
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let total = self.succeeded.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        if exit_after.is_some_and(|n| total >= n) {
            self.enough.notify_one();
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.security_ratio)
        || !(0.0..=1.0).contains(&args.windows_ratio)
        || !(0.0..=1.0).contains(&args.fail_ratio)
    {
        anyhow::bail!(
            "--security-ratio, --windows-ratio and --fail-ratio are shares between 0 and 1"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ca = std::fs::read(&args.ca).with_context(|| format!("reading {}", args.ca.display()))?;
    let key = match std::fs::read_to_string(&args.install_key) {
        Ok(text) => text.trim().to_string(),
        Err(_) => args.install_key.trim().to_string(),
    };
    let http = AgentClient::shared_http(Some(&ca))?;
    let counters = Arc::new(Counters::default());
    if let Some(path) = &args.acknowledged_log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        *counters.acknowledged_log.lock().unwrap() = Some(file);
    }
    let args = Arc::new(args);
    let mut tasks = vec![];
    for n in args.first..args.first + args.instances {
        let (http, key, args, counters) =
            (http.clone(), key.clone(), args.clone(), counters.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = simulate(n, http, &key, &args, &counters).await {
                eprintln!("sim-{n:05}: {e:#}");
            }
        }));
        // Enrol in waves so a large fleet does not stampede osmd.
        if n % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let report = {
        let counters = counters.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                println!(
                    "osm-sim: {} enrolled, {} work requests succeeded, {} failed",
                    counters.enrolled.load(Ordering::Relaxed),
                    counters.succeeded.load(Ordering::Relaxed),
                    counters.failed.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = counters.enough.notified() => {}
    }
    report.abort();
    for t in tasks {
        t.abort();
    }
    println!(
        "osm-sim: stopped; {} work requests succeeded, {} failed",
        counters.succeeded.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Heartbeat facts; the counts matter only until osmd holds the inventory.
fn facts(inv: &SimInventory) -> Value {
    let [security, bug, enhancement, other] = inv.pending();
    let (os_name, os_version) = inv.os();
    json!({"osName": os_name, "osVersion": os_version, "osKernelVersion": "6.1.0-sim",
           "isRebootRequired": false,
           "updates": {"security": security, "bug": bug, "enhancement": enhancement, "other": other}})
}

/// Sends the whole inventory; remembers the revision osmd answers.
async fn upload_full(agent: &AgentClient, inv: &mut SimInventory) -> anyhow::Result<()> {
    let mut body = serde_json::to_value(inv.full())?;
    body["mode"] = json!("full");
    let r = agent.post("/agent/v1/inventory", &body).await?;
    anyhow::ensure!(
        r.status == 200,
        "inventory upload: {} {}",
        r.status,
        r.text()
    );
    inv.revision = r.json::<Value>()["revision"].as_i64().unwrap_or(0);
    Ok(())
}

/// Tells osmd what an action changed: a diff against the revision it holds, or a full upload
/// when it holds another one.
async fn upload_changes(
    agent: &AgentClient,
    inv: &mut SimInventory,
    action: &WorkAction,
) -> anyhow::Result<()> {
    let diff = inv.apply(action);
    if diff.installed.is_none()
        && diff.available.is_none()
        && diff.updates.is_none()
        && diff.windows_updates.is_none()
    {
        return Ok(());
    }
    let mut body = serde_json::to_value(&diff)?;
    body["mode"] = json!("diff");
    let r = agent.post("/agent/v1/inventory", &body).await?;
    match r.status {
        200 => {
            inv.revision = r.json::<Value>()["revision"].as_i64().unwrap_or(0);
            Ok(())
        }
        409 => upload_full(agent, inv).await,
        other => anyhow::bail!("inventory diff: {other} {}", r.text()),
    }
}

/// What an exchange answers, as far as a simulated agent reads it (typed: parsing thousands
/// of answers into generic JSON values was most of osm-sim's own CPU in the dispatch bench).
#[derive(Default, serde::Deserialize)]
struct Exchanged {
    #[serde(default)]
    reported: Vec<Reported>,
    #[serde(default)]
    work: Vec<Work>,
}

/// The answer to one reported outcome: its new status, or an error.
#[derive(serde::Deserialize)]
struct Reported {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<ReportError>,
}

#[derive(serde::Deserialize)]
struct ReportError {
    #[serde(default)]
    code: String,
}

/// Claimed work: the action stays JSON until it is applied (an action this osm-sim does not
/// know is then skipped, not a failed exchange).
#[derive(serde::Deserialize)]
struct Work {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    action: Option<Value>,
}

/// One outcome as the exchange call takes it.
#[derive(serde::Serialize)]
struct Outcome {
    id: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    log: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<SimError>,
}

#[derive(serde::Serialize)]
struct SimError {
    code: &'static str,
    message: &'static str,
}

async fn simulate(
    n: usize,
    http: reqwest::Client,
    key: &str,
    args: &Args,
    counters: &Counters,
) -> anyhow::Result<()> {
    let (windows, vulnerable) = {
        let mut rng = rand::rng();
        (
            rng.random_bool(args.windows_ratio),
            rng.random_bool(args.security_ratio),
        )
    };
    let mut inv = SimInventory::generate_for(
        args.distro,
        windows,
        vulnerable,
        args.updates_per_instance.max(0) as usize,
    );
    let mut body = json!({"hostname": format!("sim-{n:05}"), "osFamily": if windows { "WINDOWS" } else { "LINUX" },
                          "facts": facts(&inv)});
    if let Some(c) = &args.compartment {
        body["compartmentId"] = json!(c);
    }
    let mut delay = Duration::from_millis(200);
    let agent = loop {
        match AgentClient::enroll_with(http.clone(), &args.server, key, &body).await {
            Ok((agent, _)) => break agent,
            Err(e) if delay < Duration::from_secs(30) => {
                eprintln!("sim-{n:05}: enrolment failed ({e}); retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    };
    counters.enrolled.fetch_add(1, Ordering::Relaxed);
    let mut last_heartbeat = tokio::time::Instant::now();
    // Outcomes not yet acknowledged, with the work they end; they travel with the next claim.
    let mut pending: Vec<(Outcome, Work)> = vec![];
    let mut since_failure: Option<tokio::time::Instant> = None;
    loop {
        if inv.revision == 0
            && let Err(e) = upload_full(&agent, &mut inv).await
        {
            eprintln!("sim-{n:05}: {e:#}");
        }
        if last_heartbeat.elapsed() > Duration::from_secs(25) {
            agent.post("/agent/v1/heartbeat", &facts(&inv)).await.ok();
            last_heartbeat = tokio::time::Instant::now();
        }
        let report: Vec<&Outcome> = pending.iter().map(|(item, _)| item).collect();
        // Outcomes to report come back at once, not after a long wait for more work.
        let wait = if report.is_empty() { 20 } else { 0 };
        let body = json!({"report": report, "waitSeconds": wait, "max": args.max_claim});
        let answer: Exchanged = match agent.post("/agent/v1/work/exchange", &body).await {
            Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).unwrap_or_default(),
            failed => {
                if let Ok(r) = &failed
                    && r.status < 500
                {
                    eprintln!("sim-{n:05}: exchange: {} {}", r.status, r.text());
                    pending.clear();
                }
                // The work is done: while osmd is away (restarting), keep reporting it for 30 s.
                let first = *since_failure.get_or_insert_with(tokio::time::Instant::now);
                if first.elapsed() > Duration::from_secs(30) {
                    pending.clear();
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        since_failure = None;
        let mut stopped = vec![];
        for ((item, w), answer) in pending.drain(..).zip(answer.reported) {
            let Outcome { id, outcome, .. } = item;
            if answer.status.is_some() {
                if outcome == "CANCELED" {
                    continue;
                }
                if let Some(log) = &mut *counters.acknowledged_log.lock().unwrap() {
                    use std::io::Write;
                    if let Err(e) = writeln!(log, "{id} {outcome}") {
                        eprintln!("sim-{n:05}: writing the acknowledged log failed: {e}");
                    }
                }
                counters.ended(outcome == "FAILED", args.exit_after);
                if outcome != "FAILED"
                    && let Some(Ok(action)) = w.action.map(serde_json::from_value::<WorkAction>)
                    && let Err(e) = upload_changes(&agent, &mut inv, &action).await
                {
                    eprintln!("sim-{n:05}: {e:#}");
                }
            } else if answer.error.is_some_and(|e| e.code == "IncorrectState")
                && outcome != "CANCELED"
            {
                // A cancel took effect meanwhile: stop as asked.
                stopped.push((
                    Outcome {
                        id,
                        outcome: "CANCELED",
                        log: vec![],
                        errors: vec![],
                    },
                    w,
                ));
            }
        }
        pending.extend(stopped);
        for w in answer.work {
            // Even a zero sleep waits for the timer's next millisecond tick.
            if args.action_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.action_ms)).await;
            }
            let description = w.description.as_deref().unwrap_or("work");
            // The log lines travel with the outcome.
            let log = vec![
                format!("simulated: {description}"),
                "simulated: done".to_string(),
            ];
            let item = if rand::rng().random_bool(args.fail_ratio) {
                Outcome {
                    id: w.id.clone(),
                    outcome: "FAILED",
                    log,
                    errors: vec![SimError {
                        code: "SimulatedFailure",
                        message: "the simulator was asked to fail this share of actions (--fail-ratio)",
                    }],
                }
            } else {
                Outcome {
                    id: w.id.clone(),
                    outcome: "SUCCEEDED",
                    log,
                    errors: vec![],
                }
            };
            pending.push((item, w));
        }
    }
}
