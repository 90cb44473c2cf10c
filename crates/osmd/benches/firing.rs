//! Firing precision: 10,000 active recurring jobs, each on one instance, whose next times are
//! spread over a window that opens a minute after start; osmd runs its real background
//! scheduler. For every occurrence: (time its work request was committed) − (due time), as the
//! server reports it (`Server::subscribe_fired`: the clock read right after the scheduler's
//! transaction committed). Prints p50/p90/p99/max and counts.
//!
//! Run: `cargo bench -p osmd --bench firing` (`-- sqlite` or `-- postgres` for one backend).
//! Knobs: `OSM_BENCH_JOBS` (10000), `OSM_BENCH_SECS` (window, 60), `OSM_BENCH_LEAD_SECS` (time
//! from start to the window, 60; setup must finish within it).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Percentiles;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::*;
use rand::{RngExt, SeedableRng};

/// Jobs due together in one burst (same microsecond), and how many bursts.
const BURST: usize = 50;
const BURSTS: usize = 20;

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
    for backend in common::backends() {
        rt.block_on(run(backend));
    }
    println!(
        "after: {}; {}",
        common::pg_test_fsync(scratch.path()),
        common::load_average()
    );
}

fn recurring_job(compartment: &str, mi: &ManagedInstance, due: Timestamp) -> ScheduledJob {
    ScheduledJob {
        id: new_ocid(ResourceKind::ScheduledJob),
        compartment_id: compartment.into(),
        display_name: format!("hourly {}", mi.display_name),
        description: None,
        schedule_type: ScheduleType::Recurring,
        time_next_execution: Some(due),
        time_last_execution: None,
        interval_type: Some(IntervalType::Hour),
        interval_value: Some(1),
        managed_instances: vec![IdName {
            id: mi.id.clone(),
            display_name: mi.display_name.clone(),
        }],
        managed_instance_groups: vec![],
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
        time_created: Timestamp::now(),
        version: 1,
    }
}

/// Due times over `[open, open + window)`: most spread at random, some in bursts due at the
/// same instant.
fn due_times(jobs: usize, open: Timestamp, window: Duration) -> Vec<Timestamp> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261124);
    let window_us = window.as_micros() as i64;
    let at = |rng: &mut rand::rngs::StdRng| {
        open + SignedDuration::from_micros(rng.random_range(0..window_us))
    };
    let bursts = if jobs >= 2 * BURST * BURSTS {
        BURSTS
    } else {
        0
    };
    let mut times = vec![];
    for _ in 0..bursts {
        let t = at(&mut rng);
        times.extend(std::iter::repeat_n(t, BURST));
    }
    while times.len() < jobs {
        times.push(at(&mut rng));
    }
    times
}

