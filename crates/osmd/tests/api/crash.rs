//! The crash test. osmd runs as a child process with a fleet simulated by osm-sim (another
//! child process, on the real agent protocol); scheduled jobs come due across the test window
//! (one-time jobs at staggered times, hourly and daily ones, run-now calls retried with their
//! retry token until acknowledged) while osmd is killed with SIGKILL at random moments and
//! restarted. When the run has settled, the store must show that:
//!
//! - every occurrence that came due fired exactly once: one set of work requests per job and
//!   occurrence time, one work request per instance the job reaches — never two, none lost
//!   (all are far inside the catch-up window, so none may be recorded as missed);
//! - every acknowledged run-now fired exactly one occurrence, however often it was retried;
//! - no work request stayed `IN_PROGRESS` past its lease: the run settles with every work
//!   request terminal, and a failure is only ever `LeaseExpired`;
//! - every outcome osmd acknowledged to osm-sim is the one stored.
//!
//! Sizes come from the environment (defaults: the short form CI runs):
//! `OSM_CRASH_JOBS` (120), `OSM_CRASH_INSTANCES` (12), `OSM_CRASH_SECS` (the window jobs
//! come due in, 25), `OSM_CRASH_KILLS` (20), `OSM_CRASH_LEASE_SECS` (10), and
//! `OSM_CRASH_SEED` to replay a run (the seed is printed first).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use osm_client::{Client, OciConfig};
use osm_core::page::PageRequest;
use osm_core::{WorkRequestStatus, time::format_rfc3339};
use osm_store::{Store, WorkRequestFilter};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::{Backend, fresh_pg_database, pg_admin_url};

#[test]
fn sqlite() {
    crash_run(Backend::Sqlite);
}

#[test]
fn postgres() {
    crash_run(Backend::Postgres);
}

struct Knobs {
    jobs: usize,
    instances: usize,
    window: Duration,
    kills: usize,
    lease_secs: u64,
    seed: u64,
}

impl Knobs {
    fn from_env() -> Knobs {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
                Err(_) => default,
            }
        }
        Knobs {
            jobs: var("OSM_CRASH_JOBS", 120),
            instances: var("OSM_CRASH_INSTANCES", 12),
            window: Duration::from_secs(var("OSM_CRASH_SECS", 25)),
            kills: var("OSM_CRASH_KILLS", 20),
            lease_secs: var("OSM_CRASH_LEASE_SECS", 10),
            seed: var("OSM_CRASH_SEED", rand::rng().random()),
        }
    }
}

/// osmd as a child process that can be killed and started again on the same port and store.
struct Osmd {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    db: String,
    lease_secs: u64,
    starts: usize,
}

