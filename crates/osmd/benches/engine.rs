//! Work-request engine figures:
//! - fan-out: one job on a 10,000-instance group → all 10,000 child work requests committed
//!   (one scheduler pass, one transaction);
//! - dispatch: no-op work drained through the real agent protocol (HTTPS, HMAC-signed long
//!   polls claiming up to 100, one batched report per claimed batch) by an osm-sim fleet, a
//!   separate process (built by this bench with `cargo build --release -p osm-sim`, or
//!   `OSM_BENCH_SIM`);
//! - graphile-worker side by side: the same number of no-op jobs drained on the same
//!   PostgreSQL, unbatched and batched (`benches/peers/graphile.mjs`, installed with npm into
//!   `target/bench-peers/graphile` the first time); osm's ratio to each.
//!
//! Run: `cargo bench -p osmd --bench engine` (`-- sqlite` or `-- postgres` for one backend).
//! Knobs: `OSM_BENCH_AGENTS` (50), `OSM_BENCH_WORK_PER_AGENT` (400), `OSM_BENCH_ROUNDS` (3:
//! each round runs every backend and then graphile-worker batched, the ratios are taken per
//! round and their median printed, as the machine's speed drifts between minutes). osm-sim
//! shares the machine's 2 cores with osmd (and with PostgreSQL).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::*;

const FLEET: usize = 10_000;
/// Work requests an agent claims per long poll (the protocol's maximum).
const CLAIM: usize = 100;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    println!(
        "before: {}; {}",
        common::pg_test_fsync(scratch.path()),
        common::load_average()
    );
    let agents = common::env_number("OSM_BENCH_AGENTS", 50) as usize;
    let per_agent = common::env_number("OSM_BENCH_WORK_PER_AGENT", 400) as usize;
    let rounds = common::env_number("OSM_BENCH_ROUNDS", 3).max(1) as usize;
    let jobs = agents * per_agent;
    let backends = common::backends();
    let with_peer = backends.contains(&"postgres");
    // This machine's speed drifts from minute to minute: each round runs osm and
    // graphile-worker batched one right after the other, and the ratios are taken per round.
    let mut rates: Vec<(&str, Vec<f64>)> = backends.iter().map(|b| (*b, vec![])).collect();
    let mut peers = vec![];
    let mut ratios: Vec<(&str, Vec<f64>)> = backends.iter().map(|b| (*b, vec![])).collect();
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        let mut this_round = vec![];
        for (backend, all) in &mut rates {
            let rate = rt.block_on(run(backend, agents, per_agent));
            all.push(rate);
            this_round.push(rate);
        }
        if with_peer && let Some(peer) = rt.block_on(graphile_figure("batched", jobs)) {
            peers.push(peer);
            for ((backend, r), rate) in ratios.iter_mut().zip(&this_round) {
                r.push(rate / peer);
                println!(
                    "  round {round}: osm dispatch on {backend} / graphile-worker batched = {rate:.0} / {peer:.0} = {:.2}",
                    rate / peer
                );
            }
        }
    }
    let unbatched = if with_peer {
        rt.block_on(graphile_figure("unbatched", jobs))
    } else {
        None
    };
    println!("medians of {rounds} rounds:");
    for ((backend, all), (_, r)) in rates.iter().zip(&ratios) {
        let rate = common::Percentiles::new(all.clone()).at(50.0);
        println!(
            "  [{backend}] dispatch {rate:.0} work requests/s (rounds: {})",
            figures(all)
        );
        if !r.is_empty() {
            println!(
                "  osm dispatch on {backend} / graphile-worker batched = {:.2} (rounds: {}; graphile-worker batched {:.0} jobs/s)",
                common::Percentiles::new(r.clone()).at(50.0),
                r.iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                common::Percentiles::new(peers.clone()).at(50.0)
            );
        }
        if let Some(peer) = unbatched {
            println!(
                "  osm dispatch on {backend} / graphile-worker unbatched = {rate:.0} / {peer:.0} = {:.2}",
                rate / peer
            );
        }
    }
    println!(
        "after: {}; {}",
        common::pg_test_fsync(scratch.path()),
        common::load_average()
    );
}

