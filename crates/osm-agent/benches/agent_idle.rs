//! Agent benchmark (prints figures; record them in docs/benchmarks.md):
//!
//! 1. the cost of one inventory scan (wall time, and CPU of the agent plus the package
//!    manager it runs) of a system — by default this machine, read-only;
//! 2. the idle agent's resident memory and CPU over a window with regular heartbeats,
//!    against a real osmd.
//!
//! `cargo bench -p osm-agent --bench agent_idle`; knobs (environment):
//! `OSM_BENCH_IDLE_SECS` (600), `OSM_BENCH_HEARTBEAT_SECS` (30), `OSM_BENCH_ROOT` (/),
//! `OSM_BENCH_SCANS` (5).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use osm_agent::backend::Backend;
use osm_agent::runner::Runner;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn children_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let self_ru = {
        let mut s: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut s) };
        s
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime) + tv(self_ru.ru_utime) + tv(self_ru.ru_stime)
}

/// (resident KiB, CPU ticks) of a process.
fn sample(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: state is 3rd; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = std::env::var("OSM_BENCH_ROOT").unwrap_or_else(|_| "/".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. Inventory scan.
    let runner = Runner::new(Some(PathBuf::from(&root)));
    let backend = Backend::detect(&runner, None).expect("a package manager");
    let scans = env_u64("OSM_BENCH_SCANS", 5);
    let mut walls = vec![];
    let mut cpus = vec![];
    let mut last = None;
    for _ in 0..scans {
        let (t, c) = (Instant::now(), children_cpu());
        let inv = runtime.block_on(backend.scan()).expect("scan");
        walls.push(t.elapsed());
        cpus.push(children_cpu() - c);
        last = Some(inv);
    }
    walls.sort();
    cpus.sort();
    let inv = last.unwrap();
    let body = inv.full_body().to_string();
    println!(
        "inventory scan of {root} ({}): {} installed, {} updates, {} available; full body {} KiB",
        backend.name(),
        inv.installed.len(),
        inv.updates.len(),
        inv.available.len(),
        body.len() / 1024
    );
    println!(
        "  wall: median {:.0} ms (min {:.0}, max {:.0}) over {scans} scans; CPU (agent + {}): median {:.0} ms",
        walls[walls.len() / 2].as_secs_f64() * 1e3,
        walls[0].as_secs_f64() * 1e3,
        walls[walls.len() - 1].as_secs_f64() * 1e3,
        backend.name(),
        cpus[cpus.len() / 2].as_secs_f64() * 1e3
    );

    // 2. Idle agent against a real osmd.
    let idle = env_u64("OSM_BENCH_IDLE_SECS", 600);
    let heartbeat = env_u64("OSM_BENCH_HEARTBEAT_SECS", 30);
    let osmd_bin = target_dir().join("osmd");
    if !osmd_bin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--release", "--bin", "osmd"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .unwrap()
            .success();
        assert!(ok, "building osmd failed");
    }
    let agent_bin = target_dir().join("osm-agent");
    assert!(
        agent_bin.exists(),
        "build the agent first: cargo build --release --bin osm-agent"
    );
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut osmd = Command::new(&osmd_bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !data.path().join("admin/install-key").exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let state = data.path().join("agent-state");
    let agent = |sub: &str| {
        let mut c = Command::new(&agent_bin);
        c.arg(sub)
            .args(["--server", &format!("https://127.0.0.1:{port}")])
            .arg("--ca")
            .arg(data.path().join("tls/ca.pem"))
            .arg("--install-key")
            .arg(data.path().join("admin/install-key"))
            .arg("--state-dir")
            .arg(&state)
            .args(["--root", &root])
            .env("OSM_AGENT_HEARTBEAT_SECS", heartbeat.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    assert!(
        agent("enroll").status().unwrap().success(),
        "enrolment failed"
    );
    let mut child = agent("run").spawn().unwrap();
    let pid = child.id();
    // Let the start-up scan and upload finish.
    std::thread::sleep(Duration::from_secs(20));
    let (rss_start, ticks_start) = sample(pid);
    let started = Instant::now();
    let mut rss_max = rss_start;
    while started.elapsed() < Duration::from_secs(idle) {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(idle)));
        rss_max = rss_max.max(sample(pid).0);
    }
    let (rss_end, ticks_end) = sample(pid);
    let window = started.elapsed().as_secs_f64();
    let tick_hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (ticks_end - ticks_start) as f64 / tick_hz;
    println!(
        "idle agent over {window:.0} s with {heartbeat} s heartbeats and 25 s long-polls: RSS {} KiB at start, {} KiB at end, {} KiB max; CPU {:.2} s = {:.3} %",
        rss_start,
        rss_end,
        rss_max,
        cpu,
        cpu / window * 100.0
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = osmd.kill();
    let _ = osmd.wait();
}