async fn run(backend: &str) {
    let jobs = common::env_number("OSM_BENCH_JOBS", 10_000) as usize;
    let window = Duration::from_secs(common::env_number("OSM_BENCH_SECS", 60));
    let lead = Duration::from_secs(common::env_number("OSM_BENCH_LEAD_SECS", 60));
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_database) = common::db_url(backend, dir.path()).await;
    let store = osm_store::connect(&url).await.unwrap();
    let settings = osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        db: Some(url.clone()),
        scheduler: false,
        ..Default::default()
    };

    // Setup with the scheduler off: the instances and their jobs.
    let started = Timestamp::now();
    let open = started + SignedDuration::try_from(lead).unwrap();
    let setup = osmd::start_with_store(settings.clone(), store.clone())
        .await
        .unwrap();
    let tenancy = setup.tenancy_id.clone();
    setup.stop().await.unwrap();
    let hosts: Vec<_> = (0..jobs)
        .map(|i| common::host(&tenancy, i, started))
        .collect();
    for chunk in hosts.chunks(2000) {
        store.managed_instance_insert_many(chunk).await.unwrap();
    }
    let times = due_times(jobs, open, window);
    let all_jobs: Vec<_> = hosts
        .iter()
        .zip(&times)
        .map(|(h, t)| recurring_job(&tenancy, h, *t))
        .collect();
    futures::stream::iter(&all_jobs)
        .map(|j| store.scheduled_job_create(j, None))
        .buffer_unordered(8)
        .for_each(|r| async move { r.unwrap() })
        .await;
    let ready = Timestamp::now();
    assert!(
        ready < open,
        "setup took {:.1} s, past the first due time; raise OSM_BENCH_LEAD_SECS",
        (ready - started).as_secs_f64()
    );
    println!(
        "[{backend}] {jobs} recurring jobs (hourly, one instance each; {} in {} bursts due in the same microsecond) created in {:.1} s; due over {} s from {:.1} s after start",
        if jobs >= 2 * BURST * BURSTS {
            BURST * BURSTS
        } else {
            0
        },
        if jobs >= 2 * BURST * BURSTS {
            BURSTS
        } else {
            0
        },
        (ready - started).as_secs_f64(),
        window.as_secs(),
        lead.as_secs_f64()
    );

    // Measure: osmd with its background scheduler on the same store, as after a restart.
    let server = osmd::start_with_store(
        osmd::config::Settings {
            scheduler: true,
            ..settings
        },
        store.clone(),
    )
    .await
    .unwrap();
    let mut fired = server.subscribe_fired();
    let deadline = tokio::time::Instant::now() + lead + window + Duration::from_secs(30);
    let mut delays_ms = Vec::with_capacity(jobs);
    // (due, began, committed) of every occurrence, to split each delay into wake-up and
    // transaction and to look at the bursts.
    let mut seen_times = Vec::with_capacity(jobs);
    let mut early = 0;
    let mut without_work = 0;
    let mut commits = HashSet::new();
    let mut lagged = 0;
    while delays_ms.len() + lagged < jobs {
        let f = match tokio::time::timeout_at(deadline, fired.recv()).await {
            Ok(Ok(f)) => f,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                lagged += n as usize;
                continue;
            }
            Ok(Err(e)) => panic!("fired occurrences: {e}"),
            Err(_) => break,
        };
        let delay = f.committed_at - f.occurrence.time;
        if delay.is_negative() {
            early += 1;
        }
        if f.occurrence.work_request_ids.len() != 1 {
            without_work += 1;
        }
        commits.insert(f.committed_at);
        seen_times.push((f.occurrence.time, f.began_at, f.committed_at));
        delays_ms.push(delay.as_secs_f64() * 1e3);
    }
    server.stop().await.unwrap();
    let seen = delays_ms.len();
    let d = Percentiles::new(delays_ms);
    println!(
        "[{backend}] firing delay, due → work request committed: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} occurrences in {} scheduler transactions; {}",
        d.at(50.0),
        d.at(90.0),
        d.at(99.0),
        d.max(),
        d.len(),
        commits.len(),
        common::load_average()
    );
    print_split(backend, &seen_times);
    if seen + lagged < jobs || lagged > 0 || early > 0 || without_work > 0 {
        println!(
            "[{backend}] PROBLEM: {} of {jobs} occurrences not seen in time, {lagged} lost by a lagging reader, {early} fired before due, {without_work} without exactly one work request",
            jobs - seen - lagged
        );
    }
    drop(store);
    if let Some(name) = pg_database {
        common::drop_pg_database(&name).await;
    }
}

fn ms(d: SignedDuration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Splits the delays into the scheduler's wake-up (due → its transaction began) and the
/// transaction (began → committed), for the lone occurrences and for those due in a burst,
/// and prints each burst's worst occurrence.
fn print_split(backend: &str, seen: &[(Timestamp, Timestamp, Timestamp)]) {
    let mut per_due: std::collections::BTreeMap<Timestamp, Vec<(Timestamp, Timestamp)>> =
        Default::default();
    for (due, began, committed) in seen {
        per_due.entry(*due).or_default().push((*began, *committed));
    }
    for (label, burst) in [("lone", false), ("burst", true)] {
        let chosen: Vec<_> = per_due
            .iter()
            .filter(|(_, v)| (v.len() > 1) == burst)
            .flat_map(|(due, v)| v.iter().map(move |(b, c)| (*due, *b, *c)))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let wake = Percentiles::new(chosen.iter().map(|(d, b, _)| ms(*b - *d)).collect());
        let txn = Percentiles::new(chosen.iter().map(|(_, b, c)| ms(*c - *b)).collect());
        println!(
            "[{backend}] {label} occurrences ({}): wake-up p50 {:.1} / p99 {:.1} / max {:.1} ms; transaction p50 {:.1} / p99 {:.1} / max {:.1} ms",
            wake.len(),
            wake.at(50.0),
            wake.at(99.0),
            wake.max(),
            txn.at(50.0),
            txn.at(99.0),
            txn.max()
        );
    }
    for (due, v) in per_due.iter().filter(|(_, v)| v.len() > 1) {
        let transactions: HashSet<_> = v.iter().map(|(_, c)| *c).collect();
        let (began, committed) = v.iter().max_by_key(|(_, c)| *c).unwrap();
        println!(
            "[{backend}]   burst at {due}: {} occurrences in {} transactions; worst: wake-up {:.1} ms, transaction {:.1} ms",
            v.len(),
            transactions.len(),
            ms(*began - *due),
            ms(*committed - *began)
        );
    }
}