fn figures(all: &[f64]) -> String {
    all.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs graphile-worker in `mode` and prints its figure; None (said why) when it cannot run.
async fn graphile_figure(mode: &str, jobs: usize) -> Option<f64> {
    match graphile(mode, jobs).await {
        Ok((peer, wal)) => {
            println!(
                "[postgres] graphile-worker {mode}: {jobs} no-op jobs drained at {peer:.0} jobs/s (concurrency 10{}; one worker process, same PostgreSQL, shares the 2 cores; CHECKPOINT before the drain; WAL written during the drain {:.0} bytes per job)",
                if mode == "batched" {
                    ", localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0"
                } else {
                    ""
                },
                wal / jobs as f64
            );
            Some(peer)
        }
        Err(why) => {
            println!("[postgres] graphile-worker {mode}: not run: {why}");
            None
        }
    }
}

/// Fan-out and dispatch on one backend; returns dispatch's work requests per second.
async fn run(backend: &str, agents: usize, per_agent: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_database) = common::db_url(backend, dir.path()).await;
    let settings = osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        db: Some(url),
        scheduler: false,
        ..Default::default()
    };
    let server = osmd::start(settings).await.unwrap();
    fan_out(backend, &server).await;
    let rate = dispatch(backend, &server, agents, per_agent).await;
    server.stop().await.unwrap();
    if let Some(name) = pg_database {
        println!("[postgres]   {}", common::pg_update_kinds(&name).await);
        common::drop_pg_database(&name).await;
    }
    rate
}

