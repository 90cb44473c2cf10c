//! The test bench: a real osmd (in-process, on SQLite or a fresh PostgreSQL database) with its
//! own data directory, simulated hosts served by the real `osm-sim` binary, and the built
//! `osmctl` binary run as a child process, as an operator would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use osm_client::{Client, OciConfig};
use osm_store::Store;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Bench {
    server: Option<osmd::Server>,
    pub dir: tempfile::TempDir,
    /// HOME for osmctl: empty, so nothing of the machine's `~/.oci` leaks into a test.
    home: tempfile::TempDir,
    pub tenancy: String,
    pub client: Client,
    pub store: Arc<dyn Store>,
    sims: Vec<tokio::process::Child>,
    pg_db: Option<String>,
}

/// What one osmctl run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns the run.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "osmctl failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Asserts the exit code and that stderr is one `osmctl: …` line; returns that line.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "wrong exit code: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr is not one line: {self:#?}");
        assert!(lines[0].starts_with("osmctl: "), "{self:#?}");
        lines[0]
    }
}

fn pg_admin_url() -> String {
    std::env::var("OSM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database; PostgreSQL tests fail (never skip) when the server is missing.
async fn fresh_pg_database() -> (String, String) {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is not reachable ({e}); run the tests with scripts/test")
        });
    let name = format!("osmctl_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.clone(), |(b, _)| b.to_string());
    (format!("{base}/{name}"), name)
}

impl Bench {
    pub async fn start(backend: Backend) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let (db, pg_db) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("osm.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, name) = fresh_pg_database().await;
                (url, Some(name))
            }
        };
        let settings = osmd::config::Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            db: Some(db),
            ..Default::default()
        };
        let server = osmd::start(settings).await.expect("osmd starts");
        let config = OciConfig::load(&server.admin_config(), "DEFAULT").unwrap();
        let client = Client::from_config(&config, Some(&server.ca_file()), None).unwrap();
        Bench {
            tenancy: server.tenancy_id.clone(),
            store: server.store.clone(),
            server: Some(server),
            dir,
            home: tempfile::tempdir().unwrap(),
            client,
            sims: vec![],
            pg_db,
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("admin/config")
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    pub fn endpoint(&self) -> String {
        format!("https://{}", self.server.as_ref().unwrap().addr)
    }

    /// osmctl with this osmd's admin profile and CA.
    pub async fn osmctl(&self, args: &[&str]) -> Run {
        let config = self.config_file();
        let ca = self.ca_file();
        let mut all = vec![
            "--config",
            config.to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.osmctl_bare(&all, &[]).await
    }

    /// osmctl with exactly these arguments and environment additions.
    pub async fn osmctl_bare(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        osmctl_in(self.home.path(), args, env).await
    }

    /// A signed GET through the API, as JSON.
    pub async fn api(&self, path: &str) -> Value {
        let r = self.client.get(path).await.expect("request sent");
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// Starts `osm-sim` serving `instances` simulated hosts against this osmd.
    pub async fn simulate(&mut self, instances: u32, extra: &[&str]) {
        let sim = sim_binary().await;
        let child = tokio::process::Command::new(sim)
            .arg("--server")
            .arg(self.endpoint())
            .arg("--ca")
            .arg(self.ca_file())
            .arg("--install-key")
            .arg(self.dir.path().join("admin/install-key"))
            .arg("--instances")
            .arg(instances.to_string())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("osm-sim starts");
        self.sims.push(child);
    }

    /// Waits until `compartment` lists `n` instances; returns their ids (by name).
    pub async fn instances(&self, compartment: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = self
                .api(&format!(
                    "/20190801/managedInstances?compartmentId={compartment}&sortBy=DISPLAYNAME"
                ))
                .await;
            let ids: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect();
            if ids.len() >= n {
                return ids;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} hosts enrolled",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        for mut s in self.sims.drain(..) {
            let _ = s.kill().await;
        }
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(name) = self.pg_db.take() {
            // Best effort: the database is throw-away either way.
            let admin = pg_admin_url();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::Executor::execute(&mut c, sqlx::AssertSqlSafe(sql)).await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// Runs the osmctl binary with a clean environment: no osmctl or CA variables of the caller.
pub async fn osmctl_in(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_osmctl"));
    cmd.args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for var in [
        "OSMCTL_CONFIG",
        "OSMCTL_PROFILE",
        "OSMCTL_ENDPOINT",
        "OSMCTL_CA",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("osmctl finished within 2 minutes")
        .expect("osmctl runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The `osm-sim` binary of this build. It is (re)built first — a no-op when it is current — so
/// a test never drives a stale simulator, whichever packages the test run built.
async fn sim_binary() -> PathBuf {
    static SIM: OnceLock<PathBuf> = OnceLock::new();
    if let Some(p) = SIM.get() {
        return p.clone();
    }
    let path = tokio::task::spawn_blocking(|| {
        let osmctl = PathBuf::from(env!("CARGO_BIN_EXE_osmctl"));
        let profile_dir = osmctl.parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap().to_path_buf();
        let mut cmd = std::process::Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "osm-sim", "--bin", "osm-sim"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building osm-sim failed");
        profile_dir.join("osm-sim")
    })
    .await
    .unwrap();
    SIM.get_or_init(|| path).clone()
}

/// Expands each `async fn name(backend: Backend)` into one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}
