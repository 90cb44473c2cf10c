//! Crash test (short form, run in CI): jobs come due while osmd is killed with SIGKILL and
//! restarted again and again. Afterwards every occurrence that came due fired exactly once —
//! one work request per instance, never two — and none was lost.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use osm_client::{Client, OciConfig};
use osm_core::OsFamily;
use serde_json::json;

use crate::instance;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_osmd"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_healthy(port: u16, ca: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ca = std::fs::read(ca).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        loop {
            if let Ok(r) = http
                .get(format!("https://127.0.0.1:{port}/healthz"))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "osmd did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn jobs_fire_exactly_once_across_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ca = dir.path().join("tls/ca.pem");
    let mut osmd = start(dir.path(), port);
    while !dir.path().join("admin/config").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_healthy(port, &ca);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = OciConfig::load(&dir.path().join("admin/config"), "DEFAULT").unwrap();
    let tenancy = config.tenancy.clone();
    let (jobs, recurring) = rt.block_on(async {
        let client = Client::from_config(&config, Some(&ca), None).unwrap();
        let store = osm_store::connect(&format!("sqlite://{}", dir.path().join("osm.db").display())).await.unwrap();
        let hosts: Vec<_> = (0..3).map(|i| instance(&tenancy, &format!("h{i}"), OsFamily::Linux)).collect();
        store.managed_instance_insert_many(&hosts).await.unwrap();
        let r = client
            .post_json("/20190801/managedInstanceGroups", Some(&json!({"compartmentId": tenancy, "displayName": "g"})), &[])
            .await
            .unwrap();
        let g = r.json::<serde_json::Value>()["id"].as_str().unwrap().to_string();
        for h in &hosts {
            let path = format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId={}", h.id);
            assert_eq!(client.post_json(&path, None, &[]).await.unwrap().status, 204);
        }
        let base = Timestamp::now() + SignedDuration::from_secs(3);
        let mut jobs = vec![];
        let mut recurring = vec![];
        for i in 0..60 {
            let due = base + SignedDuration::from_millis(i * 150);
            let kind = if i % 6 == 0 { "RECURRING" } else { "ONETIME" };
            let mut body = json!({"compartmentId": tenancy, "displayName": format!("job-{i}"), "scheduleType": kind,
                "timeNextExecution": osm_core::time::format_rfc3339(due), "managedInstanceGroups": [{"id": g}],
                "operationType": "UPDATEALL"});
            if kind == "RECURRING" {
                body["intervalType"] = json!("HOUR");
                body["intervalValue"] = json!("1");
            }
            let r = client.post_json("/20190801/scheduledJobs", Some(&body), &[]).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let id = r.json::<serde_json::Value>()["id"].as_str().unwrap().to_string();
            if kind == "RECURRING" {
                recurring.push(id.clone());
            }
            jobs.push(id);
        }
        (jobs, recurring)
    });

    // Kill osmd at pseudo-random moments while the jobs come due (about 3 s to 12 s from now).
    let mut seed: u64 = 0x9e3779b97f4a7c15 ^ port as u64;
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(13) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 700));
        osmd.kill().unwrap(); // SIGKILL
        osmd.wait().unwrap();
        kills += 1;
        osmd = start(dir.path(), port);
        wait_healthy(port, &ca);
    }
    // Let the last restart catch up on anything due while it was down.
    std::thread::sleep(Duration::from_secs(2));
    osmd.kill().unwrap();
    osmd.wait().unwrap();
    assert!(kills >= 8, "only {kills} kills");

    rt.block_on(async {
        let store =
            osm_store::connect(&format!("sqlite://{}", dir.path().join("osm.db").display()))
                .await
                .unwrap();
        for id in &jobs {
            let job = store.scheduled_job_get(id).await.unwrap().unwrap();
            let wrs = store.scheduled_job_work_requests(id).await.unwrap();
            // One occurrence has come due for every job (the hourly ones fire again only in an hour).
            assert_eq!(
                wrs.len(),
                3,
                "{}: {} work requests, expected exactly one per instance",
                job.display_name,
                wrs.len()
            );
            assert!(
                job.time_last_execution.is_some(),
                "{} lost its occurrence",
                job.display_name
            );
            if recurring.contains(id) {
                let next = job.time_next_execution.unwrap();
                assert_eq!(
                    next,
                    job.time_last_execution.unwrap() + SignedDuration::from_hours(1)
                );
            } else {
                assert!(job.time_next_execution.is_none());
            }
        }
    });
}