async fn fan_out(backend: &str, server: &osmd::Server) {
    let store = &server.store;
    let tenancy = &server.tenancy_id;
    let now = Timestamp::now();
    let hosts: Vec<_> = (0..FLEET).map(|i| common::host(tenancy, i, now)).collect();
    for chunk in hosts.chunks(2000) {
        store.managed_instance_insert_many(chunk).await.unwrap();
    }
    let group = ManagedInstanceGroup {
        id: new_ocid(ResourceKind::ManagedInstanceGroup),
        compartment_id: tenancy.clone(),
        display_name: "everything".into(),
        description: None,
        os_family: OsFamily::Linux,
        lifecycle_state: LifecycleState::Active,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        time_created: now,
        version: 1,
        member_count: 0,
    };
    store
        .managed_instance_group_create(&group, None)
        .await
        .unwrap();
    for h in &hosts {
        store
            .managed_instance_group_attach(&group.id, &h.id, None)
            .await
            .unwrap();
    }
    let due = Timestamp::now();
    let job = ScheduledJob {
        id: new_ocid(ResourceKind::ScheduledJob),
        compartment_id: tenancy.clone(),
        display_name: "fan-out".into(),
        description: None,
        schedule_type: ScheduleType::Onetime,
        time_next_execution: Some(due),
        time_last_execution: None,
        interval_type: None,
        interval_value: None,
        managed_instances: vec![],
        managed_instance_groups: vec![IdName {
            id: group.id.clone(),
            display_name: group.display_name.clone(),
        }],
        operation_type: OperationType::UpdateAll,
        update_type: Some(UpdateType::Security),
        package_names: vec![],
        update_names: vec![],
        lifecycle_state: LifecycleState::Active,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        os_family: OsFamily::Linux,
        is_restricted: false,
        time_zone: None,
        time_created: due,
        version: 1,
    };
    store.scheduled_job_create(&job, None).await.unwrap();
    let started = Instant::now();
    let fired = osmd::scheduler::run_once(
        store.as_ref(),
        Timestamp::now(),
        SignedDuration::from_hours(1),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(fired[0].work_request_ids.len(), FLEET);
    println!(
        "[{backend}] fan-out: one job on a {FLEET}-instance group -> {FLEET} work requests committed in {:.0} ms",
        elapsed.as_secs_f64() * 1e3
    );
}

/// Enrols an osm-sim fleet, queues no-op work for each instance, and times osm-sim draining
/// it through the protocol; returns work requests completed per second.
async fn dispatch(backend: &str, server: &osmd::Server, agents: usize, per_agent: usize) -> f64 {
    let store = &server.store;
    let total = agents * per_agent;
    let cpu_before = CpuTimes::read();
    let mut sim = tokio::process::Command::new(sim_binary())
        .arg("--server")
        .arg(format!("https://{}", server.addr))
        .arg("--ca")
        .arg(server.ca_file())
        .arg("--install-key")
        .arg(server.data_dir.join("admin/install-key"))
        .args(["--instances", &agents.to_string()])
        .args(["--first", &(FLEET + 1).to_string()])
        .args([
            "--action-ms",
            "0",
            "--updates-per-instance",
            "0",
            "--security-ratio",
            "0",
        ])
        .args(["--max-claim", &CLAIM.to_string()])
        .args(["--exit-after", &total.to_string()])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("osm-sim runs (cargo build --release --bin osm-sim)");
    // Wait for the fleet to enrol and upload its (empty) inventories.
    let fleet = loop {
        let page = osm_core::page::PageRequest::all();
        let filter = osm_store::ManagedInstanceFilter {
            compartment_id: server.tenancy_id.clone(),
            ..Default::default()
        };
        let all = store
            .managed_instance_list(&filter, &page)
            .await
            .unwrap()
            .items;
        let sims: Vec<ManagedInstance> = all
            .into_iter()
            .filter(|m| m.display_name.starts_with("sim-"))
            .collect();
        let mut ready = sims.len() == agents;
        for m in &sims {
            if !ready {
                break;
            }
            ready = store.inventory_state(&m.id).await.unwrap().is_some();
        }
        if ready {
            break sims;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let enrol_cpu = CpuTimes::read().since(&cpu_before);
    let started = Instant::now();
    let mut wrs = vec![];
    for mi in &fleet {
        for _ in 0..per_agent {
            wrs.push(osm_core::work::work_request_for(
                mi,
                &WorkAction::UpdateAll {
                    update_type: UpdateType::All,
                },
                None,
                None,
                Timestamp::now(),
            ));
        }
    }
    store.work_request_insert_many(&wrs, &[]).await.unwrap();
    let enqueue = started.elapsed();

    let (checkpoint, wal_before) = if backend == "postgres" {
        (
            format!("; {}", common::pg_checkpoint().await),
            common::pg_wal_position().await,
        )
    } else {
        (String::new(), None)
    };
    let cpu_before = CpuTimes::read();
    let started = Instant::now();
    if std::env::var_os("OSM_BENCH_MARK").is_some() {
        std::fs::write("/tmp/drain-start", "").unwrap();
    }
    server.notify_work();
    let status = sim.wait().await.unwrap();
    let elapsed = started.elapsed();
    let cpu = CpuTimes::read().since(&cpu_before);
    let wal = match (wal_before, common::pg_wal_position().await) {
        (Some(a), Some(b)) if std::env::var_os("OSM_BENCH_LSN").is_some() => {
            format!("LSN {a:X} {b:X}")
        }
        (Some(a), Some(b)) => format!(
            "; WAL written during the drain {:.1} MB = {} bytes per work request",
            (b - a) as f64 / 1e6,
            (b - a) / total as i64
        ),
        _ => String::new(),
    };
    assert!(status.success(), "osm-sim ended with {status}");
    let succeeded: i64 = store
        .work_request_stats()
        .await
        .unwrap()
        .into_iter()
        .filter(|(s, ..)| *s == WorkRequestStatus::Succeeded)
        .map(|(.., n)| n)
        .sum();
    assert_eq!(
        succeeded as usize, total,
        "every queued work request succeeded"
    );
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "[{backend}] dispatch: {total} no-op work requests ({agents} osm-sim instances × {per_agent}, queued in {:.2} s) claimed and completed through the agent protocol in {:.2} s = {rate:.0} work requests/s (long polls claiming up to {CLAIM}, one batched report per claim; osm-sim is a separate process sharing the 2 cores with osmd{}{checkpoint})",
        enqueue.as_secs_f64(),
        elapsed.as_secs_f64(),
        if backend == "postgres" {
            " and PostgreSQL"
        } else {
            ""
        },
    );
    println!(
        "[{backend}]   CPU during the drain ({:.2} s × {} cores = {:.2} core-s): osmd {:.2} s ({:.0} µs per work request), osm-sim {:.2} s, PostgreSQL {:.2} s, other processes {:.2} s, idle {:.2} s, waiting for I/O {:.2} s (enrolment took {:.2} core-s of osmd before){wal}",
        elapsed.as_secs_f64(),
        cpu.cores,
        elapsed.as_secs_f64() * cpu.cores as f64,
        cpu.this_process,
        cpu.this_process * 1e6 / total as f64,
        cpu.children,
        cpu.postgres,
        cpu.busy - cpu.this_process - cpu.children - cpu.postgres,
        cpu.idle,
        cpu.iowait,
        enrol_cpu.this_process,
    );
    rate
}

/// `OSM_BENCH_SIM`, or the release osm-sim, built now (cargo runs benches with `CARGO` set).
fn sim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("OSM_BENCH_SIM") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "-p", "osm-sim", "--bin", "osm-sim"])
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building osm-sim failed");
    // target/release/deps/engine-… → target/release/osm-sim
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(2).unwrap().join("osm-sim")
}

