//! The test harness: an osmd started in-process on a random port, on SQLite or on a fresh
//! PostgreSQL database, and a signed client for its administrator.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use osm_client::{ApiResponse, Client, OciConfig};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::{ApiKey, Group, User, httpsig};
use osm_store::Store;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub server: Option<osmd::Server>,
    pub client: Client,
    pub tenancy: String,
    pub base: String,
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
    pub config: OciConfig,
    pub pg_db: Option<String>,
}

/// The PostgreSQL server tests use (the test command starts one when none answers).
pub fn pg_admin_url() -> String {
    std::env::var("OSM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database and returns its URL; panics (the test fails) when PostgreSQL
/// cannot be reached — PostgreSQL tests are never skipped.
pub async fn fresh_pg_database() -> (String, String) {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is not reachable ({e}); run the tests with scripts/test")
        });
    let name = format!("osmd_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin.clone());
    (format!("{base}/{name}"), name)
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with settings changed by `tweak` (which may also fill the data directory).
pub async fn spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut osmd::config::Settings),
) -> TestApp {
    try_spawn_app_with(backend, tweak)
        .await
        .expect("osmd starts")
}

/// The same, answering why osmd refused to start.
pub async fn try_spawn_app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut osmd::config::Settings),
) -> anyhow::Result<TestApp> {
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
    let mut settings = osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        db: Some(db),
        max_body_bytes: 64 * 1024,
        ..Default::default()
    };
    tweak(&mut settings);
    let server = match osmd::start(settings).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(name) = pg_db {
                drop_pg_database(name);
            }
            return Err(e);
        }
    };
    assert!(server.bootstrapped);
    let config = OciConfig::load(&server.admin_config(), "DEFAULT").expect("admin config loads");
    let base = format!("https://{}", server.addr);
    let client = Client::from_config(&config, Some(&server.ca_file()), None).expect("client");
    Ok(TestApp {
        tenancy: server.tenancy_id.clone(),
        store: server.store.clone(),
        server: Some(server),
        client,
        base,
        dir,
        config,
        pg_db,
    })
}

impl TestApp {
    /// A user named `name` granted these compartments (none: nothing), and a client signing as it.
    pub async fn user_granted(&self, name: &str, grants: &[&str]) -> osm_client::Client {
        let now = Timestamp::now();
        let user = User {
            id: new_ocid(ResourceKind::User),
            tenancy_id: self.tenancy.clone(),
            name: name.into(),
            description: "".into(),
            time_created: now,
        };
        let (private_pem, public_pem) = httpsig::generate_rsa_key().unwrap();
        let fingerprint = httpsig::fingerprint(&public_pem).unwrap();
        let group = Group {
            id: new_ocid(ResourceKind::Group),
            name: format!("{name}-group"),
            description: "".into(),
            time_created: now,
        };
        self.store.user_create(&user).await.unwrap();
        self.store
            .api_key_add(&ApiKey {
                user_id: user.id.clone(),
                fingerprint: fingerprint.clone(),
                public_key_pem: public_pem,
                time_created: now,
            })
            .await
            .unwrap();
        self.store.user_group_create(&group).await.unwrap();
        self.store
            .user_group_add_member(&group.id, &user.id)
            .await
            .unwrap();
        for compartment in grants {
            self.store
                .user_group_grant(&group.id, compartment)
                .await
                .unwrap();
        }
        let key_file = self.dir.path().join(format!("{name}.pem"));
        std::fs::write(&key_file, private_pem).unwrap();
        let config = osm_client::OciConfig {
            user: user.id,
            fingerprint,
            key_file,
            ..self.config.clone()
        };
        osm_client::Client::from_config(&config, Some(&self.ca_file()), None).unwrap()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    pub async fn get(&self, path: &str) -> ApiResponse {
        self.client.get(path).await.expect("request sent")
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> ApiResponse {
        self.client
            .post_json(path, body, &[])
            .await
            .expect("request sent")
    }

    pub async fn post_with(
        &self,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        self.client
            .post_json(path, body, headers)
            .await
            .expect("request sent")
    }

    pub async fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> ApiResponse {
        let headers: Vec<(&str, &str)> =
            if_match.map(|t| vec![("if-match", t)]).unwrap_or_default();
        self.client
            .put_json(path, Some(body), &headers)
            .await
            .expect("request sent")
    }

    pub async fn delete(&self, path: &str, if_match: Option<&str>) -> ApiResponse {
        self.client
            .delete(path, if_match)
            .await
            .expect("request sent")
    }

    /// Creates a compartment under `parent` and returns its id.
    pub async fn compartment(&self, parent: &str, name: &str) -> String {
        let r = self
            .post(
                "/20160918/compartments",
                Some(&serde_json::json!({"compartmentId": parent, "name": name, "description": "test"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json::<Value>()["id"].as_str().unwrap().to_string()
    }

    /// Creates a managed instance group and returns its id.
    pub async fn group(&self, compartment: &str, name: &str) -> String {
        let r = self
            .post(
                "/20190801/managedInstanceGroups",
                Some(&serde_json::json!({"compartmentId": compartment, "displayName": name, "osFamily": "LINUX"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json::<Value>()["id"].as_str().unwrap().to_string()
    }

    /// Follows `opc-next-page` from `path` (which must already carry a query string) and
    /// returns every item.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut items = vec![];
        let mut url = path.to_string();
        let mut pages = 0;
        loop {
            let r = self.get(&url).await;
            assert_eq!(r.status, 200, "{url}: {}", r.text());
            items.extend(r.json::<Vec<Value>>());
            pages += 1;
            assert!(pages < 1000, "pagination does not end");
            match r.header("opc-next-page") {
                Some(token) => {
                    assert!(!token.is_empty(), "opc-next-page must never be empty");
                    url = format!("{path}&page={token}");
                }
                None => break,
            }
        }
        items
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(name) = self.pg_db.take() {
            drop_pg_database(name);
        }
    }
}

/// Drops a test database (best effort: it is throw-away either way).
fn drop_pg_database(name: String) {
    let admin = pg_admin_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::Executor::execute(
                    &mut c,
                    sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                )
                .await;
            }
        });
    })
    .join()
    .ok();
}

/// Expands each `async fn name(backend: Backend)` test body into one test per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { super::$name($crate::helpers::Backend::Sqlite).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { super::$name($crate::helpers::Backend::Postgres).await }
            }
        )*
    };
}
