//! Compliance report figures, on a fleet of 10,000 instances with 50 available updates each,
//! 20% of them missing security updates (a third of their updates), loaded through the store's
//! own inventory upload (one transaction per instance, as agents upload):
//! - `osmctl report compliance --details --format json` over the whole tenancy, the real
//!   binary (release build, signed HTTPS call, JSON written to a file): wall time of several
//!   runs, min and median;
//! - the sample script `../shared/clients/compliance_report.py --show-details` (the oci SDK,
//!   unmodified; one call per instance and per page of 10 updates) over a 1,000-instance
//!   compartment of the same fleet: its wall time, osmd's requests/s while serving it (the
//!   `osm_http_requests_total` counters of `/metrics` before and after), and the ratio to
//!   `osmctl report compliance --details --format json` over the same compartment.
//!
//! Run: `cargo bench -p osmd --bench compliance` (`-- sqlite` or `-- postgres` for one
//! backend). Needs the Python virtual environment of `scripts/test` (`target/venv`, or
//! `OSM_BENCH_PYTHON`). Knobs: `OSM_BENCH_INSTANCES` (10000), `OSM_BENCH_UPDATES` (50),
//! `OSM_BENCH_SAMPLE` (instances of the script's compartment, 1000; 0 skips the script),
//! `OSM_BENCH_RUNS` (osmctl runs, 7).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use osm_core::inventory::{Advisory, FullInventory, InventoryUpload, Package, PackageUpdate};
use osm_core::*;
use osm_store::Store;
use serde_json::Value;

/// Every fifth instance misses security updates.
const VULNERABLE_EVERY: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("before: {}", common::load_average());
    let osmctl = build_osmctl();
    for backend in common::backends() {
        rt.block_on(run(backend, &osmctl));
    }
    println!("after: {}", common::load_average());
}

/// The release `osmctl` next to this bench's binary, built first (a no-op when current).
fn build_osmctl() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/compliance-… → target/<profile>
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap().to_path_buf();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "osmctl",
            "--bin",
            "osmctl",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building osmctl failed");
    target_dir.join("release/osmctl")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Inventory of instance `i`: 50 installed packages, each with an update; a third of them
/// security updates with CVEs and an advisory when the instance is vulnerable.
fn inventory(i: usize, updates: usize) -> InventoryUpload {
    let vulnerable = i.is_multiple_of(VULNERABLE_EVERY);
    let security = if vulnerable { updates / 3 } else { 0 };
    let mut full = FullInventory::default();
    for k in 0..updates {
        let name = format!("lib{k:02}-bench");
        full.installed.push(Package {
            name: name.clone(),
            version: format!("1.{k}.0-1"),
            architecture: Some("amd64".into()),
            package_type: Some("deb".into()),
            install_time: None,
        });
        let class = if k < security {
            UpdateClassification::Security
        } else if k % 2 == 0 {
            UpdateClassification::Bug
        } else {
            UpdateClassification::Enhancement
        };
        let security_fix = class == UpdateClassification::Security;
        let mut cves = vec![];
        if security_fix {
            cves.push(format!("CVE-2024-{}", 20_000 + k * 3));
            if k % 4 == 0 {
                cves.push(format!("CVE-2023-{}", 30_000 + k));
            }
        }
        full.updates.push(PackageUpdate {
            name,
            architecture: Some("amd64".into()),
            installed_version: format!("1.{k}.0-1"),
            available_version: format!("1.{k}.1-1"),
            update_type: class,
            cves,
            advisories: if security_fix {
                vec![Advisory {
                    name: format!("DSA-{}-1", 5400 + k),
                    advisory_type: Some(UpdateClassification::Security),
                    synopsis: Some(format!("lib{k:02}-bench: security update")),
                    issued: None,
                }]
            } else {
                vec![]
            },
            package_type: None,
        });
    }
    InventoryUpload::Full(full)
}

