//! The operator's surface: /healthz, /metrics, /openapi.json, the osmd binary (serve, SIGTERM,
//! backup) and the files first start writes.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Backend, both_backends, spawn_app};

both_backends!(health_metrics_and_openapi);

async fn health_metrics_and_openapi(b: Backend) {
    let app = spawn_app(b).await;
    let ca = std::fs::read(app.ca_file()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let r = http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Also by name: the certificate covers localhost.
    let by_name = format!(
        "https://localhost:{}/healthz",
        app.base.rsplit(':').next().unwrap()
    );
    assert_eq!(http.get(by_name).send().await.unwrap().status(), 200);

    app.get(&format!(
        "/20190801/managedInstanceGroups?compartmentId={}",
        app.tenancy
    ))
    .await;
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(text.contains("osm_http_requests_total"), "{text}");
    assert!(
        text.contains("route=\"/20190801/managedInstanceGroups\""),
        "{text}"
    );
    assert!(
        text.contains("osm_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("osm_store_query_seconds"), "{text}");
    assert!(text.contains("osm_http_open_connections"), "{text}");
    assert!(text.contains("osm_work_request_queue_depth 0"), "{text}");
    assert!(
        text.contains("osm_work_requests{status=\"ACCEPTED\",operation=\"INSTALL\"} 0"),
        "{text}"
    );
    assert!(text.contains("osm_agents_connected"), "{text}");

    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc: Value = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Every documented operation is routed: a signed call never answers "no such operation".
    for op in osmd::http::openapi::OPERATIONS {
        assert!(
            doc["paths"][op.path][op.method.to_lowercase()].is_object(),
            "{} {}",
            op.method,
            op.path
        );
        if op.method == "GET" {
            let path = op.path.replace(['{', '}'], "");
            let r = app.get(&path).await;
            let code = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v.get("code").cloned());
            assert_ne!(
                code,
                Some(Value::from("NotFound")),
                "{} {} is not routed",
                op.method,
                op.path
            );
        }
    }
}

#[test]
fn openapi_snapshot() {
    insta::assert_snapshot!("openapi", osmd::http::openapi::document_json());
}

/// Starts the real binary and waits for it to print its address.
fn start_osmd(data_dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_osmd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit("https://").next().unwrap().trim().to_string();
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// A server dropped without `stop` (an embedding's error path) stops serving as well, before
/// it lets go of its SQLite store's lock: the next osmd on the store then has it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dropped_without_stop_stops_serving() {
    let dir = tempfile::tempdir().unwrap();
    let settings = || osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let first = osmd::start(settings()).await.unwrap();
    let addr = first.addr;
    let store = first.store.clone();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(first);
    // Its tasks (requests, the scheduler, the upkeep of leases and retention, the dispatcher)
    // end and let go of the store, which only this test then holds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() || Arc::strong_count(&store) > 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped server still runs: {} holders of its store",
            Arc::strong_count(&store) - 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
    let second = osmd::start(settings()).await.unwrap();
    second.stop().await.unwrap();
}

#[test]
fn binary_serves_writes_private_files_backs_up_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start_osmd(dir.path());
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    for file in ["admin/config", "admin/api_key.pem", "tls/ca-key.pem"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let config = std::fs::read_to_string(dir.path().join("admin/config")).unwrap();
    assert!(config.contains(&format!("region=@{addr}")), "{config}");
    assert!(config.contains("tenancy=ocid1.tenancy.oc1.."));

    // A second osmd on the same SQLite store refuses to start (the first keeps the queue of
    // agent work in its memory), and says why.
    let second = Command::new(env!("CARGO_BIN_EXE_osmd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second osmd started");
    let why = String::from_utf8_lossy(&second.stderr);
    assert!(
        why.contains("another osmd already serves the SQLite store"),
        "{why}"
    );

    let backup = dir.path().join("backup.db");
    let status = Command::new(env!("CARGO_BIN_EXE_osmd"))
        .args(["backup", "--data-dir"])
        .arg(dir.path())
        .arg("--to")
        .arg(&backup)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(backup.exists());
    let again = Command::new(env!("CARGO_BIN_EXE_osmd"))
        .args(["backup", "--data-dir"])
        .arg(dir.path())
        .arg("--to")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!again.status.success(), "refuses to overwrite");

    // The backup is a complete store: a server started on it knows the same tenancy.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tenancy = config
        .lines()
        .find_map(|l| l.strip_prefix("tenancy="))
        .unwrap()
        .to_string();
    rt.block_on(async {
        let store = osm_store::connect(&format!("sqlite://{}", backup.display()))
            .await
            .unwrap();
        assert_eq!(store.tenancy_get().await.unwrap().unwrap().id, tenancy);
    });

    let pid = child.id();
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut child = child;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "osmd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    // A restart reuses the store and keeps the administrator's files.
    let (mut child, _) = start_osmd(dir.path());
    let config_after = std::fs::read_to_string(dir.path().join("admin/config")).unwrap();
    assert!(config_after.contains(&tenancy));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_osmd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("osmd "));
}
