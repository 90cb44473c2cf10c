//! Signed API throughput: loads 100,000 work requests and 10,000 managed instances, then
//! drives `ListWorkRequests` (pages of 100) and `GetManagedInstance` from 32 concurrent
//! keep-alive connections, and prints requests/s with p50/p99 latency, on SQLite and
//! PostgreSQL.
//!
//! Run: `cargo bench -p osmd --bench api_load` (`-- sqlite` or `-- postgres` for one backend,
//! `OSM_BENCH_SECS` for the measuring time per scenario, default 10). The load generator shares
//! the machine's cores with osmd; each request is fully verified by the server (RSA-SHA256 on
//! every request); the client signs each distinct request once up front, which the ±5 minute
//! date window allows, so client-side signing does not eat the cores being measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::*;

const WORK_REQUESTS: usize = 100_000;
const INSTANCES: usize = 10_000;
const CONNECTIONS: usize = 32;
/// Distinct pre-signed requests per scenario (cycled through by the connections).
const DISTINCT: usize = 256;

struct Signed {
    path: String,
    headers: Vec<(&'static str, String)>,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |b: &str| args.is_empty() || args.iter().any(|a| a == b);
    let secs: u64 = std::env::var("OSM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "osm API load benchmark: {WORK_REQUESTS} work requests, {INSTANCES} instances, {CONNECTIONS} keep-alive connections, {secs} s per scenario"
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    if want("sqlite") {
        rt.block_on(run("sqlite", secs));
    }
    if want("postgres") {
        rt.block_on(run("postgres", secs));
    }
}

async fn run(backend: &str, secs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        "sqlite" => format!("sqlite://{}", dir.path().join("osm.db").display()),
        _ => {
            let admin = std::env::var("OSM_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL reachable (set OSM_TEST_PG_URL)");
            let name = format!("osm_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
    };
    let settings = osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        db: Some(db),
        ..Default::default()
    };
    let server = osmd::start(settings).await.unwrap();
    let tenancy = server.tenancy_id.clone();

    let load_started = Instant::now();
    let now = Timestamp::now();
    let instances: Vec<ManagedInstance> = (0..INSTANCES)
        .map(|i| ManagedInstance {
            id: new_ocid(ResourceKind::ManagedInstance),
            compartment_id: tenancy.clone(),
            display_name: format!("bench-{i:05}"),
            description: None,
            os_name: Some("Oracle Linux Server".into()),
            os_version: Some("9.4".into()),
            os_kernel_version: Some("5.15.0-205.149.5.1.el9uek.x86_64".into()),
            os_family: OsFamily::Linux,
            status: ManagedInstanceStatus::Normal,
            last_checkin: Some(now),
            last_boot: Some(now - SignedDuration::from_hours(30)),
            is_reboot_required: false,
            notification_topic_id: None,
            is_data_collection_authorized: true,
            updates: UpdateCounts {
                security: (i % 5) as i64,
                bug: 3,
                enhancement: 1,
                other: 0,
            },
            time_created: now - SignedDuration::from_secs(i as i64),
            version: 1,
        })
        .collect();
    for chunk in instances.chunks(2000) {
        server
            .store
            .managed_instance_insert_many(chunk)
            .await
            .unwrap();
    }
    for batch in 0..(WORK_REQUESTS / 5000) {
        let wrs: Vec<WorkRequest> = (0..5000)
            .map(|j| {
                let i = batch * 5000 + j;
                let mi = &instances[i % INSTANCES];
                WorkRequest {
                    id: new_ocid(ResourceKind::WorkRequest),
                    compartment_id: tenancy.clone(),
                    operation_type: OperationType::UpdateAll,
                    status: WorkRequestStatus::Succeeded,
                    description: Some(format!("Install all updates on {}", mi.display_name)),
                    message: Some("done".into()),
                    managed_instance: Some(IdName {
                        id: mi.id.clone(),
                        display_name: mi.display_name.clone(),
                    }),
                    os_family: OsFamily::Linux,
                    percent_complete: 100.0,
                    time_accepted: now - SignedDuration::from_secs((WORK_REQUESTS - i) as i64),
                    time_started: None,
                    time_finished: None,
                    parent_id: None,
                    scheduled_job_id: None,
                    resources: vec![],
                    children_ids: vec![],
                    action: None,
                }
            })
            .collect();
        server
            .store
            .work_request_insert_many(&wrs, &[])
            .await
            .unwrap();
    }
    println!(
        "\n[{backend}] loaded in {:.1} s",
        load_started.elapsed().as_secs_f64()
    );

    let key_pem = std::fs::read_to_string(dir.path().join("admin/api_key.pem")).unwrap();
    let config = std::fs::read_to_string(dir.path().join("admin/config")).unwrap();
    let value = |k: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let key_id = format!(
        "{}/{}/{}",
        value("tenancy"),
        value("user"),
        value("fingerprint")
    );
    let host = server.addr.to_string();
    let date = osm_core::httpsig::imf_fixdate(Timestamp::now());
    let sign = |path: String| {
        let auth = osm_core::httpsig::sign(
            "GET",
            &path,
            &[("date", &date), ("host", &host)],
            &key_id,
            &key_pem,
        )
        .unwrap();
        Signed {
            path,
            headers: vec![("date", date.clone()), ("authorization", auth)],
        }
    };

    // ListWorkRequests: first pages and deeper pages reached through real page tokens.
    let mut list_requests = vec![];
    let first = format!("/20190801/workRequests?compartmentId={tenancy}&limit=100");
    let mut page_paths = vec![first.clone()];
    {
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let q = match &token {
                Some(t) => format!("{first}&page={t}"),
                None => first.clone(),
            };
            let page = server
                .store
                .work_request_list(
                    &osm_store::WorkRequestFilter {
                        compartment_id: tenancy.clone(),
                        ..Default::default()
                    },
                    &osm_core::page::PageRequest {
                        limit: Some(100),
                        after: token.as_deref().map(|t| {
                            osm_core::page::Cursor::decode(
                                t,
                                osm_core::page::SortKey::TimeCreated,
                                SortOrder::Desc,
                            )
                            .unwrap()
                        }),
                        ..osm_core::page::PageRequest::all()
                    },
                )
                .await
                .unwrap();
            page_paths.push(q);
            token = page.next.map(|c| c.encode());
        }
    }
    for i in 0..DISTINCT {
        list_requests.push(sign(page_paths[i % page_paths.len()].clone()));
    }
    let get_requests: Vec<Signed> = (0..DISTINCT)
        .map(|i| {
            sign(format!(
                "/20190801/managedInstances/{}",
                instances[(i * 37) % INSTANCES].id
            ))
        })
        .collect();

    let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
    let base = format!("https://{}", server.addr);
    for (name, requests) in [
        ("ListWorkRequests (limit=100)", list_requests),
        ("GetManagedInstance", get_requests),
    ] {
        let (rps, p50, p99, errors) =
            drive(&base, &ca, Arc::new(requests), Duration::from_secs(secs)).await;
        println!(
            "[{backend}] {name:<30} {rps:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {errors}",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    server.stop().await.unwrap();
}

async fn drive(
    base: &str,
    ca: &[u8],
    requests: Arc<Vec<Signed>>,
    length: Duration,
) -> (f64, Duration, Duration, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    let warmup = Duration::from_secs(1);
    for c in 0..CONNECTIONS {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let requests = requests.clone();
        let stop = stop.clone();
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut i = c * 7;
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let r = &requests[i % requests.len()];
                i += 1;
                let mut req = client.get(format!("{base}{}", r.path));
                for (k, v) in &r.headers {
                    req = req.header(*k, v);
                }
                let t = Instant::now();
                match req.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                    }
                    _ => errors += 1,
                }
                if started.elapsed() > warmup {
                    latencies.push(t.elapsed());
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(warmup + length).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (
        all.len() as f64 / length.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        errors,
    )
}
