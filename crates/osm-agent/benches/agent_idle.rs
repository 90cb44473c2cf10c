//! Agent benchmark (prints figures; record them in docs/benchmarks.md):
//!
//! 1. the cost of one inventory scan (wall time, and CPU of the agent plus the package
//!    manager it runs) of a Debian 12 root with ~1,000 installed packages: the tests' cached
//!    minimal root plus a desktop's worth of real packages installed with apt inside it, built
//!    once into `target/osm-agent-roots/bookworm-1000` (downloads ~600 MB from Debian's mirror);
//! 2. the idle agent's resident memory and CPU over a window with regular heartbeats, managing
//!    that root, against a real osmd.
//!
//! `cargo bench -p osm-agent --bench agent_idle`; knobs (environment):
//! `OSM_BENCH_IDLE_SECS` (600), `OSM_BENCH_HEARTBEAT_SECS` (30), `OSM_BENCH_ROOT` (another
//! root to scan and manage, e.g. `/`), `OSM_BENCH_SCANS` (5), `OSM_BENCH_AGENT` (the agent
//! binary to idle, e.g. the packaged build `target/agent/osm-agent` of
//! `cargo build --profile agent --bin osm-agent`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use osm_agent::backend::Backend;
use osm_agent::runner::Runner;

/// Installed with `--no-install-recommends` on the minimal root (~90 packages): ~1,000 in all.
/// (Nothing whose maintainer scripts need `/proc`, which the chroot lacks: emacs fails.)
const LARGE_ROOT_PACKAGES: &[&str] = &[
    "gnome-core",
    "build-essential",
    "python3-scipy",
    "qtbase5-dev",
    "libgtk-3-dev",
    "xfce4",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of this process and of its waited-for children.
fn cpu_with_children() -> Duration {
    let usage = |who| {
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

/// What `/proc/PID` says about a process's memory and CPU.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    threads: u64,
    /// utime + stime, in clock ticks.
    ticks: u64,
}

fn sample(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name: state is the 1st field, utime and stime the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Sample {
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
        threads: field("Threads:"),
        ticks: num(11) + num(12),
    }
}

/// The cached ~1,000-package root, built on first use from a copy of the tests' minimal root.
fn large_debian_root() -> PathBuf {
    let cache = support::target_dir().join("osm-agent-roots");
    let ready = cache.join("bookworm-1000");
    if ready.join("usr/bin/apt-get").exists() {
        return ready;
    }
    eprintln!(
        "creating {} (once; downloads ~600 MB of Debian packages)",
        ready.display()
    );
    let copy = support::debian_root();
    let root = copy.path().join("root");
    if let Ok(resolv) = std::fs::read("/etc/resolv.conf") {
        std::fs::write(root.join("etc/resolv.conf"), resolv).unwrap();
    }
    // No service starts inside the root.
    let policy = root.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o755)).unwrap();
    support::chroot(&root, &["apt-get", "-q", "update"]);
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend(LARGE_ROOT_PACKAGES);
    support::chroot(&root, &install);
    support::chroot(&root, &["apt-get", "clean"]);
    std::fs::rename(&root, &ready).unwrap();
    ready
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn scan_cost(runtime: &tokio::runtime::Runtime, root: &Path) {
    let runner = Runner::new(Some(root.to_path_buf()));
    let backend = Backend::detect(&runner, None).expect("a package manager");
    let scans = env_u64("OSM_BENCH_SCANS", 5).max(1);
    let mut walls = vec![];
    let mut cpus = vec![];
    let mut last = None;
    for _ in 0..scans {
        let (t, c) = (Instant::now(), cpu_with_children());
        let inv = runtime.block_on(backend.scan()).expect("scan");
        walls.push(t.elapsed());
        cpus.push(cpu_with_children() - c);
        last = Some(inv);
    }
    let inv = last.unwrap();
    let body = inv.full_body().to_string();
    println!(
        "inventory scan of {} ({}): {} installed, {} updates, {} available; full body {} KiB",
        root.display(),
        backend.name(),
        inv.installed.len(),
        inv.updates.len(),
        inv.available.len(),
        body.len() / 1024
    );
    let (wall, wall_min, wall_max) = median(walls);
    let (cpu, cpu_min, cpu_max) = median(cpus);
    println!(
        "  wall: median {:.0} ms (min {:.0}, max {:.0}) over {scans} scans; CPU (agent + {}): median {:.0} ms (min {:.0}, max {:.0})",
        ms(wall),
        ms(wall_min),
        ms(wall_max),
        backend.name(),
        ms(cpu),
        ms(cpu_min),
        ms(cpu_max),
    );
}

fn idle_cost(runtime: &tokio::runtime::Runtime, root: &Path) {
    let idle = env_u64("OSM_BENCH_IDLE_SECS", 600);
    let heartbeat = env_u64("OSM_BENCH_HEARTBEAT_SECS", 30);
    let osmd = runtime.block_on(support::Osmd::start());
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("agent-state");
    // The packaged build (`--profile agent`) can be measured instead of this bench's own.
    let bin = std::env::var_os("OSM_BENCH_AGENT").unwrap_or(support::agent_bin().into());
    println!("idle agent binary: {}", bin.to_string_lossy());
    let agent = |sub: &str| {
        let mut c = std::process::Command::new(&bin);
        c.arg(sub)
            .args(["--server", &osmd.url()])
            .arg("--ca")
            .arg(osmd.ca())
            .arg("--install-key")
            .arg(osmd.install_key())
            .arg("--state-dir")
            .arg(&state)
            .arg("--root")
            .arg(root)
            .env("OSM_AGENT_HEARTBEAT_SECS", heartbeat.to_string())
            .env("RUST_LOG", "warn");
        c
    };
    let out = agent("enroll").output().unwrap();
    assert!(
        out.status.success(),
        "enrolment failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = work.path().join("agent.log");
    let mut cmd = agent("run");
    cmd.stdin(Stdio::null());
    let proc = support::AgentProc::spawn(cmd, log.clone());
    let pid = proc.child.id();
    // Let the start-up scan and upload finish.
    let settle = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let start = sample(pid);
    println!(
        "agent after start-up ({:.0} s, first scan and upload done): RSS {} KiB (anon {}, file {}), {} threads, CPU {:.2} s",
        settle.elapsed().as_secs_f64(),
        start.rss_kib,
        start.anon_kib,
        start.file_kib,
        start.threads,
        start.ticks as f64 / ticks_per_second()
    );
    let started = Instant::now();
    let mut peak = start;
    while started.elapsed() < Duration::from_secs(idle) {
        std::thread::sleep(Duration::from_secs(1));
        let s = sample(pid);
        if s.rss_kib > peak.rss_kib {
            peak = s;
        }
    }
    let end = sample(pid);
    let window = started.elapsed().as_secs_f64();
    let cpu = (end.ticks - start.ticks) as f64 / ticks_per_second();
    println!(
        "idle agent over {window:.0} s with {heartbeat} s heartbeats and 25 s long-polls: RSS {} KiB at start, {} KiB at end (anon {}, file {}), {} KiB peak; CPU {:.2} s = {:.3} %",
        start.rss_kib,
        end.rss_kib,
        end.anon_kib,
        end.file_kib,
        peak.rss_kib,
        cpu,
        cpu / window * 100.0
    );
    let status = std::process::Command::new(support::agent_bin())
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&status.stdout));
    let warnings = std::fs::read_to_string(&log).unwrap_or_default();
    if !warnings.trim().is_empty() {
        println!("agent log:\n{warnings}");
    }
    drop(proc);
}

fn ticks_per_second() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let root = match std::env::var_os("OSM_BENCH_ROOT") {
        Some(r) => PathBuf::from(r),
        None => large_debian_root(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    scan_cost(&runtime, &root);
    idle_cost(&runtime, &root);
}
