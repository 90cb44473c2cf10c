//! Work-request engine figures:
//! - fan-out: one job on a 10,000-instance group → all 10,000 child work requests committed
//!   (one scheduler pass, one transaction);
//! - dispatch: no-op work drained through the real agent protocol (HTTPS, HMAC-signed long
//!   polls and completions) by simulated agents in the same process.
//!
//! Run: `cargo bench -p osmd --bench engine` (`-- sqlite` or `-- postgres` for one backend).
//! The agents share the machine's 2 cores with osmd.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use osm_client::AgentClient;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::*;
use serde_json::json;

const FLEET: usize = 10_000;
const AGENTS: usize = 64;
const WORK_PER_AGENT: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |b: &str| args.is_empty() || args.iter().any(|a| a == b);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for backend in ["sqlite", "postgres"] {
        if want(backend) {
            rt.block_on(run(backend));
        }
    }
}

async fn db_url(backend: &str, dir: &std::path::Path) -> String {
    if backend == "sqlite" {
        return format!("sqlite://{}", dir.join("osm.db").display());
    }
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

fn host(compartment: &str, i: usize, now: Timestamp) -> ManagedInstance {
    ManagedInstance {
        id: new_ocid(ResourceKind::ManagedInstance),
        compartment_id: compartment.into(),
        display_name: format!("fan-{i:05}"),
        description: None,
        os_name: None,
        os_version: None,
        os_kernel_version: None,
        os_family: OsFamily::Linux,
        status: ManagedInstanceStatus::Normal,
        last_checkin: Some(now),
        last_boot: None,
        is_reboot_required: false,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: UpdateCounts::default(),
        time_created: now,
        version: 1,
    }
}

async fn run(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let settings = osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        db: Some(db_url(backend, dir.path()).await),
        scheduler: false,
        ..Default::default()
    };
    let server = osmd::start(settings).await.unwrap();
    let store = server.store.clone();
    let tenancy = server.tenancy_id.clone();
    let now = Timestamp::now();

    // Fan-out.
    let hosts: Vec<_> = (0..FLEET).map(|i| host(&tenancy, i, now)).collect();
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

    // Dispatch: enrol agents, queue no-op work for each, drain it through the protocol.
    let key = std::fs::read_to_string(dir.path().join("admin/install-key")).unwrap();
    let ca = std::fs::read(dir.path().join("tls/ca.pem")).unwrap();
    let base = format!("https://{}", server.addr);
    let http = AgentClient::shared_http(Some(&ca)).unwrap();
    let mut agents = vec![];
    for i in 0..AGENTS {
        let body = json!({"hostname": format!("agent-{i:03}"), "osFamily": "LINUX"});
        agents.push(
            AgentClient::enroll_with(http.clone(), &base, key.trim(), &body)
                .await
                .unwrap()
                .0,
        );
    }
    let mut wrs = vec![];
    for a in &agents {
        let mi = store
            .managed_instance_get(&a.instance_id)
            .await
            .unwrap()
            .unwrap();
        for _ in 0..WORK_PER_AGENT {
            wrs.push(osm_core::work::work_request_for(
                &mi,
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
    let total = wrs.len();
    let started = Instant::now();
    let mut tasks = vec![];
    for a in agents {
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < WORK_PER_AGENT {
                let r = a
                    .post(
                        "/agent/v1/work/poll",
                        &json!({"waitSeconds": 1, "max": 100}),
                    )
                    .await
                    .unwrap();
                let work: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
                for w in work {
                    let id = w["id"].as_str().unwrap();
                    let r = a
                        .post(
                            &format!("/agent/v1/work/{id}/complete"),
                            &json!({"outcome": "SUCCEEDED"}),
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.status, 200);
                    done += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "[{backend}] dispatch: {total} no-op work requests claimed and completed through the agent protocol by {AGENTS} agents in {:.2} s = {:.0} work requests/s (agents share the 2 cores)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    server.stop().await.unwrap();
}