impl Osmd {
    fn log(&self) -> PathBuf {
        self.dir.join("osmd.log")
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        use std::io::Write;
        writeln!(log, "=== start {}", self.starts).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_osmd"));
        // Only the settings given here: none leak in from the caller's environment.
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("OSM_")) {
            command.env_remove(name);
        }
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--db", &self.db])
            .env("OSM_LEASE_SECS", self.lease_secs.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL, after checking osmd did not die by itself.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("osmd runs");
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "osmd exited by itself ({status}) before kill {}; see {}",
                self.starts,
                self.log().display()
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Osmd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child that is killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(osmd: &Osmd, ca: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .build()
        .unwrap();
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", osmd.url())).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "osmd did not answer /healthz; see {}",
            osmd.log().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The osm-sim binary next to osmd's. Under nextest it is built first, so a lone
/// `cargo nextest run -p osmd` works; `cargo test` holds the build lock while tests run, so
/// there it must be built beforehand (`scripts/test` does).
fn osm_sim_binary() -> PathBuf {
    if std::env::var_os("NEXTEST").is_some() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "osm-sim", "--bin", "osm-sim"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building osm-sim failed");
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_osmd")).with_file_name("osm-sim");
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p osm-sim",
        bin.display()
    );
    bin
}

/// Every item of a signed list call, following `opc-next-page`.
async fn list_all(client: &Client, path: &str) -> Vec<Value> {
    let mut items = vec![];
    let mut url = path.to_string();
    loop {
        let r = client.get(&url).await.unwrap();
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        items.extend(r.json::<Vec<Value>>());
        match r.header("opc-next-page") {
            Some(token) => url = format!("{path}&page={token}"),
            None => return items,
        }
    }
}

async fn post_ok(client: &Client, path: &str, body: Option<&Value>) -> Value {
    let r = client.post_json(path, body, &[]).await.unwrap();
    assert!(
        r.status == 200 || r.status == 204,
        "{path}: {} {}",
        r.status,
        r.text()
    );
    if r.status == 200 {
        r.json()
    } else {
        Value::Null
    }
}

/// What the test asked for: a job, when it comes due and which instances it reaches.
struct PlannedJob {
    id: String,
    name: String,
    due: Timestamp,
    /// `None` for a one-time job.
    interval: Option<SignedDuration>,
    reaches: BTreeSet<String>,
}

fn crash_run(backend: Backend) {
    let knobs = Knobs::from_env();
    println!(
        "crash test ({backend:?}): OSM_CRASH_SEED={} jobs={} instances={} window={}s kills={} lease={}s",
        knobs.seed,
        knobs.jobs,
        knobs.instances,
        knobs.window.as_secs(),
        knobs.kills,
        knobs.lease_secs
    );
    let began = Instant::now();
    let mut rng = StdRng::seed_from_u64(knobs.seed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim_bin = osm_sim_binary();
    let dir = tempfile::tempdir().unwrap();
    let (db, pg_name) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("osm.db").display()),
            None,
        ),
        Backend::Postgres => {
            let (url, name) = rt.block_on(fresh_pg_database());
            (url, Some(name))
        }
    };
    let mut osmd = Osmd {
        child: None,
        dir: dir.path().to_path_buf(),
        port: free_port(),
        db: db.clone(),
        lease_secs: knobs.lease_secs,
        starts: 0,
    };
    let ca = dir.path().join("tls/ca.pem");
    osmd.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("admin/install-key").exists() {
        assert!(Instant::now() < deadline, "osmd did not bootstrap");
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(wait_healthy(&osmd, &ca));

    // The fleet: osm-sim enrols the instances and serves their work from now on.
    let acknowledged_log = dir.path().join("acknowledged");
    let sim_log = std::fs::File::create(dir.path().join("osm-sim.log")).unwrap();
    let _sim = KillOnDrop(
        Command::new(&sim_bin)
            .args(["--server", &osmd.url(), "--instances"])
            .arg(knobs.instances.to_string())
            .arg("--ca")
            .arg(&ca)
            .arg("--install-key")
            .arg(dir.path().join("admin/install-key"))
            .args(["--action-ms", "20", "--acknowledged-log"])
            .arg(&acknowledged_log)
            .stdout(sim_log.try_clone().unwrap())
            .stderr(sim_log)
            .spawn()
            .unwrap(),
    );

    let config = OciConfig::load(&dir.path().join("admin/config"), "DEFAULT").unwrap();
    let tenancy = config.tenancy.clone();
    let client = Arc::new(Client::from_config(&config, Some(&ca), None).unwrap());
    let setup = Instant::now();
    let (planned, window_start) = rt.block_on(async {
        let list = format!("/20190801/managedInstances?compartmentId={tenancy}&limit=100");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut instances = loop {
            let found = list_all(&client, &list).await;
            if found.len() >= knobs.instances {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "osm-sim enrolled {} of {} instances",
                found.len(),
                knobs.instances
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(instances.len(), knobs.instances, "one instance per simulated host");
        instances.sort_by(|a, b| a["displayName"].as_str().cmp(&b["displayName"].as_str()));
        let ids: Vec<String> = instances
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();

        // Groups of about ten; every instance in exactly one.
        let group_count = knobs.instances.div_ceil(10).max(2).min(knobs.instances);
        let mut groups = vec![];
        for g in 0..group_count {
            let body = json!({"compartmentId": tenancy, "displayName": format!("crash-{g}"), "osFamily": "LINUX"});
            let created = post_ok(&client, "/20190801/managedInstanceGroups", Some(&body)).await;
            groups.push((
                created["id"].as_str().unwrap().to_string(),
                BTreeSet::new(),
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            let (group_id, members) = &mut groups[i % group_count];
            let path = format!(
                "/20190801/managedInstanceGroups/{group_id}/actions/attachManagedInstance?managedInstanceId={id}"
            );
            post_ok(&client, &path, None).await;
            members.insert(id.clone());
        }

        // Due times spread over the window, which opens once the jobs exist (about 4 ms per
        // job on this machine; a job created late simply fires before the first kill).
        let window_start = Timestamp::now()
            + SignedDuration::from_secs(2)
            + SignedDuration::from_millis(5 * knobs.jobs as i64);
        // Whole milliseconds, as the wire carries them.
        let window_start = Timestamp::from_millisecond(window_start.as_millisecond()).unwrap();
        let window_ms = knobs.window.as_millis() as i64;
        // A tenth of the jobs come due at one instant, to fire in batches.
        let crowd = window_start + SignedDuration::from_millis(window_ms / 2);
        let mut specs = vec![];
        for i in 0..knobs.jobs {
            let due = if i % 10 == 9 {
                crowd
            } else {
                window_start + SignedDuration::from_millis(rng.random_range(0..window_ms))
            };
            // Most jobs name a group, some two (whose members they reach once each), some
            // name instances directly (a job names either groups or instances).
            let g = i % group_count;
            let (targets_groups, targets_instances) = if i % 7 == 3 {
                let first = rng.random_range(0..ids.len());
                let named = (0..3.min(ids.len())).map(|k| ids[(first + k) % ids.len()].clone());
                (vec![], named.collect())
            } else if i % 11 == 5 {
                (vec![g, (g + 1) % group_count], vec![])
            } else {
                (vec![g], vec![])
            };
            let mut reaches = BTreeSet::new();
            for &t in &targets_groups {
                reaches.extend(groups[t].1.iter().cloned());
            }
            reaches.extend(targets_instances.iter().cloned());
            let name = format!("crash-job-{i}");
            let mut body = json!({
                "compartmentId": tenancy, "displayName": name,
                "scheduleType": "ONETIME", "timeNextExecution": format_rfc3339(due),
                "operationType": "UPDATEALL", "updateType": "SECURITY"});
            if targets_instances.is_empty() {
                body["managedInstanceGroups"] =
                    targets_groups.iter().map(|&t| json!({"id": groups[t].0})).collect();
            } else {
                body["managedInstances"] =
                    targets_instances.iter().map(|id| json!({"id": id})).collect();
            }
            if i % 4 == 1 {
                body["operationType"] = json!("INSTALL");
                body["packageNames"] = json!([{"name": "openssl"}, {"name": "curl"}]);
                body.as_object_mut().unwrap().remove("updateType");
            }
            let interval = match i % 5 {
                0 => Some(("HOUR", SignedDuration::from_hours(1))),
                2 => Some(("DAY", SignedDuration::from_hours(24))),
                _ => None,
            };
            if let Some((kind, _)) = interval {
                body["scheduleType"] = json!("RECURRING");
                body["intervalType"] = json!(kind);
                body["intervalValue"] = json!("1");
            }
            specs.push((body, PlannedJob { id: String::new(), name, due, interval: interval.map(|(_, d)| d), reaches }));
        }
        let planned: Vec<PlannedJob> = futures::stream::iter(specs)
            .map(|(body, mut job)| {
                let client = client.clone();
                async move {
                    let created = post_ok(&client, "/20190801/scheduledJobs", Some(&body)).await;
                    job.id = created["id"].as_str().unwrap().to_string();
                    job
                }
            })
            .buffered(4)
            .collect()
            .await;
        (planned, window_start)
    });
    let setup_time = setup.elapsed();
    let window_end = window_start + SignedDuration::try_from(knobs.window).unwrap();
    let late = Timestamp::now() - window_start;
    if late.is_positive() {
        println!("setup ran {late:#} into the window: the first jobs fire before the first kill");
    }

    // Run-now calls during the kills: each with its own retry token, repeated until osmd
    // acknowledges it. A tenth as many as there are jobs, on the recurring ones.
    let recurring: Vec<String> = planned
        .iter()
        .filter(|j| j.interval.is_some())
        .map(|j| j.id.clone())
        .collect();
    let phase = until(window_end) + Duration::from_secs(1);
    let run_nows = {
        let client = client.clone();
        let count = knobs.jobs / 10;
        let mut rng = StdRng::seed_from_u64(knobs.seed ^ 0x5eed);
        rt.spawn(async move {
            let mut acknowledged: HashMap<String, usize> = HashMap::new();
            let mut attempts = 0;
            let gap = phase.as_millis() as u64 / (count as u64 + 1);
            for _ in 0..if recurring.is_empty() { 0 } else { count } {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..=2 * gap))).await;
                let job = &recurring[rng.random_range(0..recurring.len())];
                let token = uuid::Uuid::new_v4().to_string();
                let path = format!("/20190801/scheduledJobs/{job}/actions/runNow");
                loop {
                    attempts += 1;
                    match client
                        .post_json(&path, None, &[("opc-retry-token", &token)])
                        .await
                    {
                        Ok(r) if r.status == 200 || r.status == 204 => break,
                        Ok(r) if r.status >= 500 => {}
                        Ok(r) => panic!("runNow {job}: {} {}", r.status, r.text()),
                        Err(_) => {} // osmd is down or was killed mid-request: retry.
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                *acknowledged.entry(job.clone()).or_default() += 1;
            }
            (acknowledged, attempts)
        })
    };

    // The kills: at random moments until the window has closed, each followed by a random
    // pause (occurrences come due while osmd is down) and a restart. A kill may land while
    // osmd is still starting up.
    let kill_phase = Instant::now();
    let mut moments: Vec<Duration> = (0..knobs.kills)
        .map(|_| Duration::from_millis(rng.random_range(0..phase.as_millis() as u64)))
        .collect();
    moments.sort();
    let mut longest_down = Duration::ZERO;
    for at in &moments {
        if let Some(wait) = (*at).checked_sub(kill_phase.elapsed()) {
            std::thread::sleep(wait);
        }
        osmd.kill();
        let down = Duration::from_millis(rng.random_range(0..600));
        longest_down = longest_down.max(down);
        std::thread::sleep(down);
        osmd.start();
    }
    let kills = moments.len();
    rt.block_on(wait_healthy(&osmd, &ca));
    let (run_now_acknowledged, run_now_attempts) = rt.block_on(run_nows).unwrap();
    let kill_phase_time = kill_phase.elapsed();

    // Settle: everything due has fired and osm-sim has claimed all queued work; then whatever
    // is still running must end within a lease (plus a pass of the lease rescuer).
    let store = rt.block_on(osm_store::connect(&db)).unwrap();
    let lease = Duration::from_secs(knobs.lease_secs);
    let settle = Instant::now();
    // Generous: osm-sim does about 100 work requests a second here.
    let expected_work: usize = planned.iter().map(|j| j.reaches.len()).sum();
    let drain_limit = Duration::from_secs(60) + Duration::from_millis(20 * expected_work as u64);
    let mut drained: Option<Instant> = None;
    loop {
        let (queued, running) = rt.block_on(async {
            let next_due = store.scheduled_job_next_due().await.unwrap();
            let stats = store.work_request_stats().await.unwrap();
            let count = |want: &[WorkRequestStatus]| -> i64 {
                stats
                    .iter()
                    .filter(|(s, _, _)| want.contains(s))
                    .map(|(_, _, n)| n)
                    .sum()
            };
            let due_left = next_due.is_some_and(|t| t <= window_end);
            let queued = count(&[WorkRequestStatus::Accepted]) + i64::from(due_left);
            (
                queued,
                count(&[WorkRequestStatus::InProgress, WorkRequestStatus::Cancelling]),
            )
        });
        if drained.is_none() && queued == 0 && Timestamp::now() > window_end {
            drained = Some(Instant::now());
        }
        if drained.is_some() && running == 0 {
            break;
        }
        match drained {
            None => assert!(
                settle.elapsed() < drain_limit,
                "osm-sim did not work through the queue in {drain_limit:?}: {queued} queued, {running} running"
            ),
            Some(d) => assert!(
                d.elapsed() < lease + Duration::from_secs(15),
                "{running} work requests still IN_PROGRESS/CANCELLING {:?} after the queue drained (lease {lease:?}): leases are not enforced",
                d.elapsed()
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let settle_time = settle.elapsed();
    drop(_sim);
    osmd.kill();

    // The evidence, from the store.
    let acknowledged: HashMap<String, String> = std::fs::read_to_string(&acknowledged_log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (id, outcome) = l.split_once(' ').unwrap();
            (id.to_string(), outcome.to_string())
        })
        .collect();
    let summary = rt.block_on(verify(
        store.as_ref(),
        &tenancy,
        &planned,
        &run_now_acknowledged,
        &acknowledged,
    ));
    println!(
        "crash test ({backend:?}) passed, seed {}: {} jobs ({} recurring) on {} instances; {} occurrences fired \
         ({} scheduled, {} run-now from {} attempts); {} work requests ({} succeeded, {} failed by an expired lease, \
         {} outcomes acknowledged to osm-sim); {} kills (longest pause {:?}), {} starts; longest firing delay {}; \
         setup {:.1?}, kill phase {:.1?}, settle {:.1?}, total {:.1?}",
        knobs.seed,
        planned.len(),
        planned.iter().filter(|j| j.interval.is_some()).count(),
        knobs.instances,
        summary.scheduled + summary.run_now,
        summary.scheduled,
        summary.run_now,
        run_now_attempts,
        summary.work_requests,
        summary.succeeded,
        summary.lease_expired,
        acknowledged.len(),
        kills,
        longest_down,
        osmd.starts,
        summary.longest_delay,
        setup_time,
        kill_phase_time,
        settle_time,
        began.elapsed()
    );
    drop(store);
    if let Some(name) = pg_name {
        rt.block_on(drop_pg_database(&name));
    }
}

/// How long from now until `t` (zero when it has passed).
fn until(t: Timestamp) -> Duration {
    Duration::try_from(t - Timestamp::now()).unwrap_or(Duration::ZERO)
}

#[derive(Default)]
struct Summary {
    scheduled: usize,
    run_now: usize,
    work_requests: usize,
    succeeded: usize,
    lease_expired: usize,
    longest_delay: SignedDuration,
}

async fn verify(
    store: &dyn Store,
    tenancy: &str,
    planned: &[PlannedJob],
    run_nows: &HashMap<String, usize>,
    acknowledged: &HashMap<String, String>,
) -> Summary {
    let mut summary = Summary::default();
    let all = store
        .work_request_list(
            &WorkRequestFilter {
                compartment_id: tenancy.to_string(),
                ..Default::default()
            },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items;
    let by_id: HashMap<&str, &osm_core::WorkRequest> =
        all.iter().map(|w| (w.id.as_str(), w)).collect();
    summary.work_requests = all.len();

    // The occurrence each work request belongs to, from its first log line.
    let occurrence_of: HashMap<String, Timestamp> = futures::stream::iter(all.iter())
        .map(|w| async move {
            let logs = store
                .work_request_logs(&w.id, &PageRequest::all())
                .await
                .unwrap()
                .items;
            let line = logs
                .iter()
                .find_map(|l| {
                    l.message
                        .split_once(", occurrence of ")
                        .map(|(_, t)| t.to_string())
                })
                .unwrap_or_else(|| panic!("work request {} names no occurrence: {logs:?}", w.id));
            (w.id.clone(), osm_core::time::parse_rfc3339(&line).unwrap())
        })
        .buffer_unordered(8)
        .collect()
        .await;

    let mut from_jobs = 0;
    for job in planned {
        let stored = store.scheduled_job_get(&job.id).await.unwrap().unwrap();
        let wrs = store.scheduled_job_work_requests(&job.id).await.unwrap();
        from_jobs += wrs.len();
        // occurrence time → instance → work requests
        let mut occurrences: BTreeMap<Timestamp, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for w in &wrs {
            let wr = by_id[w.id.as_str()];
            let instance = wr.managed_instance.as_ref().unwrap().id.clone();
            occurrences
                .entry(occurrence_of[&w.id])
                .or_default()
                .entry(instance)
                .or_default()
                .push(w.id.clone());
            summary.longest_delay = summary
                .longest_delay
                .max(wr.time_accepted - occurrence_of[&w.id]);
        }
        for (at, per_instance) in &occurrences {
            for (instance, ids) in per_instance {
                assert_eq!(
                    ids.len(),
                    1,
                    "{} fired its occurrence of {} more than once on {instance}: {ids:?}",
                    job.name,
                    format_rfc3339(*at)
                );
            }
            let reached: BTreeSet<String> = per_instance.keys().cloned().collect();
            assert_eq!(
                reached,
                job.reaches,
                "{}: the occurrence of {} reached other instances than its targets",
                job.name,
                format_rfc3339(*at)
            );
        }
        assert!(
            occurrences.contains_key(&job.due),
            "{}: its occurrence of {} was lost (occurrences fired: {:?})",
            job.name,
            format_rfc3339(job.due),
            occurrences
                .keys()
                .map(|t| format_rfc3339(*t))
                .collect::<Vec<_>>()
        );
        // Besides the scheduled one, exactly one occurrence per acknowledged run-now.
        let extra = occurrences.len() - 1;
        let expected_extra = run_nows.get(&job.id).copied().unwrap_or(0);
        assert_eq!(
            extra, expected_extra,
            "{}: {extra} run-now occurrences, {expected_extra} acknowledged",
            job.name
        );
        summary.scheduled += 1;
        summary.run_now += extra;
        match job.interval {
            None => assert_eq!(stored.time_next_execution, None, "{}", job.name),
            Some(every) => assert_eq!(
                stored.time_next_execution,
                Some(job.due + every),
                "{}: the recurrence moved",
                job.name
            ),
        }
        // The latest occurrence (logs carry milliseconds, run-now times have microseconds).
        assert_eq!(
            stored
                .time_last_execution
                .map(|t| Timestamp::from_millisecond(t.as_millisecond()).unwrap()),
            occurrences.keys().max().copied(),
            "{}: timeLastExecution is not its latest occurrence",
            job.name
        );
    }
    assert_eq!(
        from_jobs,
        all.len(),
        "work requests that no job's occurrence accounts for"
    );

    // Every work request ended; a failure only ever from an expired lease; every acknowledged
    // outcome is the stored one.
    for w in &all {
        match w.status {
            WorkRequestStatus::Succeeded => summary.succeeded += 1,
            WorkRequestStatus::Failed => {
                let errors = store
                    .work_request_errors(&w.id, &PageRequest::all())
                    .await
                    .unwrap()
                    .items;
                assert!(
                    errors.iter().any(|e| e.code == "LeaseExpired"),
                    "{} failed without an expired lease: {errors:?}",
                    w.id
                );
                summary.lease_expired += 1;
            }
            other => panic!("{} is {other} after the run settled", w.id),
        }
    }
    for (id, outcome) in acknowledged {
        let w = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("osm-sim completed {id}, which the store lacks"));
        assert_eq!(
            w.status.as_str(),
            outcome,
            "{id}: osmd acknowledged {outcome}, the store says {}",
            w.status
        );
    }
    summary
}

async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
        let _ = sqlx::Executor::execute(
            &mut c,
            sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
        )
        .await;
    }
}