/// CPU time from `/proc`, in seconds: this process, its children it waited for, and the whole
/// machine.
struct CpuTimes {
    this_process: f64,
    children: f64,
    /// Every process named `postgres` (the server's backends and helpers) alive at both reads.
    postgres: f64,
    busy: f64,
    idle: f64,
    iowait: f64,
    cores: usize,
}

impl CpuTimes {
    fn read() -> CpuTimes {
        // Both files count in clock ticks of 1/100 s (USER_HZ on Linux).
        let ticks = |s: &str| s.parse::<f64>().unwrap_or(0.0) / 100.0;
        let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may hold spaces) end with ')'.
        let after = own.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let this_process =
            f.get(11).map_or(0.0, |v| ticks(v)) + f.get(12).map_or(0.0, |v| ticks(v));
        let children = f.get(13).map_or(0.0, |v| ticks(v)) + f.get(14).map_or(0.0, |v| ticks(v));
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let all: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(ticks)
            .collect();
        let get = |i: usize| all.get(i).copied().unwrap_or(0.0);
        // user nice system idle iowait irq softirq steal
        let idle = get(3);
        let iowait = get(4);
        let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        CpuTimes {
            this_process,
            children,
            postgres: postgres_cpu(),
            busy,
            idle,
            iowait,
            cores,
        }
    }

    fn since(&self, before: &CpuTimes) -> CpuTimes {
        CpuTimes {
            this_process: self.this_process - before.this_process,
            children: self.children - before.children,
            postgres: self.postgres - before.postgres,
            busy: self.busy - before.busy,
            idle: self.idle - before.idle,
            iowait: self.iowait - before.iowait,
            cores: self.cores,
        }
    }
}

/// CPU seconds of the processes named `postgres`.
fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, rest) = stat.rsplit_once(')')?;
            if !head.ends_with("(postgres") {
                return None;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            Some((ticks(11) + ticks(12)) / 100.0)
        })
        .sum()
}

/// Where the peers are installed: `<target dir>/bench-peers/graphile`.
fn peer_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/release/deps/engine-… → target
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        });
    target.join("bench-peers/graphile")
}

/// Copies the peer script next to its `node_modules` and installs those the first time.
fn install_graphile() -> Result<PathBuf, String> {
    let dir = peer_dir();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for f in ["package.json", "graphile.mjs"] {
        std::fs::copy(source.join(f), dir.join(f)).map_err(|e| format!("copying {f}: {e}"))?;
    }
    if !dir.join("node_modules/graphile-worker").exists() {
        println!(
            "installing graphile-worker and pg with npm into {}",
            dir.display()
        );
        let out = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--fetch-retries=1",
                "--fetch-timeout=30000",
            ])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm could not run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "npm install failed (registry unreachable?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(dir)
}

/// graphile-worker drains `jobs` no-op jobs in a fresh database; returns jobs per second and
/// the WAL bytes the drain wrote.
async fn graphile(mode: &str, jobs: usize) -> Result<(f64, f64), String> {
    let dir = install_graphile()?;
    let (name, url) = common::fresh_pg_database("osm_bench_graphile").await;
    let out = tokio::process::Command::new("node")
        .arg("graphile.mjs")
        .arg(mode)
        .arg(jobs.to_string())
        .arg(&url)
        .current_dir(&dir)
        .output()
        .await;
    common::drop_pg_database(&name).await;
    let out = out.map_err(|e| format!("node could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "graphile.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let figures: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("graphile.mjs printed {line:?}: {e}"))?;
    let rate = figures["jobsPerSecond"]
        .as_f64()
        .ok_or_else(|| format!("graphile.mjs printed no jobsPerSecond: {line}"))?;
    Ok((rate, figures["walBytes"].as_f64().unwrap_or(f64::NAN)))
}