/// Creates the compartment and `n` hosts in it (names `prefix-00000`…) with their inventories.
async fn load(
    store: &Arc<dyn Store>,
    tenancy: &str,
    compartment: &str,
    prefix: &str,
    first: usize,
    n: usize,
    updates: usize,
) {
    let now = Timestamp::now();
    let hosts: Vec<ManagedInstance> = (first..first + n)
        .map(|i| {
            let mut h = common::host(compartment, i, now);
            h.display_name = format!("{prefix}-{i:05}");
            h.os_name = Some("Debian GNU/Linux".into());
            h.os_version = Some("12".into());
            h
        })
        .collect();
    for chunk in hosts.chunks(2000) {
        store.managed_instance_insert_many(chunk).await.unwrap();
    }
    futures::stream::iter(hosts.iter().enumerate())
        .map(|(n, h)| {
            let upload = inventory(first + n, updates);
            async move {
                store
                    .inventory_apply(&h.id, tenancy, &upload, Timestamp::now())
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(4)
        .for_each(|_| async {})
        .await;
}

/// Runs osmctl with the admin profile; returns the wall time and the parsed JSON it wrote.
fn osmctl_report(
    osmctl: &Path,
    server: &osmd::Server,
    out: &Path,
    args: &[&str],
) -> (Duration, Value) {
    let file = std::fs::File::create(out).unwrap();
    let started = Instant::now();
    let status = Command::new(osmctl)
        .arg("--config")
        .arg(server.admin_config())
        .arg("--ca")
        .arg(server.ca_file())
        .args(["report", "compliance", "--details", "--format", "json"])
        .args(args)
        .stdout(file)
        .status()
        .expect("osmctl runs");
    let took = started.elapsed();
    assert!(status.success(), "osmctl failed");
    let report: Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    (took, report)
}

fn seconds(sample: &[Duration]) -> (f64, f64) {
    let mut s: Vec<f64> = sample.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() / 2])
}

/// The sum of `osm_http_requests_total` over every route and status.
async fn requests_served(client: &osm_client::Client) -> f64 {
    let r = client.get("/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| l.starts_with("osm_http_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn run(backend: &str, osmctl: &Path) {
    let instances = common::env_number("OSM_BENCH_INSTANCES", 10_000) as usize;
    let updates = common::env_number("OSM_BENCH_UPDATES", 50) as usize;
    let sample = (common::env_number("OSM_BENCH_SAMPLE", 1000) as usize).min(instances);
    let runs = common::env_number("OSM_BENCH_RUNS", 7).max(1) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (url, pg_database) = common::db_url(backend, dir.path()).await;
    let server = osmd::start(osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        db: Some(url),
        scheduler: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let store = server.store.clone();
    let tenancy = server.tenancy_id.clone();
    let config = osm_client::OciConfig::load(&server.admin_config(), "DEFAULT").unwrap();
    let client = osm_client::Client::from_config(&config, Some(&server.ca_file()), None).unwrap();
    let compartment = async |name: &str| -> String {
        let r = client
            .post_json(
                "/20160918/compartments",
                Some(&serde_json::json!({"compartmentId": tenancy, "name": name, "description": "bench"})),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        r.json::<Value>()["id"].as_str().unwrap().to_string()
    };
    let fleet = compartment("fleet").await;
    let sampled = compartment("sample").await;

    let started = Instant::now();
    load(&store, &tenancy, &sampled, "sample", 0, sample, updates).await;
    load(
        &store,
        &tenancy,
        &fleet,
        "host",
        sample,
        instances - sample,
        updates,
    )
    .await;
    if let Some(name) = &pg_database {
        // What autovacuum does within a minute of such a load: without statistics the planner
        // takes the 500,000 update rows for a few thousand and sorts them on disk.
        use sqlx::Connection;
        let url = format!(
            "{}/{name}",
            common::pg_admin_url().rsplit_once('/').unwrap().0
        );
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::Executor::execute(&mut conn, "VACUUM ANALYZE")
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    println!(
        "[{backend}] loaded {instances} instances × {updates} available updates ({} missing security updates; {sample} of them in the script's compartment) in {:.1} s{}",
        instances.div_ceil(VULNERABLE_EVERY),
        started.elapsed().as_secs_f64(),
        if pg_database.is_some() {
            ", then VACUUM ANALYZE"
        } else {
            ""
        }
    );

    // Where the time goes, each part once warm: the store's read, the shaping and the JSON
    // body, the signed call (osmd + TLS + reading the body), then osmctl as a whole.
    let scope = osm_store::ComplianceScope::Compartments(vec![
        tenancy.clone(),
        fleet.clone(),
        sampled.clone(),
    ]);
    let classes = [UpdateClassification::Security];
    let filter = osm_core::report::ComplianceFilter {
        details: true,
        ..Default::default()
    };
    // The store's batched reads, each batch folded into the report as osmd does.
    let read_all = async || {
        let mut b = osm_core::report::ReportBuilder::new(&filter, usize::MAX);
        store
            .compliance_scan(
                &scope,
                &classes,
                osm_store::ComplianceBatches::default(),
                &mut |batch| {
                    match batch {
                        osm_store::ComplianceBatch::Instances(i) => b.add_instances(i),
                        osm_store::ComplianceBatch::Updates(u) => {
                            b.add_updates(u).expect("no limit")
                        }
                    }
                    std::ops::ControlFlow::Continue(())
                },
            )
            .await
            .unwrap();
        b
    };
    read_all().await;
    let t = Instant::now();
    let builder = read_all().await;
    let read = t.elapsed();
    let t = Instant::now();
    let report = builder.finish(
        osm_core::report::ReportScope::Compartment {
            id: tenancy.clone(),
            in_subtree: true,
            compartments: 3,
        },
        Timestamp::now(),
    );
    let body = serde_json::to_vec(&osm_api::ComplianceReport::from(report)).unwrap();
    let shaped = t.elapsed();
    let path = format!(
        "/osm/v1/reports/compliance?compartmentId={tenancy}&compartmentIdInSubtree=true&details=true"
    );
    client.get(&path).await.unwrap();
    let t = Instant::now();
    let r = client.get(&path).await.unwrap();
    let call = t.elapsed();
    assert_eq!(r.status, 200);
    println!(
        "[{backend}] breakdown: store reads folded into the report {:.0} ms, ordering + JSON {:.0} ms ({:.1} MB), signed GET {:.0} ms",
        read.as_secs_f64() * 1e3,
        shaped.as_secs_f64() * 1e3,
        body.len() as f64 / 1e6,
        call.as_secs_f64() * 1e3
    );

    // The whole fleet through osmctl: one warm-up, then the runs.
    let out = dir.path().join("report.json");
    let (_, first) = osmctl_report(osmctl, &server, &out, &[]);
    assert_eq!(first["summary"]["instancesScanned"], instances as i64);
    assert_eq!(
        first["summary"]["instancesMissingUpdates"],
        instances.div_ceil(VULNERABLE_EVERY) as i64
    );
    let size = std::fs::metadata(&out).unwrap().len();
    let times: Vec<Duration> = (0..runs)
        .map(|_| osmctl_report(osmctl, &server, &out, &[]).0)
        .collect();
    let (min, median) = seconds(&times);
    println!(
        "[{backend}] osmctl report compliance --details --format json, {instances} instances ({:.1} MB of JSON): min {:.3} s, median {:.3} s over {runs} runs (goal ≤ 1 s); {}",
        size as f64 / 1e6,
        min,
        median,
        common::load_average()
    );

    if sample > 0 {
        let python = std::env::var("OSM_BENCH_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join("target/venv/bin/python"));
        let script = std::env::var("OSM_BENCH_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join("../shared/clients/compliance_report.py"));
        if !python.exists() || !script.exists() {
            println!(
                "[{backend}] sample script: not run ({} or {} is missing; run scripts/test once for the venv)",
                python.display(),
                script.display()
            );
        } else {
            let times: Vec<Duration> = (0..runs)
                .map(|_| osmctl_report(osmctl, &server, &out, &["-c", &sampled]).0)
                .collect();
            let (ours_min, ours_median) = seconds(&times);
            let ours = serde_json::from_slice::<Value>(&std::fs::read(&out).unwrap()).unwrap();
            let before = requests_served(&client).await;
            let started = Instant::now();
            let output = Command::new(&python)
                .arg(&script)
                .arg("-C")
                .arg(server.admin_config())
                .args(["-c", &sampled, "--show-details"])
                .env("REQUESTS_CA_BUNDLE", server.ca_file())
                .stderr(Stdio::inherit())
                .output()
                .expect("the script runs");
            let took = started.elapsed().as_secs_f64();
            // Less the /metrics call that read the first figure.
            let served = requests_served(&client).await - before - 1.0;
            assert!(output.status.success(), "the sample script failed");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let want = format!(
                "Detected out of {} managed instances, {} are missing security patches!",
                ours["summary"]["instancesScanned"], ours["summary"]["instancesMissingUpdates"]
            );
            assert!(
                stdout.contains(&want),
                "the two reports differ: {want}\n{stdout}"
            );
            println!(
                "[{backend}] sample script --show-details, {sample} instances: {took:.1} s, {served:.0} requests ({:.0} requests/s served by osmd); osmctl on the same compartment: min {ours_min:.3} s, median {ours_median:.3} s; script / osmctl (median) = {:.0}×; {}",
                served / took,
                took / ours_median,
                common::load_average()
            );
        }
    }
    server.stop().await.unwrap();
    drop(store);
    if let Some(name) = pg_database {
        common::drop_pg_database(&name).await;
    }
}
