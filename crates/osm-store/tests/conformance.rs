//! The store conformance suite. Every case runs on both backends: `sqlite::<case>` against a
//! fresh SQLite file, `postgres::<case>` against a fresh database on the PostgreSQL server named
//! by `OSM_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable
//! PostgreSQL fails the postgres cases; they are never skipped.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::page::{KeyValue, Page, PageRequest, SortKey};
use osm_core::*;
use osm_store::sqlite::SqliteStore;
use osm_store::*;
use sqlx::Connection;

// --- harness ------------------------------------------------------------------------------

/// One test database and a store open on it.
#[derive(Clone)]
struct Db {
    store: Arc<dyn Store>,
    url: String,
    /// The SQLite file's directory (also scratch space for backups).
    dir: Arc<tempfile::TempDir>,
}

impl Db {
    fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// A second, independent store on the same database.
    async fn reopen(&self) -> Arc<dyn Store> {
        osm_store::connect(&self.url)
            .await
            .expect("reopen the store")
    }

    /// Runs SQL outside the store (to set up rows no store method writes).
    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.backend() {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

const CRASH_CHILD_URL: &str = "OSM_STORE_TEST_CRASH_URL";
const CRASH_CHILD_COMPARTMENT: &str = "OSM_STORE_TEST_CRASH_COMPARTMENT";

/// Runs `case` on a fresh database of `backend`, then drops the database (PostgreSQL).
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Ok(url) = std::env::var(CRASH_CHILD_URL) {
        crash_child(&url).await;
    }
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let (url, pg) = match backend {
        Backend::Sqlite => {
            let path = dir.path().join("osm.db");
            (format!("sqlite://{}", path.display()), None)
        }
        Backend::Postgres => {
            let admin = pg_admin_url();
            let name = format!("osm_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = pg_admin(&admin).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
            conn.close().await.ok();
            (pg_url_with_db(&admin, &name), Some((admin, name)))
        }
    };
    let store = osm_store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open the store at {url}: {e}"));
    assert_eq!(store.backend(), backend);
    let db = Db { store, url, dir };
    // A panicking case must still drop its database.
    let outcome = CatchUnwind(Box::pin(case(db))).await;
    // Best effort: a database left behind is only litter.
    if let Some((admin, name)) = pg
        && let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await
    {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Resolves to `Err(panic)` when the inner future panics (cases need not be `Send`, so they
/// are not spawned as tasks).
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

fn pg_admin_url() -> String {
    std::env::var("OSM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg_admin(url: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(Duration::from_secs(15), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {url} ({e}); start it or point OSM_TEST_PG_URL at one \
             (the postgres conformance cases are never skipped)"
        ),
        Err(_) => panic!(
            "PostgreSQL at {url} did not answer within 15 s; start it or point OSM_TEST_PG_URL at one"
        ),
    }
}

/// The admin URL with its database replaced by `db` (query parameters kept).
fn pg_url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Expands each case into `sqlite::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(osm_store::Backend::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(osm_store::Backend::Postgres, super::$case).await;
                }
            )*
        }
    };
}

conformance!(
    ping_and_backend,
    bootstrap_once,
    bootstrap_races,
    users_keys_and_grants,
    compartment_tree_and_subtree,
    compartment_create_rules,
    compartment_create_races,
    compartment_update_versions,
    compartment_delete_refused_while_non_empty,
    instances_crud_and_filters,
    instances_concurrent_inserts,
    groups_crud_and_filters,
    attach_detach_rules,
    group_delete_refused_while_targeted,
    jobs_crud_and_filters,
    jobs_check_targets,
    managed_instance_counts,
    work_requests_children_logs_errors,
    work_request_filters,
    paging_instances,
    paging_groups,
    paging_jobs,
    paging_work_requests,
    paging_compartments,
    paging_logs_and_errors,
    log_lines_written_together,
    log_kept_with_the_work_request,
    completion_sees_a_cancel_that_lands_during_it,
    open_work_outlives_the_store,
    paging_with_inserts_between_pages,
    version_mismatch_vs_not_found,
    retry_tokens,
    retry_token_duplicates_roll_back,
    backup,
    crash_durability,
    inventory_full_replace_and_counts,
    inventory_diff_and_revision_mismatch,
    inventory_windows_updates_and_catalogue,
    paging_inventory,
    errata_import_matches_updates,
    errata_reimport_is_idempotent_and_stale_records_wait,
    errata_import_is_all_or_nothing,
    errata_withdrawn_records_stop_matching,
    errata_matching_on_upload_survives_later_uploads,
    errata_imports_race_uploads,
    errata_cves_keep_what_agents_reported,
    errata_import_is_set_based_and_all_or_nothing_at_scale,
    errata_read_paths_have_indexes,
    paging_errata,
    compliance_counts_and_pending_updates,
    compliance_scopes,
    compliance_without_inventory,
    compliance_reads_in_batches,
    compliance_scope_of_many_compartments,
);

// --- fixtures -----------------------------------------------------------------------------

/// 2030-01-01T00:00:00Z plus `secs` seconds and `micros` microseconds.
fn at(secs: i64, micros: i64) -> Timestamp {
    Timestamp::from_microsecond(1_893_456_000_000_000 + secs * 1_000_000 + micros).unwrap()
}

fn tags() -> (FreeformTags, DefinedTags) {
    let free = BTreeMap::from([("team".to_string(), "ops".to_string())]);
    let defined = BTreeMap::from([(
        "Ops".to_string(),
        BTreeMap::from([
            ("tier".to_string(), serde_json::json!("gold")),
            ("n".to_string(), serde_json::json!(3)),
        ]),
    )]);
    (free, defined)
}

fn bootstrap_data() -> Bootstrap {
    let tenancy = new_ocid(ResourceKind::Tenancy);
    let admin = new_ocid(ResourceKind::User);
    Bootstrap {
        tenancy: Compartment {
            id: tenancy.clone(),
            parent_id: None,
            name: "root".into(),
            description: "the tenancy".into(),
            lifecycle_state: CompartmentState::Active,
            time_created: at(0, 1),
            freeform_tags: BTreeMap::new(),
            defined_tags: BTreeMap::new(),
            version: 1,
        },
        admin: User {
            id: admin.clone(),
            tenancy_id: tenancy.clone(),
            name: "admin".into(),
            description: "administrator".into(),
            time_created: at(0, 2),
        },
        admin_key: ApiKey {
            user_id: admin,
            fingerprint: "aa:bb:cc".into(),
            public_key_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            time_created: at(0, 3),
        },
        admin_group: Group {
            id: new_ocid(ResourceKind::Group),
            name: "Administrators".into(),
            description: "all of it".into(),
            time_created: at(0, 4),
        },
    }
}

/// Bootstraps the store and returns the tenancy id.
async fn tenancy(s: &dyn Store) -> String {
    let b = bootstrap_data();
    assert!(s.bootstrap(&b).await.unwrap());
    b.tenancy.id
}

fn compartment(parent: &str, name: &str, t: Timestamp) -> Compartment {
    let (free, defined) = tags();
    Compartment {
        id: new_ocid(ResourceKind::Compartment),
        parent_id: Some(parent.to_string()),
        name: name.to_string(),
        description: format!("compartment {name}"),
        lifecycle_state: CompartmentState::Active,
        time_created: t,
        freeform_tags: free,
        defined_tags: defined,
        version: 1,
    }
}

async fn new_compartment(s: &dyn Store, parent: &str, name: &str) -> String {
    let c = compartment(parent, name, at(1, 0));
    s.compartment_create(&c, None).await.unwrap();
    c.id
}

fn instance(comp: &str, name: &str, family: OsFamily, t: Timestamp) -> ManagedInstance {
    ManagedInstance {
        id: new_ocid(ResourceKind::ManagedInstance),
        compartment_id: comp.to_string(),
        display_name: name.to_string(),
        description: Some(format!("host {name}")),
        os_name: Some("Oracle Linux".into()),
        os_version: Some("9.4".into()),
        os_kernel_version: None,
        os_family: family,
        status: ManagedInstanceStatus::Normal,
        last_checkin: Some(t),
        last_boot: None,
        is_reboot_required: true,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: UpdateCounts {
            security: 3,
            bug: 2,
            enhancement: 1,
            other: 0,
        },
        time_created: t,
        version: 1,
    }
}

fn group(comp: &str, name: &str, family: OsFamily, t: Timestamp) -> ManagedInstanceGroup {
    let (free, defined) = tags();
    ManagedInstanceGroup {
        id: new_ocid(ResourceKind::ManagedInstanceGroup),
        compartment_id: comp.to_string(),
        display_name: name.to_string(),
        description: Some(format!("group {name}")),
        os_family: family,
        lifecycle_state: LifecycleState::Active,
        freeform_tags: free,
        defined_tags: defined,
        time_created: t,
        version: 1,
        member_count: 0,
    }
}

fn job(
    comp: &str,
    name: &str,
    instances: &[&ManagedInstance],
    groups: &[&ManagedInstanceGroup],
    t: Timestamp,
) -> ScheduledJob {
    let (free, defined) = tags();
    ScheduledJob {
        id: new_ocid(ResourceKind::ScheduledJob),
        compartment_id: comp.to_string(),
        display_name: name.to_string(),
        description: Some(format!("job {name}")),
        schedule_type: ScheduleType::Recurring,
        time_next_execution: Some(at(3600, 0)),
        time_last_execution: None,
        interval_type: Some(IntervalType::Day),
        interval_value: Some(1),
        managed_instances: instances
            .iter()
            .map(|m| IdName {
                id: m.id.clone(),
                display_name: m.display_name.clone(),
            })
            .collect(),
        managed_instance_groups: groups
            .iter()
            .map(|g| IdName {
                id: g.id.clone(),
                display_name: g.display_name.clone(),
            })
            .collect(),
        operation_type: OperationType::UpdateAll,
        update_type: Some(UpdateType::Security),
        package_names: vec![],
        update_names: vec!["openssl".into()],
        lifecycle_state: LifecycleState::Active,
        freeform_tags: free,
        defined_tags: defined,
        os_family: OsFamily::Linux,
        is_restricted: false,
        time_zone: Some("Europe/Paris".into()),
        time_created: t,
        version: 1,
    }
}

fn work_request(
    comp: &str,
    description: Option<&str>,
    mi: Option<&ManagedInstance>,
    t: Timestamp,
) -> WorkRequest {
    WorkRequest {
        id: new_ocid(ResourceKind::WorkRequest),
        compartment_id: comp.to_string(),
        operation_type: OperationType::Install,
        status: WorkRequestStatus::Accepted,
        description: description.map(str::to_string),
        message: None,
        managed_instance: mi.map(|m| IdName {
            id: m.id.clone(),
            display_name: m.display_name.clone(),
        }),
        os_family: mi.map(|m| m.os_family).unwrap_or(OsFamily::Linux),
        percent_complete: 12.5,
        time_accepted: t,
        time_started: None,
        time_finished: None,
        parent_id: None,
        scheduled_job_id: None,
        resources: vec![WorkRequestResource {
            entity_type: "instance".into(),
            action_type: WorkRequestActionType::InProgress,
            identifier: "ocid1.instance.oc1..x".into(),
            name: Some("web".into()),
            entity_uri: "/20190801/managedInstances/x".into(),
        }],
        children_ids: vec![],
        action: None,
    }
}

fn retry(principal: &str, token: &str, resource: &str) -> RetryRecord {
    RetryRecord {
        principal_id: principal.to_string(),
        token: token.to_string(),
        operation: "Test".into(),
        request_hash: "h".into(),
        resource_id: resource.to_string(),
        time_created: at(0, 0),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|x| id(x).to_string()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn page_all() -> PageRequest {
    PageRequest::all()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: StoreResult<T>, needle: &str) {
    match r {
        Err(StoreError::Conflict(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected Conflict containing {needle:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_missing<T: std::fmt::Debug>(r: StoreResult<T>) {
    assert!(
        matches!(r, Err(StoreError::MissingReference(_))),
        "expected MissingReference, got {r:?}"
    );
}

// --- paging helpers -----------------------------------------------------------------------

/// Pages through a list `limit` rows at a time, calling `between(n)` after page `n`.
async fn walk<T>(
    fetch: &impl AsyncFn(PageRequest) -> Page<T>,
    sort: SortKey,
    order: SortOrder,
    limit: u32,
    between: &impl AsyncFn(usize),
) -> Vec<T> {
    let mut out = vec![];
    let mut after = None;
    for n in 1.. {
        let page = fetch(PageRequest {
            sort,
            order,
            limit: Some(limit),
            after: after.take(),
        })
        .await;
        assert!(page.items.len() <= limit as usize);
        if page.next.is_some() {
            assert_eq!(page.items.len(), limit as usize, "a short page with a next");
        }
        out.extend(page.items);
        between(n).await;
        match page.next {
            Some(c) => {
                assert_eq!((c.sort, c.order), (sort, order));
                after = Some(c);
            }
            None => break,
        }
        assert!(n < 10_000, "paging does not end");
    }
    out
}

/// A comparable form of a row's sort position.
fn position(key: KeyValue, id: String) -> (i64, String, String) {
    match key {
        KeyValue::Micros(v) => (v, String::new(), id),
        KeyValue::Text(t) => (0, t, id),
    }
}

/// Every ordering of the list, paged and unpaged: the same rows, each once, sorted by
/// (key, id) in the requested direction.
async fn check_paging<T>(
    fetch: impl AsyncFn(PageRequest) -> Page<T>,
    key: impl Fn(&T, SortKey) -> (KeyValue, String),
    expected: &BTreeSet<String>,
) {
    for sort in [SortKey::TimeCreated, SortKey::Name] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let all = fetch(PageRequest {
                sort,
                order,
                limit: None,
                after: None,
            })
            .await;
            assert!(all.next.is_none(), "an unlimited list has no next page");
            let positions: Vec<_> = all
                .items
                .iter()
                .map(|x| {
                    let (k, id) = key(x, sort);
                    position(k, id)
                })
                .collect();
            let mut want = positions.clone();
            want.sort();
            if order == SortOrder::Desc {
                want.reverse();
            }
            assert_eq!(positions, want, "{sort:?} {order:?} is not in order");
            let all_ids: Vec<String> = positions.iter().map(|p| p.2.clone()).collect();
            assert_eq!(
                all_ids.iter().cloned().collect::<BTreeSet<_>>(),
                *expected,
                "{sort:?} {order:?}: wrong rows"
            );
            assert_eq!(all_ids.len(), expected.len(), "a row repeats");
            for limit in [1, 4, 7] {
                let paged = walk(&fetch, sort, order, limit, &async |_| {}).await;
                let paged_ids: Vec<String> = paged.iter().map(|x| key(x, sort).1).collect();
                assert_eq!(paged_ids, all_ids, "{sort:?} {order:?} limit {limit}");
            }
        }
    }
}

// --- cases --------------------------------------------------------------------------------

async fn ping_and_backend(db: Db) {
    db.store.ping().await.unwrap();
    assert!(db.store.tenancy_get().await.unwrap().is_none());
    assert!(
        osm_store::connect("mysql://x").await.is_err(),
        "an unknown URL scheme is refused"
    );
}

async fn bootstrap_once(db: Db) {
    let s = &*db.store;
    let b = bootstrap_data();
    assert!(s.bootstrap(&b).await.unwrap());
    assert_eq!(s.tenancy_get().await.unwrap().as_ref(), Some(&b.tenancy));
    assert_eq!(
        s.user_get(&b.admin.id).await.unwrap().as_ref(),
        Some(&b.admin)
    );
    assert_eq!(
        s.api_key_get(&b.admin.id, &b.admin_key.fingerprint)
            .await
            .unwrap()
            .as_ref(),
        Some(&b.admin_key)
    );
    assert_eq!(
        s.user_granted_compartments(&b.admin.id).await.unwrap(),
        vec![b.tenancy.id.clone()]
    );
    // A second bootstrap changes nothing.
    let other = bootstrap_data();
    assert!(!s.bootstrap(&other).await.unwrap());
    assert_eq!(s.tenancy_get().await.unwrap().unwrap().id, b.tenancy.id);
    assert!(s.user_get(&other.admin.id).await.unwrap().is_none());
    assert!(
        s.compartment_get(&other.tenancy.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.compartment_tree().await.unwrap(),
        vec![(b.tenancy.id.clone(), None)]
    );
    // The same data again is also a no-op.
    assert!(!s.bootstrap(&b).await.unwrap());
}

async fn bootstrap_races(db: Db) {
    let mut tasks = vec![];
    for _ in 0..6 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let b = bootstrap_data();
            (s.bootstrap(&b).await, b)
        }));
    }
    let mut winners = vec![];
    for t in tasks {
        let (r, b) = t.await.unwrap();
        if r.expect("a racing bootstrap answers Ok(false), not an error") {
            winners.push(b);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one bootstrap wins");
    let tenancy = db.store.tenancy_get().await.unwrap().unwrap();
    assert_eq!(tenancy.id, winners[0].tenancy.id);
    assert_eq!(db.store.compartment_tree().await.unwrap().len(), 1);
}

async fn users_keys_and_grants(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let a = new_compartment(s, &root, "a").await;
    let b = new_compartment(s, &root, "b").await;
    let user = User {
        id: new_ocid(ResourceKind::User),
        tenancy_id: root.clone(),
        name: "alice".into(),
        description: "dev".into(),
        time_created: at(5, 5),
    };
    s.user_create(&user).await.unwrap();
    assert_eq!(s.user_get(&user.id).await.unwrap(), Some(user.clone()));
    assert!(
        s.user_get("ocid1.user.oc1..nobody")
            .await
            .unwrap()
            .is_none()
    );
    assert_conflict(s.user_create(&user).await, "");

    let key = ApiKey {
        user_id: user.id.clone(),
        fingerprint: "11:22".into(),
        public_key_pem: "pem".into(),
        time_created: at(6, 0),
    };
    s.api_key_add(&key).await.unwrap();
    assert_eq!(
        s.api_key_get(&user.id, "11:22").await.unwrap(),
        Some(key.clone())
    );
    assert!(s.api_key_get(&user.id, "11:23").await.unwrap().is_none());
    assert!(s.api_key_get("someone", "11:22").await.unwrap().is_none());
    assert_conflict(s.api_key_add(&key).await, "");
    let mut orphan = key.clone();
    orphan.user_id = "ocid1.user.oc1..nobody".into();
    assert_missing(s.api_key_add(&orphan).await);

    assert!(
        s.user_granted_compartments(&user.id)
            .await
            .unwrap()
            .is_empty()
    );
    let devs = Group {
        id: new_ocid(ResourceKind::Group),
        name: "devs".into(),
        description: "developers".into(),
        time_created: at(7, 0),
    };
    let ops = Group {
        id: new_ocid(ResourceKind::Group),
        name: "ops".into(),
        description: "operators".into(),
        time_created: at(7, 1),
    };
    s.user_group_create(&devs).await.unwrap();
    s.user_group_create(&ops).await.unwrap();
    s.user_group_add_member(&devs.id, &user.id).await.unwrap();
    s.user_group_add_member(&ops.id, &user.id).await.unwrap();
    assert_conflict(s.user_group_add_member(&devs.id, &user.id).await, "");
    assert_missing(
        s.user_group_add_member(&devs.id, "ocid1.user.oc1..nobody")
            .await,
    );
    s.user_group_grant(&devs.id, &a).await.unwrap();
    s.user_group_grant(&ops.id, &a).await.unwrap();
    s.user_group_grant(&ops.id, &b).await.unwrap();
    assert_conflict(s.user_group_grant(&ops.id, &b).await, "");
    assert_missing(
        s.user_group_grant(&ops.id, "ocid1.compartment.oc1..none")
            .await,
    );
    assert_eq!(
        sorted(s.user_granted_compartments(&user.id).await.unwrap()),
        sorted(vec![a.clone(), b.clone()])
    );
}

async fn compartment_tree_and_subtree(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let a = new_compartment(s, &root, "a").await;
    let b = new_compartment(s, &root, "b").await;
    let a1 = new_compartment(s, &a, "a1").await;
    let a2 = new_compartment(s, &a, "a2").await;
    let a1x = new_compartment(s, &a1, "x").await;
    let bx = new_compartment(s, &b, "x").await;

    let c = compartment(&a, "full", at(9, 9));
    s.compartment_create(&c, None).await.unwrap();
    assert_eq!(s.compartment_get(&c.id).await.unwrap(), Some(c.clone()));
    assert!(
        s.compartment_get("ocid1.compartment.oc1..none")
            .await
            .unwrap()
            .is_none()
    );

    let list = async |parent: &str, in_subtree: bool, name: Option<&str>| {
        let f = CompartmentFilter {
            parent_id: parent.to_string(),
            in_subtree,
            name: name.map(str::to_string),
            lifecycle_state: None,
        };
        sorted(ids(
            &s.compartment_list(&f, &page_all()).await.unwrap().items,
            |c| &c.id,
        ))
    };
    assert_eq!(
        list(&root, false, None).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        list(&root, true, None).await,
        sorted(vec![
            a.clone(),
            b.clone(),
            a1.clone(),
            a2.clone(),
            a1x.clone(),
            bx.clone(),
            c.id.clone()
        ])
    );
    assert_eq!(
        list(&a, true, None).await,
        sorted(vec![a1.clone(), a2.clone(), a1x.clone(), c.id.clone()])
    );
    assert_eq!(list(&a1x, true, None).await, Vec::<String>::new());
    assert_eq!(
        list(&root, true, Some("x")).await,
        sorted(vec![a1x.clone(), bx.clone()])
    );
    assert_eq!(list(&root, false, Some("x")).await, Vec::<String>::new());

    // State filter.
    s.compartment_delete(&a2, None).await.unwrap();
    let f = CompartmentFilter {
        parent_id: a.clone(),
        in_subtree: false,
        name: None,
        lifecycle_state: Some(CompartmentState::Deleted),
    };
    assert_eq!(
        ids(
            &s.compartment_list(&f, &page_all()).await.unwrap().items,
            |c| &c.id
        ),
        vec![a2.clone()]
    );
    let f = CompartmentFilter {
        lifecycle_state: Some(CompartmentState::Active),
        ..f
    };
    assert_eq!(
        sorted(ids(
            &s.compartment_list(&f, &page_all()).await.unwrap().items,
            |c| &c.id
        )),
        sorted(vec![a1.clone(), c.id.clone()])
    );

    let tree: BTreeMap<String, Option<String>> =
        s.compartment_tree().await.unwrap().into_iter().collect();
    assert_eq!(tree.len(), 8);
    assert_eq!(tree[&root], None);
    assert_eq!(tree[&a1x], Some(a1.clone()));
    assert_eq!(tree[&bx], Some(b.clone()));
    assert_eq!(tree[&a2], Some(a.clone()));
}

async fn compartment_create_rules(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    assert_missing(
        s.compartment_create(
            &compartment("ocid1.compartment.oc1..none", "a", at(1, 0)),
            None,
        )
        .await,
    );
    let a = new_compartment(s, &root, "a").await;
    assert_conflict(
        s.compartment_create(&compartment(&root, "a", at(1, 0)), None)
            .await,
        "\"a\"",
    );
    // The same name under another parent is fine.
    let b = new_compartment(s, &root, "b").await;
    new_compartment(s, &b, "a").await;
    // A deleted parent takes no children; a deleted sibling frees its name.
    s.compartment_delete(&a, None).await.unwrap();
    assert_missing(
        s.compartment_create(&compartment(&a, "c", at(1, 0)), None)
            .await,
    );
    new_compartment(s, &root, "a").await;
    // A duplicate id is a clean conflict too.
    let c = compartment(&root, "c", at(1, 0));
    s.compartment_create(&c, None).await.unwrap();
    let mut again = c.clone();
    again.name = "d".into();
    assert!(matches!(
        s.compartment_create(&again, None).await,
        Err(StoreError::Conflict(_))
    ));
    // A compartment without a parent is not another tenancy.
    let mut orphan = compartment(&root, "e", at(1, 0));
    orphan.parent_id = None;
    assert!(s.compartment_create(&orphan, None).await.is_err());
}

async fn compartment_create_races(db: Db) {
    let root = tenancy(&*db.store).await;
    let mut tasks = vec![];
    for _ in 0..8 {
        let s = db.store.clone();
        let c = compartment(&root, "same", at(1, 0));
        tasks.push(tokio::spawn(
            async move { s.compartment_create(&c, None).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict(m)) => assert!(m.contains("same"), "{m}"),
            Err(e) => panic!("racing creates answer Ok or Conflict, got {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    let f = CompartmentFilter {
        parent_id: root,
        ..Default::default()
    };
    assert_eq!(
        db.store
            .compartment_list(&f, &page_all())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

async fn compartment_update_versions(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let a = compartment(&root, "a", at(1, 0));
    s.compartment_create(&a, None).await.unwrap();
    new_compartment(s, &root, "b").await;
    let patch = CompartmentPatch {
        name: Some("a2".into()),
        description: Some("renamed".into()),
        freeform_tags: Some(BTreeMap::from([("k".into(), "v".into())])),
        defined_tags: None,
    };
    let updated = s.compartment_update(&a.id, &patch, Some(1)).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "a2");
    assert_eq!(updated.description, "renamed");
    assert_eq!(updated.defined_tags, a.defined_tags);
    assert_eq!(
        s.compartment_get(&a.id).await.unwrap(),
        Some(updated.clone())
    );
    assert!(matches!(
        s.compartment_update(&a.id, &patch, Some(1)).await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(matches!(
        s.compartment_update("ocid1.compartment.oc1..none", &patch, Some(1))
            .await,
        Err(StoreError::NotFound)
    ));
    let rename = CompartmentPatch {
        name: Some("b".into()),
        ..Default::default()
    };
    assert_conflict(s.compartment_update(&a.id, &rename, None).await, "\"b\"");
    // Keeping its own name is not a conflict with itself.
    let same = CompartmentPatch {
        name: Some("a2".into()),
        ..Default::default()
    };
    assert_eq!(
        s.compartment_update(&a.id, &same, None)
            .await
            .unwrap()
            .version,
        3
    );
}

async fn compartment_delete_refused_while_non_empty(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;

    let with_child = new_compartment(s, &root, "with-child").await;
    let child = new_compartment(s, &with_child, "child").await;
    assert_conflict(
        s.compartment_delete(&with_child, None).await,
        "1 compartment",
    );
    s.compartment_delete(&child, None).await.unwrap();
    s.compartment_delete(&with_child, None).await.unwrap();

    let with_instance = new_compartment(s, &root, "with-instance").await;
    s.managed_instance_insert(&instance(&with_instance, "h", OsFamily::Linux, at(1, 0)))
        .await
        .unwrap();
    s.managed_instance_insert(&instance(&with_instance, "h2", OsFamily::Linux, at(1, 0)))
        .await
        .unwrap();
    assert_conflict(
        s.compartment_delete(&with_instance, None).await,
        "2 managed instances",
    );

    let with_group = new_compartment(s, &root, "with-group").await;
    let g = group(&with_group, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    assert_conflict(
        s.compartment_delete(&with_group, None).await,
        "1 managed instance group",
    );
    s.managed_instance_group_delete(&g.id, None).await.unwrap();
    s.compartment_delete(&with_group, None).await.unwrap();

    let with_job = new_compartment(s, &root, "with-job").await;
    let mi = instance(&with_instance, "t", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let j = job(&with_job, "j", &[&mi], &[], at(1, 0));
    s.scheduled_job_create(&j, None).await.unwrap();
    assert_conflict(
        s.compartment_delete(&with_job, None).await,
        "1 scheduled job",
    );
    s.scheduled_job_delete(&j.id, None).await.unwrap();

    // Versions: a stale one is refused, the current one works and bumps it.
    assert!(matches!(
        s.compartment_delete(&with_job, Some(7)).await,
        Err(StoreError::VersionMismatch)
    ));
    s.compartment_delete(&with_job, Some(1)).await.unwrap();
    let gone = s.compartment_get(&with_job).await.unwrap().unwrap();
    assert_eq!(gone.lifecycle_state, CompartmentState::Deleted);
    assert_eq!(gone.version, 2);
    assert!(matches!(
        s.compartment_delete("ocid1.compartment.oc1..none", None)
            .await,
        Err(StoreError::NotFound)
    ));
    // Nothing new goes into a deleted compartment.
    assert_missing(
        s.managed_instance_insert(&instance(&with_job, "late", OsFamily::Linux, at(1, 0)))
            .await,
    );
    assert_missing(
        s.managed_instance_group_create(&group(&with_job, "late", OsFamily::Linux, at(1, 0)), None)
            .await,
    );
    assert_missing(
        s.scheduled_job_create(&job(&with_job, "late", &[&mi], &[], at(1, 0)), None)
            .await,
    );
}

async fn instances_crud_and_filters(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let other = new_compartment(s, &root, "other").await;
    let mut web = instance(&c, "web", OsFamily::Linux, at(10, 1));
    web.last_boot = Some(at(9, 0));
    web.os_kernel_version = Some("6.1".into());
    web.notification_topic_id = Some("topic".into());
    s.managed_instance_insert(&web).await.unwrap();
    assert_eq!(
        s.managed_instance_get(&web.id).await.unwrap(),
        Some(web.clone())
    );
    assert!(
        s.managed_instance_get("ocid1.instance.oc1..none")
            .await
            .unwrap()
            .is_none()
    );
    assert_conflict(s.managed_instance_insert(&web).await, "");
    assert_missing(
        s.managed_instance_insert(&instance(
            "ocid1.compartment.oc1..none",
            "x",
            OsFamily::Linux,
            at(1, 0),
        ))
        .await,
    );

    let many: Vec<ManagedInstance> = (0..120)
        .map(|i| {
            let family = if i % 3 == 0 {
                OsFamily::Windows
            } else {
                OsFamily::Linux
            };
            instance(&c, &format!("host-{:03}", i), family, at(20 + i, 0))
        })
        .collect();
    s.managed_instance_insert_many(&many).await.unwrap();
    s.managed_instance_insert(&instance(&other, "web", OsFamily::Linux, at(1, 0)))
        .await
        .unwrap();
    // A failing batch inserts nothing.
    let bad = vec![
        instance(&c, "fresh", OsFamily::Linux, at(1, 0)),
        web.clone(),
    ];
    assert!(s.managed_instance_insert_many(&bad).await.is_err());
    assert!(s.managed_instance_get(&bad[0].id).await.unwrap().is_none());
    s.managed_instance_insert_many(&[]).await.unwrap();

    let list = async |name: Option<&str>, family: Option<OsFamily>| {
        let f = ManagedInstanceFilter {
            compartment_id: c.clone(),
            display_name: name.map(str::to_string),
            os_family: family,
        };
        s.managed_instance_list(&f, &page_all())
            .await
            .unwrap()
            .items
    };
    assert_eq!(list(None, None).await.len(), 121);
    assert_eq!(list(None, Some(OsFamily::All)).await.len(), 121);
    assert_eq!(list(None, Some(OsFamily::Windows)).await.len(), 40);
    assert_eq!(list(None, Some(OsFamily::Linux)).await.len(), 81);
    assert_eq!(list(Some("web"), None).await, vec![web.clone()]);
    assert_eq!(list(Some("web"), Some(OsFamily::Windows)).await, vec![]);
    // The default order is newest first.
    let all = list(None, None).await;
    assert_eq!(all[0].display_name, "host-119");
    assert_eq!(all.last().unwrap().id, web.id);

    // Update with and without a version.
    let patch = ManagedInstancePatch {
        notification_topic_id: Some("topic-2".into()),
        is_data_collection_authorized: Some(true),
    };
    let u = s
        .managed_instance_update(&web.id, &patch, Some(1))
        .await
        .unwrap();
    assert_eq!(u.version, 2);
    assert_eq!(u.notification_topic_id.as_deref(), Some("topic-2"));
    assert!(u.is_data_collection_authorized);
    assert_eq!(
        s.managed_instance_get(&web.id).await.unwrap(),
        Some(u.clone())
    );
    assert!(matches!(
        s.managed_instance_update(&web.id, &patch, Some(1)).await,
        Err(StoreError::VersionMismatch)
    ));
    let u = s
        .managed_instance_update(&web.id, &ManagedInstancePatch::default(), None)
        .await
        .unwrap();
    assert_eq!(
        (u.version, u.notification_topic_id.as_deref()),
        (3, Some("topic-2"))
    );
    assert!(matches!(
        s.managed_instance_update("ocid1.instance.oc1..none", &patch, None)
            .await,
        Err(StoreError::NotFound)
    ));

    // Groups of an instance, by name.
    let gb = group(&c, "b-group", OsFamily::Linux, at(1, 0));
    let ga = group(&c, "a-group", OsFamily::All, at(1, 0));
    s.managed_instance_group_create(&gb, None).await.unwrap();
    s.managed_instance_group_create(&ga, None).await.unwrap();
    assert!(
        s.managed_instance_groups_of(&web.id)
            .await
            .unwrap()
            .is_empty()
    );
    s.managed_instance_group_attach(&gb.id, &web.id, None)
        .await
        .unwrap();
    s.managed_instance_group_attach(&ga.id, &web.id, None)
        .await
        .unwrap();
    let of = s.managed_instance_groups_of(&web.id).await.unwrap();
    assert_eq!(
        of,
        vec![
            IdName {
                id: ga.id.clone(),
                display_name: "a-group".into()
            },
            IdName {
                id: gb.id.clone(),
                display_name: "b-group".into()
            },
        ]
    );
}

async fn instances_concurrent_inserts(db: Db) {
    let root = tenancy(&*db.store).await;
    let c = new_compartment(&*db.store, &root, "c").await;
    let mut tasks = vec![];
    for w in 0..12 {
        let s = db.store.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = vec![];
            for i in 0..10 {
                let mi = instance(&c, &format!("w{w}-{i}"), OsFamily::Linux, at(i, w));
                s.managed_instance_insert(&mi)
                    .await
                    .expect("concurrent insert");
                // Reads run beside the writes.
                let f = ManagedInstanceFilter {
                    compartment_id: c.clone(),
                    ..Default::default()
                };
                let page = PageRequest {
                    limit: Some(5),
                    ..page_all()
                };
                s.managed_instance_list(&f, &page)
                    .await
                    .expect("concurrent list");
                mine.push(mi.id);
            }
            mine
        }));
    }
    let mut want = BTreeSet::new();
    for t in tasks {
        want.extend(t.await.unwrap());
    }
    let f = ManagedInstanceFilter {
        compartment_id: c,
        ..Default::default()
    };
    let got: BTreeSet<String> = db
        .store
        .managed_instance_list(&f, &page_all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(got, want);
}

async fn groups_crud_and_filters(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let d = new_compartment(s, &root, "d").await;
    let linux = group(&c, "linux", OsFamily::Linux, at(1, 0));
    let windows = group(&c, "windows", OsFamily::Windows, at(2, 0));
    let mut bare = group(&c, "bare", OsFamily::All, at(3, 0));
    bare.description = None;
    bare.freeform_tags = BTreeMap::new();
    bare.defined_tags = BTreeMap::new();
    for g in [&linux, &windows, &bare] {
        s.managed_instance_group_create(g, None).await.unwrap();
    }
    assert_eq!(
        s.managed_instance_group_get(&linux.id).await.unwrap(),
        Some(linux.clone())
    );
    assert_eq!(
        s.managed_instance_group_get(&bare.id).await.unwrap(),
        Some(bare.clone())
    );
    assert!(
        s.managed_instance_group_get("ocid1.x.oc1..none")
            .await
            .unwrap()
            .is_none()
    );
    assert_conflict(s.managed_instance_group_create(&linux, None).await, "");
    assert_missing(
        s.managed_instance_group_create(
            &group(
                "ocid1.compartment.oc1..none",
                "g",
                OsFamily::Linux,
                at(1, 0),
            ),
            None,
        )
        .await,
    );

    let list = async |compartment: &str,
                      name: Option<&str>,
                      state: Option<LifecycleState>,
                      family: Option<OsFamily>| {
        let f = GroupFilter {
            compartment_id: compartment.to_string(),
            display_name: name.map(str::to_string),
            lifecycle_state: state,
            os_family: family,
        };
        let items = s
            .managed_instance_group_list(&f, &page_all())
            .await
            .unwrap()
            .items;
        ids(&items, |g| &g.id)
    };
    assert_eq!(
        list(&c, None, None, None).await,
        vec![bare.id.clone(), windows.id.clone(), linux.id.clone()]
    );
    assert_eq!(
        list(&c, Some("linux"), None, None).await,
        vec![linux.id.clone()]
    );
    assert_eq!(
        list(&c, None, None, Some(OsFamily::Windows)).await,
        vec![windows.id.clone()]
    );
    assert_eq!(list(&c, None, None, Some(OsFamily::All)).await.len(), 3);
    assert_eq!(
        list(&c, None, Some(LifecycleState::Active), None)
            .await
            .len(),
        3
    );
    assert!(list(&d, None, None, None).await.is_empty());

    // Deleted groups leave lists unless asked for.
    s.managed_instance_group_delete(&windows.id, None)
        .await
        .unwrap();
    assert_eq!(
        list(&c, None, None, None).await,
        vec![bare.id.clone(), linux.id.clone()]
    );
    assert_eq!(
        list(&c, None, Some(LifecycleState::Deleted), None).await,
        vec![windows.id.clone()]
    );
    let gone = s
        .managed_instance_group_get(&windows.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (gone.lifecycle_state, gone.version),
        (LifecycleState::Deleted, 2)
    );

    // Update.
    let patch = ManagedInstanceGroupPatch {
        display_name: Some("penguins".into()),
        description: Some("all the penguins".into()),
        freeform_tags: None,
        defined_tags: Some(BTreeMap::new()),
    };
    let u = s
        .managed_instance_group_update(&linux.id, &patch, Some(1))
        .await
        .unwrap();
    assert_eq!(u.version, 2);
    assert_eq!(u.display_name, "penguins");
    assert_eq!(u.description.as_deref(), Some("all the penguins"));
    assert_eq!(u.freeform_tags, linux.freeform_tags);
    assert!(u.defined_tags.is_empty());
    assert_eq!(
        s.managed_instance_group_get(&linux.id).await.unwrap(),
        Some(u.clone())
    );
    assert!(matches!(
        s.managed_instance_group_update(&linux.id, &patch, Some(1))
            .await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(matches!(
        s.managed_instance_group_update("ocid1.x.oc1..none", &patch, None)
            .await,
        Err(StoreError::NotFound)
    ));

    // Change compartment.
    s.managed_instance_group_change_compartment(&linux.id, &d, Some(2), None)
        .await
        .unwrap();
    assert_eq!(list(&d, None, None, None).await, vec![linux.id.clone()]);
    let moved = s
        .managed_instance_group_get(&linux.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (moved.compartment_id.as_str(), moved.version),
        (d.as_str(), 3)
    );
    assert!(matches!(
        s.managed_instance_group_change_compartment(&linux.id, &c, Some(2), None)
            .await,
        Err(StoreError::VersionMismatch)
    ));
    assert_missing(
        s.managed_instance_group_change_compartment(
            &linux.id,
            "ocid1.compartment.oc1..none",
            None,
            None,
        )
        .await,
    );
    assert!(matches!(
        s.managed_instance_group_change_compartment("ocid1.x.oc1..none", &c, None, None)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn attach_detach_rules(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let lin = group(&c, "lin", OsFamily::Linux, at(1, 0));
    let any = group(&c, "any", OsFamily::All, at(1, 0));
    s.managed_instance_group_create(&lin, None).await.unwrap();
    s.managed_instance_group_create(&any, None).await.unwrap();
    let zeta = instance(&c, "zeta", OsFamily::Linux, at(1, 0));
    let alpha = instance(&c, "alpha", OsFamily::Linux, at(2, 0));
    let win = instance(&c, "win", OsFamily::Windows, at(3, 0));
    s.managed_instance_insert_many(&[zeta.clone(), alpha.clone(), win.clone()])
        .await
        .unwrap();

    s.managed_instance_group_attach(&lin.id, &zeta.id, None)
        .await
        .unwrap();
    s.managed_instance_group_attach(&lin.id, &alpha.id, None)
        .await
        .unwrap();
    assert_eq!(
        s.managed_instance_group_members(&lin.id).await.unwrap(),
        vec![
            IdName {
                id: alpha.id.clone(),
                display_name: "alpha".into()
            },
            IdName {
                id: zeta.id.clone(),
                display_name: "zeta".into()
            },
        ]
    );
    assert_eq!(
        s.managed_instance_group_get(&lin.id)
            .await
            .unwrap()
            .unwrap()
            .member_count,
        2
    );
    assert_conflict(
        s.managed_instance_group_attach(&lin.id, &zeta.id, None)
            .await,
        "already",
    );
    assert_conflict(
        s.managed_instance_group_attach(&lin.id, &win.id, None)
            .await,
        "WINDOWS",
    );
    assert_missing(
        s.managed_instance_group_attach(&lin.id, "ocid1.instance.oc1..none", None)
            .await,
    );
    assert!(matches!(
        s.managed_instance_group_attach("ocid1.x.oc1..none", &zeta.id, None)
            .await,
        Err(StoreError::NotFound)
    ));
    // A group of family ALL takes any instance.
    s.managed_instance_group_attach(&any.id, &win.id, None)
        .await
        .unwrap();
    s.managed_instance_group_attach(&any.id, &zeta.id, None)
        .await
        .unwrap();

    // member_count in lists.
    let f = GroupFilter {
        compartment_id: c.clone(),
        ..Default::default()
    };
    let counts: BTreeMap<String, i64> = s
        .managed_instance_group_list(&f, &page_all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|g| (g.display_name, g.member_count))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([("any".into(), 2), ("lin".into(), 2)])
    );

    s.managed_instance_group_detach(&lin.id, &zeta.id, None)
        .await
        .unwrap();
    assert_conflict(
        s.managed_instance_group_detach(&lin.id, &zeta.id, None)
            .await,
        "not",
    );
    assert_conflict(
        s.managed_instance_group_detach(&lin.id, &win.id, None)
            .await,
        "not",
    );
    assert_eq!(
        s.managed_instance_group_get(&lin.id)
            .await
            .unwrap()
            .unwrap()
            .member_count,
        1
    );
    assert_eq!(
        ids(
            &s.managed_instance_groups_of(&zeta.id).await.unwrap(),
            |g| &g.id
        ),
        vec![any.id.clone()]
    );

    // A deleted group takes no members.
    s.managed_instance_group_delete(&any.id, None)
        .await
        .unwrap();
    assert!(matches!(
        s.managed_instance_group_attach(&any.id, &alpha.id, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.managed_instance_group_members(&any.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.managed_instance_groups_of(&win.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn group_delete_refused_while_targeted(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    s.managed_instance_group_attach(&g.id, &mi.id, None)
        .await
        .unwrap();
    let j1 = job(&c, "j1", &[], &[&g], at(1, 0));
    let j2 = job(&c, "j2", &[&mi], &[&g], at(2, 0));
    s.scheduled_job_create(&j1, None).await.unwrap();
    s.scheduled_job_create(&j2, None).await.unwrap();
    assert_conflict(
        s.managed_instance_group_delete(&g.id, None).await,
        "2 scheduled jobs",
    );
    s.scheduled_job_delete(&j1.id, None).await.unwrap();
    assert_conflict(
        s.managed_instance_group_delete(&g.id, None).await,
        "1 scheduled job",
    );
    s.scheduled_job_delete(&j2.id, None).await.unwrap();
    assert!(matches!(
        s.managed_instance_group_delete(&g.id, Some(5)).await,
        Err(StoreError::VersionMismatch)
    ));
    s.managed_instance_group_delete(&g.id, Some(1))
        .await
        .unwrap();
    let gone = s.managed_instance_group_get(&g.id).await.unwrap().unwrap();
    assert_eq!(gone.lifecycle_state, LifecycleState::Deleted);
    assert_eq!(gone.member_count, 0);
    assert!(
        s.managed_instance_groups_of(&mi.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.managed_instance_group_delete("ocid1.x.oc1..none", None)
            .await,
        Err(StoreError::NotFound)
    ));
    // A deleted group cannot be targeted by a new job.
    assert_missing(
        s.scheduled_job_create(&job(&c, "j3", &[], &[&g], at(3, 0)), None)
            .await,
    );
}

async fn jobs_crud_and_filters(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let d = new_compartment(s, &root, "d").await;
    let m1 = instance(&c, "m1", OsFamily::Linux, at(1, 0));
    let m2 = instance(&c, "m2", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[m1.clone(), m2.clone()])
        .await
        .unwrap();
    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();

    // Targets keep their order.
    let both = job(&c, "both", &[&m2, &m1], &[&g], at(10, 0));
    s.scheduled_job_create(&both, None).await.unwrap();
    assert_eq!(
        s.scheduled_job_get(&both.id).await.unwrap(),
        Some(both.clone())
    );
    assert!(
        s.scheduled_job_get("ocid1.x.oc1..none")
            .await
            .unwrap()
            .is_none()
    );
    assert_conflict(s.scheduled_job_create(&both, None).await, "");

    let mut once = job(&c, "once", &[&m1], &[], at(11, 0));
    once.schedule_type = ScheduleType::Onetime;
    once.interval_type = None;
    once.interval_value = None;
    once.operation_type = OperationType::Install;
    once.update_type = None;
    once.package_names = vec!["vim".into(), "git".into()];
    once.update_names = vec![];
    once.time_zone = None;
    once.description = None;
    once.time_next_execution = Some(at(100, 0));
    s.scheduled_job_create(&once, None).await.unwrap();
    assert_eq!(
        s.scheduled_job_get(&once.id).await.unwrap(),
        Some(once.clone())
    );

    let mut win = job(&c, "win", &[], &[&g], at(12, 0));
    win.os_family = OsFamily::Windows;
    win.is_restricted = true;
    win.time_next_execution = None;
    s.scheduled_job_create(&win, None).await.unwrap();

    let dead = job(&c, "dead", &[&m2], &[], at(13, 0));
    s.scheduled_job_create(&dead, None).await.unwrap();
    s.scheduled_job_delete(&dead.id, Some(1)).await.unwrap();
    let gone = s.scheduled_job_get(&dead.id).await.unwrap().unwrap();
    assert_eq!(
        (gone.lifecycle_state, gone.version),
        (LifecycleState::Deleted, 2)
    );
    assert_eq!(
        gone.managed_instances.len(),
        1,
        "a deleted job keeps its history"
    );

    let base = ScheduledJobFilter {
        compartment_id: c.clone(),
        ..Default::default()
    };
    let list = async |f: ScheduledJobFilter| {
        let page = s.scheduled_job_list(&f, &page_all()).await.unwrap();
        // Lists carry targets too.
        for j in &page.items {
            assert!(!j.managed_instances.is_empty() || !j.managed_instance_groups.is_empty());
        }
        sorted(ids(&page.items, |j| &j.id))
    };
    let all = s
        .scheduled_job_list(&base, &page_all())
        .await
        .unwrap()
        .items;
    assert_eq!(all.iter().find(|j| j.id == both.id), Some(&both));
    assert_eq!(
        list(base.clone()).await,
        sorted(vec![both.id.clone(), once.id.clone(), win.id.clone()])
    );
    assert_eq!(
        list(ScheduledJobFilter {
            display_name: Some("once".into()),
            ..base.clone()
        })
        .await,
        vec![once.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            managed_instance_id: Some(m1.id.clone()),
            ..base.clone()
        })
        .await,
        sorted(vec![both.id.clone(), once.id.clone()])
    );
    assert_eq!(
        list(ScheduledJobFilter {
            managed_instance_id: Some(m2.id.clone()),
            ..base.clone()
        })
        .await,
        vec![both.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            managed_instance_group_id: Some(g.id.clone()),
            ..base.clone()
        })
        .await,
        sorted(vec![both.id.clone(), win.id.clone()])
    );
    assert_eq!(
        list(ScheduledJobFilter {
            managed_instance_id: Some(m2.id.clone()),
            managed_instance_group_id: Some(g.id.clone()),
            ..base.clone()
        })
        .await,
        vec![both.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            operation_type: Some(OperationType::Install),
            ..base.clone()
        })
        .await,
        vec![once.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            lifecycle_state: Some(LifecycleState::Deleted),
            ..base.clone()
        })
        .await,
        vec![dead.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            os_family: Some(OsFamily::Windows),
            ..base.clone()
        })
        .await,
        vec![win.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            os_family: Some(OsFamily::All),
            ..base.clone()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        list(ScheduledJobFilter {
            is_restricted: Some(true),
            ..base.clone()
        })
        .await,
        vec![win.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            is_restricted: Some(false),
            ..base.clone()
        })
        .await
        .len(),
        2
    );
    // Upcoming: next execution strictly before the instant, active jobs only.
    assert_eq!(
        list(ScheduledJobFilter {
            next_execution_before: Some(at(3600, 0)),
            ..base.clone()
        })
        .await,
        vec![once.id.clone()]
    );
    assert_eq!(
        list(ScheduledJobFilter {
            next_execution_before: Some(at(3600, 1)),
            ..base.clone()
        })
        .await,
        sorted(vec![both.id.clone(), once.id.clone()])
    );
    assert!(
        list(ScheduledJobFilter {
            next_execution_before: Some(at(100, 0)),
            ..base.clone()
        })
        .await
        .is_empty()
    );
    assert!(
        list(ScheduledJobFilter {
            compartment_id: d.clone(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // Replace.
    let mut changed = both.clone();
    changed.display_name = "renamed".into();
    changed.schedule_type = ScheduleType::Onetime;
    changed.interval_type = None;
    changed.interval_value = None;
    changed.time_next_execution = Some(at(7200, 0));
    changed.package_names = vec!["curl".into()];
    changed.freeform_tags = BTreeMap::new();
    changed.time_zone = None;
    let replaced = s.scheduled_job_replace(&changed, Some(1)).await.unwrap();
    let mut want = changed.clone();
    want.version = 2;
    assert_eq!(replaced, want);
    assert_eq!(s.scheduled_job_get(&both.id).await.unwrap(), Some(want));
    assert!(matches!(
        s.scheduled_job_replace(&changed, Some(1)).await,
        Err(StoreError::VersionMismatch)
    ));
    let mut nobody = changed.clone();
    nobody.id = "ocid1.x.oc1..none".into();
    assert!(matches!(
        s.scheduled_job_replace(&nobody, None).await,
        Err(StoreError::NotFound)
    ));

    // Change compartment.
    s.scheduled_job_change_compartment(&once.id, &d, Some(1), None)
        .await
        .unwrap();
    assert_eq!(
        list(ScheduledJobFilter {
            compartment_id: d.clone(),
            ..Default::default()
        })
        .await,
        vec![once.id.clone()]
    );
    assert_eq!(
        s.scheduled_job_get(&once.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert!(matches!(
        s.scheduled_job_change_compartment(&once.id, &c, Some(1), None)
            .await,
        Err(StoreError::VersionMismatch)
    ));
    assert_missing(
        s.scheduled_job_change_compartment(&once.id, "ocid1.compartment.oc1..none", None, None)
            .await,
    );
    assert!(matches!(
        s.scheduled_job_delete("ocid1.x.oc1..none", None).await,
        Err(StoreError::NotFound)
    ));

    // Work requests of a job, newest first.
    assert!(
        s.scheduled_job_work_requests(&both.id)
            .await
            .unwrap()
            .is_empty()
    );
    let mut w1 = work_request(&c, Some("first run"), Some(&m1), at(20, 0));
    w1.scheduled_job_id = Some(both.id.clone());
    let mut w2 = work_request(&c, None, Some(&m2), at(30, 0));
    w2.scheduled_job_id = Some(both.id.clone());
    let w3 = work_request(&c, Some("unrelated"), Some(&m2), at(40, 0));
    s.work_request_insert_many(&[w1.clone(), w2.clone(), w3], &[])
        .await
        .unwrap();
    assert_eq!(
        s.scheduled_job_work_requests(&both.id).await.unwrap(),
        vec![
            IdName {
                id: w2.id.clone(),
                display_name: String::new()
            },
            IdName {
                id: w1.id.clone(),
                display_name: "first run".into()
            },
        ]
    );
}

async fn jobs_check_targets(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    let ghost_mi = instance(&c, "ghost", OsFamily::Linux, at(1, 0));
    let ghost_g = group(&c, "ghost", OsFamily::Linux, at(1, 0));
    let j = job(&c, "j", &[&mi, &ghost_mi], &[], at(1, 0));
    assert_missing(s.scheduled_job_create(&j, None).await);
    assert!(s.scheduled_job_get(&j.id).await.unwrap().is_none());
    assert_missing(
        s.scheduled_job_create(&job(&c, "j", &[], &[&g, &ghost_g], at(1, 0)), None)
            .await,
    );
    assert_missing(
        s.scheduled_job_create(
            &job("ocid1.compartment.oc1..none", "j", &[&mi], &[], at(1, 0)),
            None,
        )
        .await,
    );
    assert_conflict(
        s.scheduled_job_create(&job(&c, "j", &[&mi, &mi], &[], at(1, 0)), None)
            .await,
        "",
    );
    s.scheduled_job_create(&job(&c, "j", &[&mi], &[&g], at(1, 0)), None)
        .await
        .unwrap();
}

async fn managed_instance_counts(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    let other = instance(&c, "o", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[mi.clone(), other.clone()])
        .await
        .unwrap();
    assert_eq!(s.managed_instance_counts(&mi.id).await.unwrap(), (0, 0));
    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    s.managed_instance_group_attach(&g.id, &mi.id, None)
        .await
        .unwrap();
    let direct = job(&c, "direct", &[&mi], &[], at(1, 0));
    let via_group = job(&c, "via", &[], &[&g], at(2, 0));
    let both = job(&c, "both", &[&mi], &[&g], at(3, 0));
    let deleted = job(&c, "deleted", &[&mi], &[], at(4, 0));
    let unrelated = job(&c, "unrelated", &[&other], &[], at(5, 0));
    for j in [&direct, &via_group, &both, &deleted, &unrelated] {
        s.scheduled_job_create(j, None).await.unwrap();
    }
    s.scheduled_job_delete(&deleted.id, None).await.unwrap();
    let wrs = vec![
        work_request(&c, Some("a"), Some(&mi), at(1, 0)),
        work_request(&c, Some("b"), Some(&mi), at(2, 0)),
        work_request(&c, Some("c"), Some(&other), at(3, 0)),
        work_request(&c, Some("parent"), None, at(4, 0)),
    ];
    s.work_request_insert_many(&wrs, &[]).await.unwrap();
    assert_eq!(s.managed_instance_counts(&mi.id).await.unwrap(), (3, 2));
    assert_eq!(s.managed_instance_counts(&other.id).await.unwrap(), (1, 1));
    // Leaving the group drops the jobs it brought.
    s.managed_instance_group_detach(&g.id, &mi.id, None)
        .await
        .unwrap();
    assert_eq!(s.managed_instance_counts(&mi.id).await.unwrap(), (2, 2));
    assert_eq!(
        s.managed_instance_counts("ocid1.instance.oc1..none")
            .await
            .unwrap(),
        (0, 0)
    );
}

async fn work_requests_children_logs_errors(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let m1 = instance(&c, "m1", OsFamily::Linux, at(1, 0));
    let m2 = instance(&c, "m2", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[m1.clone(), m2.clone()])
        .await
        .unwrap();
    let mut parent = work_request(&c, Some("group update"), None, at(10, 0));
    parent.resources = vec![];
    parent.message = Some("2 instances".into());
    let mut k1 = work_request(&c, Some("update m1"), Some(&m1), at(10, 0));
    k1.parent_id = Some(parent.id.clone());
    k1.status = WorkRequestStatus::Succeeded;
    k1.percent_complete = 100.0;
    k1.time_started = Some(at(11, 0));
    k1.time_finished = Some(at(12, 5));
    let mut k2 = work_request(&c, Some("update m2"), Some(&m2), at(10, 1));
    k2.parent_id = Some(parent.id.clone());
    let logs = vec![
        (
            parent.id.clone(),
            WorkRequestLogEntry {
                message: "accepted".into(),
                timestamp: at(10, 0),
            },
        ),
        (
            k1.id.clone(),
            WorkRequestLogEntry {
                message: "queued".into(),
                timestamp: at(10, 0),
            },
        ),
        (
            k1.id.clone(),
            WorkRequestLogEntry {
                message: "started".into(),
                timestamp: at(11, 0),
            },
        ),
        (
            k1.id.clone(),
            WorkRequestLogEntry {
                message: "done".into(),
                timestamp: at(12, 5),
            },
        ),
    ];
    s.work_request_insert_many(&[parent.clone(), k1.clone(), k2.clone()], &logs)
        .await
        .unwrap();

    let mut want = parent.clone();
    want.children_ids = vec![k1.id.clone(), k2.id.clone()];
    assert_eq!(s.work_request_get(&parent.id).await.unwrap(), Some(want));
    assert_eq!(s.work_request_get(&k1.id).await.unwrap(), Some(k1.clone()));
    // Resources its instance implies are not written out, and read back the same.
    let implied = osm_core::work::work_request_for(
        &m2,
        &WorkAction::InstallPackage {
            names: vec!["curl".into()],
        },
        None,
        None,
        at(13, 0),
    );
    s.work_request_insert_many(std::slice::from_ref(&implied), &[])
        .await
        .unwrap();
    assert_eq!(
        s.work_request_get(&implied.id).await.unwrap(),
        Some(implied.clone())
    );
    let listed = s
        .work_request_list(
            &WorkRequestFilter {
                compartment_id: c.clone(),
                managed_instance_id: Some(m2.id.clone()),
                ..Default::default()
            },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items;
    assert!(listed.contains(&implied), "{listed:?}");
    assert!(
        s.work_request_get("ocid1.x.oc1..none")
            .await
            .unwrap()
            .is_none()
    );
    // A duplicate id fails cleanly and inserts none of the batch.
    let fresh = work_request(&c, Some("fresh"), None, at(50, 0));
    assert_conflict(
        s.work_request_insert_many(&[fresh.clone(), k2.clone()], &[])
            .await,
        "",
    );
    assert!(s.work_request_get(&fresh.id).await.unwrap().is_none());

    let messages =
        |p: Page<WorkRequestLogEntry>| p.items.into_iter().map(|l| l.message).collect::<Vec<_>>();
    let asc = PageRequest {
        order: SortOrder::Asc,
        ..page_all()
    };
    assert_eq!(
        messages(s.work_request_logs(&k1.id, &asc).await.unwrap()),
        vec!["queued", "started", "done"]
    );
    let logs1 = s.work_request_logs(&k1.id, &asc).await.unwrap().items;
    assert_eq!(logs1[2], logs[3].1);
    assert_eq!(
        messages(
            s.work_request_logs(
                &k1.id,
                &PageRequest {
                    sort: SortKey::Name,
                    ..asc.clone()
                }
            )
            .await
            .unwrap()
        ),
        vec!["done", "queued", "started"]
    );
    assert!(
        s.work_request_logs(&k2.id, &asc)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    db.exec(&format!(
        "INSERT INTO work_request_errors (work_request_id, entry_id, code, message, time_created) VALUES \
         ('{k}', 'e1', 'PACKAGE_NOT_FOUND', 'vim is not in any repository', 11000000), \
         ('{k}', 'e2', 'LEASE_EXPIRED', 'the agent went silent', 12000000)",
        k = k2.id
    ))
    .await;
    let errors = s.work_request_errors(&k2.id, &asc).await.unwrap().items;
    assert_eq!(
        errors,
        vec![
            WorkRequestError {
                code: "PACKAGE_NOT_FOUND".into(),
                message: "vim is not in any repository".into(),
                timestamp: Timestamp::from_microsecond(11_000_000).unwrap(),
            },
            WorkRequestError {
                code: "LEASE_EXPIRED".into(),
                message: "the agent went silent".into(),
                timestamp: Timestamp::from_microsecond(12_000_000).unwrap(),
            },
        ]
    );
    let by_code = s
        .work_request_errors(
            &k2.id,
            &PageRequest {
                sort: SortKey::Name,
                ..asc
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(by_code[0].code, "LEASE_EXPIRED");
    assert!(
        s.work_request_errors(&k1.id, &page_all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn work_request_filters(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let d = new_compartment(s, &root, "d").await;
    let lin = instance(&c, "lin", OsFamily::Linux, at(1, 0));
    let win = instance(&c, "win", OsFamily::Windows, at(1, 0));
    s.managed_instance_insert_many(&[lin.clone(), win.clone()])
        .await
        .unwrap();
    let a = work_request(&c, Some("install vim"), Some(&lin), at(1, 0));
    let b = work_request(&c, Some("install vim"), Some(&win), at(2, 0));
    let n = work_request(&c, None, None, at(3, 0));
    let elsewhere = work_request(&d, Some("install vim"), Some(&lin), at(4, 0));
    s.work_request_insert_many(&[a.clone(), b.clone(), n.clone(), elsewhere.clone()], &[])
        .await
        .unwrap();
    let list = async |f: WorkRequestFilter| {
        ids(
            &s.work_request_list(&f, &page_all()).await.unwrap().items,
            |w| &w.id,
        )
    };
    let base = WorkRequestFilter {
        compartment_id: c.clone(),
        ..Default::default()
    };
    assert_eq!(
        list(base.clone()).await,
        vec![n.id.clone(), b.id.clone(), a.id.clone()]
    );
    assert_eq!(
        list(WorkRequestFilter {
            display_name: Some("install vim".into()),
            ..base.clone()
        })
        .await,
        vec![b.id.clone(), a.id.clone()]
    );
    assert_eq!(
        list(WorkRequestFilter {
            managed_instance_id: Some(lin.id.clone()),
            ..base.clone()
        })
        .await,
        vec![a.id.clone()]
    );
    assert_eq!(
        list(WorkRequestFilter {
            os_family: Some(OsFamily::Windows),
            ..base.clone()
        })
        .await,
        vec![b.id.clone()]
    );
    assert_eq!(
        list(WorkRequestFilter {
            os_family: Some(OsFamily::All),
            ..base.clone()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        list(WorkRequestFilter {
            compartment_id: d.clone(),
            ..Default::default()
        })
        .await,
        vec![elsewhere.id.clone()]
    );
    // Lists leave children_ids empty; the row is otherwise whole.
    let listed = s.work_request_list(&base, &page_all()).await.unwrap().items;
    assert_eq!(listed[2], a);
}

async fn paging_instances(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    // Repeated names and times: the id breaks every tie.
    let rows: Vec<ManagedInstance> = (0..23)
        .map(|i| {
            instance(
                &c,
                &format!("host-{}", i % 7),
                OsFamily::Linux,
                at(i % 5, 0),
            )
        })
        .collect();
    s.managed_instance_insert_many(&rows).await.unwrap();
    let other = new_compartment(s, &root, "other").await;
    s.managed_instance_insert(&instance(&other, "host-1", OsFamily::Linux, at(1, 0)))
        .await
        .unwrap();
    let f = ManagedInstanceFilter {
        compartment_id: c,
        ..Default::default()
    };
    check_paging(
        async |p| s.managed_instance_list(&f, &p).await.unwrap(),
        |m, k| match k {
            SortKey::TimeCreated => (
                KeyValue::Micros(m.time_created.as_microsecond()),
                m.id.clone(),
            ),
            SortKey::Name => (KeyValue::Text(m.display_name.clone()), m.id.clone()),
        },
        &rows.iter().map(|m| m.id.clone()).collect(),
    )
    .await;
}

async fn paging_groups(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mut want = BTreeSet::new();
    for i in 0..17 {
        let g = group(
            &c,
            &format!("group-{}", i % 4),
            OsFamily::Linux,
            at(i % 3, 0),
        );
        s.managed_instance_group_create(&g, None).await.unwrap();
        if i == 5 {
            // Deleted groups are not listed.
            s.managed_instance_group_delete(&g.id, None).await.unwrap();
        } else {
            want.insert(g.id);
        }
    }
    let f = GroupFilter {
        compartment_id: c,
        ..Default::default()
    };
    check_paging(
        async |p| s.managed_instance_group_list(&f, &p).await.unwrap(),
        |g, k| match k {
            SortKey::TimeCreated => (
                KeyValue::Micros(g.time_created.as_microsecond()),
                g.id.clone(),
            ),
            SortKey::Name => (KeyValue::Text(g.display_name.clone()), g.id.clone()),
        },
        &want,
    )
    .await;
}

async fn paging_jobs(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let mut want = BTreeSet::new();
    for i in 0..15 {
        let j = job(&c, &format!("Job {}", i % 4), &[&mi], &[], at(i % 3, 0));
        s.scheduled_job_create(&j, None).await.unwrap();
        want.insert(j.id);
    }
    let f = ScheduledJobFilter {
        compartment_id: c,
        managed_instance_id: Some(mi.id.clone()),
        ..Default::default()
    };
    check_paging(
        async |p| {
            let page = s.scheduled_job_list(&f, &p).await.unwrap();
            assert!(page.items.iter().all(|j| j.managed_instances.len() == 1));
            page
        },
        |j, k| match k {
            SortKey::TimeCreated => (
                KeyValue::Micros(j.time_created.as_microsecond()),
                j.id.clone(),
            ),
            SortKey::Name => (KeyValue::Text(j.display_name.clone()), j.id.clone()),
        },
        &want,
    )
    .await;
}

async fn paging_work_requests(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    // Some without a description: they sort as an empty name on both backends.
    let rows: Vec<WorkRequest> = (0..21)
        .map(|i| {
            let desc = (i % 4 != 0).then(|| format!("op {}", i % 3));
            work_request(&c, desc.as_deref(), None, at(i % 4, i % 2))
        })
        .collect();
    s.work_request_insert_many(&rows, &[]).await.unwrap();
    let f = WorkRequestFilter {
        compartment_id: c,
        ..Default::default()
    };
    check_paging(
        async |p| s.work_request_list(&f, &p).await.unwrap(),
        |w, k| match k {
            SortKey::TimeCreated => (
                KeyValue::Micros(w.time_accepted.as_microsecond()),
                w.id.clone(),
            ),
            SortKey::Name => (
                KeyValue::Text(w.description.clone().unwrap_or_default()),
                w.id.clone(),
            ),
        },
        &rows.iter().map(|w| w.id.clone()).collect(),
    )
    .await;
}

async fn paging_compartments(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let mut want = BTreeSet::new();
    let top = new_compartment(s, &root, "top").await;
    want.insert(top.clone());
    for i in 0..13 {
        let parent = if i % 2 == 0 { &root } else { &top };
        let c = compartment(parent, &format!("c{i:02}"), at(i % 3, 0));
        s.compartment_create(&c, None).await.unwrap();
        want.insert(c.id);
    }
    let f = CompartmentFilter {
        parent_id: root,
        in_subtree: true,
        ..Default::default()
    };
    check_paging(
        async |p| s.compartment_list(&f, &p).await.unwrap(),
        |c, k| match k {
            SortKey::TimeCreated => (
                KeyValue::Micros(c.time_created.as_microsecond()),
                c.id.clone(),
            ),
            SortKey::Name => (KeyValue::Text(c.name.clone()), c.id.clone()),
        },
        &want,
    )
    .await;
}

/// A cancel that commits while a completion of the same work request runs (here held open on
/// another PostgreSQL connection until the completion has to wait for it) is seen by the
/// completion: the work request ends SUCCEEDED with the note that the cancel came too late,
/// not with the note of a plain success. SQLite's one writer cannot interleave: there the
/// plain completion is checked.
async fn completion_sees_a_cancel_that_lands_during_it(db: Db) {
    use osm_core::lifecycle::Event;
    let s = db.store.clone();
    let root = tenancy(&*s).await;
    let c = new_compartment(&*s, &root, "c").await;
    let mi = instance(&c, "web-01", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let wr = osm_core::work::work_request_for(
        &mi,
        &WorkAction::UpdateAll {
            update_type: UpdateType::All,
        },
        None,
        None,
        at(2, 0),
    );
    s.work_request_insert_many(std::slice::from_ref(&wr), &[])
        .await
        .unwrap();
    let lease = jiff::SignedDuration::from_mins(5);
    let claim = Claim {
        instance_id: mi.id.clone(),
        limit: 10,
    };
    let claimed = s
        .work_request_dispatch(&[], std::slice::from_ref(&claim), at(3, 0), lease)
        .await
        .unwrap();
    assert_eq!(claimed.claimed[0].len(), 1);
    let report = AgentOutcomes {
        instance_id: mi.id.clone(),
        items: vec![Completion {
            id: wr.id.clone(),
            event: Event::Succeed,
            errors: vec![],
            log: vec!["done".into()],
        }],
    };
    let expected_note = if db.backend() == Backend::Postgres {
        let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let mut cancel = other.begin().await.unwrap();
        sqlx::query("UPDATE work_requests SET status = 'CANCELLING' WHERE id = $1")
            .bind(&wr.id)
            .execute(&mut *cancel)
            .await
            .unwrap();
        let completing = tokio::spawn({
            let s = s.clone();
            let report = report.clone();
            async move {
                s.work_request_dispatch(&[report], &[], at(4, 0), lease)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !completing.is_finished(),
            "the completion waits for the row the cancel holds"
        );
        cancel.commit().await.unwrap();
        let done = completing.await.unwrap().unwrap();
        assert_eq!(
            done.completed[0][0].as_ref().unwrap().status,
            WorkRequestStatus::Succeeded
        );
        "Succeeded: the cancel came too late, the work had already finished"
    } else {
        let done = s
            .work_request_dispatch(&[report], &[], at(4, 0), lease)
            .await
            .unwrap();
        assert_eq!(
            done.completed[0][0].as_ref().unwrap().status,
            WorkRequestStatus::Succeeded
        );
        "Succeeded"
    };
    let got = s.work_request_get(&wr.id).await.unwrap().unwrap();
    assert_eq!(got.status, WorkRequestStatus::Succeeded);
    let oldest_first = PageRequest {
        order: SortOrder::Asc,
        ..PageRequest::all()
    };
    let log: Vec<String> = s
        .work_request_logs(&wr.id, &oldest_first)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(
        log.last().map(String::as_str),
        Some(expected_note),
        "{log:?}"
    );
    assert_eq!(log[log.len() - 2], "done");
    // The lease ended with the work.
    assert!(
        s.work_request_renew_leases(&mi.id, at(5, 0), lease)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Lines appended together share a row (migration 0011) but read, sort and page as one entry
/// each: in the order written on the time order, by text on the name order, across pages that
/// end inside such a row.
async fn log_lines_written_together(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let w = work_request(&c, Some("w"), None, at(1, 0));
    s.work_request_insert_many(std::slice::from_ref(&w), &[])
        .await
        .unwrap();
    let entry = |message: &str, t: i64| WorkRequestLogEntry {
        message: message.to_string(),
        timestamp: at(t, 0),
    };
    let writes: Vec<Vec<WorkRequestLogEntry>> = vec![
        vec![entry("first", 2)],
        // One row of five lines, one of them repeated.
        ["m", "c", "x", "c", "a"]
            .iter()
            .map(|m| entry(m, 3))
            .collect(),
        // The same second again: a second row at that time, after the first.
        vec![entry("b", 3), entry("y", 3)],
        // Runs of different times in one call: a row per run.
        vec![entry("n", 4), entry("o", 4), entry("last", 5)],
    ];
    for lines in &writes {
        s.work_request_log_append(&w.id, lines).await.unwrap();
    }
    let written: Vec<(String, i64)> = writes
        .iter()
        .flatten()
        .map(|l| (l.message.clone(), l.timestamp.as_microsecond()))
        .collect();
    assert_log_reads(s, &w.id, &written).await;
}

/// The log of work request `id` reads as `written` (message, µs), oldest first, on both sort
/// keys in both orders, whole and in pages of one to three entries.
async fn assert_log_reads(s: &dyn Store, id: &str, written: &[(String, i64)]) {
    let read = |items: Vec<WorkRequestLogEntry>| -> Vec<(String, i64)> {
        items
            .into_iter()
            .map(|l| (l.message, l.timestamp.as_microsecond()))
            .collect()
    };
    let mut by_name = written.to_vec();
    by_name.sort_by(|a, b| a.0.cmp(&b.0));
    for (sort, order, want) in [
        (SortKey::TimeCreated, SortOrder::Asc, written.to_vec()),
        (
            SortKey::TimeCreated,
            SortOrder::Desc,
            written.iter().rev().cloned().collect(),
        ),
        (SortKey::Name, SortOrder::Asc, by_name.clone()),
        (
            SortKey::Name,
            SortOrder::Desc,
            by_name.iter().rev().cloned().collect(),
        ),
    ] {
        let all = s
            .work_request_logs(
                id,
                &PageRequest {
                    sort,
                    order,
                    limit: None,
                    after: None,
                },
            )
            .await
            .unwrap()
            .items;
        assert_eq!(read(all), want, "{sort:?} {order:?}");
        for limit in [1, 2, 3] {
            let paged = walk(
                &async |p| s.work_request_logs(id, &p).await.unwrap(),
                sort,
                order,
                limit,
                &async |_| {},
            )
            .await;
            assert_eq!(read(paged), want, "{sort:?} {order:?} limit {limit}");
        }
    }
}

/// An agent's claim and a short final report are kept in the work request's row (migration
/// 0012), a long report in a log row: either way the log reads, sorts and pages as before,
/// with lines appended between claim and finish in their place.
async fn log_kept_with_the_work_request(db: Db) {
    use osm_core::lifecycle::Event;
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "web-01", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let action = WorkAction::UpdateAll {
        update_type: UpdateType::All,
    };
    let short = osm_core::work::work_request_for(&mi, &action, None, None, at(2, 0));
    let long = osm_core::work::work_request_for(&mi, &action, None, None, at(2, 1));
    let never = osm_core::work::work_request_for(&mi, &action, None, None, at(2, 2));
    s.work_request_insert_many(&[short.clone(), long.clone(), never.clone()], &[])
        .await
        .unwrap();
    let lease = jiff::SignedDuration::from_mins(5);
    let claim = Claim {
        instance_id: mi.id.clone(),
        limit: 2,
    };
    let claimed = s
        .work_request_dispatch(&[], std::slice::from_ref(&claim), at(3, 0), lease)
        .await
        .unwrap();
    assert_eq!(claimed.claimed[0].len(), 2);
    for w in [&short, &long] {
        s.work_request_log_append(
            &w.id,
            &[WorkRequestLogEntry {
                message: "progress 50%".into(),
                timestamp: at(3, 500),
            }],
        )
        .await
        .unwrap();
    }
    let long_lines: Vec<String> = (0..40)
        .map(|i| format!("Unpacking package-{i:02} (1.0-{i}) ..."))
        .collect();
    let report = AgentOutcomes {
        instance_id: mi.id.clone(),
        items: vec![
            Completion {
                id: short.id.clone(),
                event: Event::Succeed,
                errors: vec![],
                log: vec!["apt-get upgrade".into(), "0 upgraded".into()],
            },
            Completion {
                id: long.id.clone(),
                event: Event::Fail,
                errors: vec![],
                log: long_lines.clone(),
            },
        ],
    };
    s.work_request_dispatch(&[report], &[], at(4, 0), lease)
        .await
        .unwrap();
    let t3 = at(3, 0).as_microsecond();
    let t4 = at(4, 0).as_microsecond();
    let entry = |m: &str, t: i64| (m.to_string(), t);
    let mut want = vec![
        entry("Started by the agent", t3),
        entry("progress 50%", at(3, 500).as_microsecond()),
    ];
    want.extend([
        entry("apt-get upgrade", t4),
        entry("0 upgraded", t4),
        entry("Succeeded", t4),
    ]);
    assert_log_reads(s, &short.id, &want).await;
    want.truncate(2);
    want.extend(long_lines.iter().map(|l| entry(l, t4)));
    want.push(entry("Failed", t4));
    assert_log_reads(s, &long.id, &want).await;
    assert_log_reads(s, &never.id, &[]).await;
    // Canceled before any agent claimed it: no entry says an agent started it.
    s.work_request_transition(
        &never.id,
        &[WorkRequestStatus::Accepted],
        WorkRequestStatus::Canceled,
        at(5, 0),
        Some("Canceled"),
    )
    .await
    .unwrap();
    assert_log_reads(
        s,
        &never.id,
        &[entry("Canceled", at(5, 0).as_microsecond())],
    )
    .await;
}

async fn paging_logs_and_errors(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let w = work_request(&c, Some("w"), None, at(1, 0));
    let logs: Vec<(String, WorkRequestLogEntry)> = (0..19)
        .map(|i| {
            (
                w.id.clone(),
                WorkRequestLogEntry {
                    message: format!("line {}", i % 6),
                    timestamp: at(i % 4, 0),
                },
            )
        })
        .collect();
    s.work_request_insert_many(std::slice::from_ref(&w), &logs)
        .await
        .unwrap();
    // Logs carry no id of their own: check paging by count and order only.
    for sort in [SortKey::TimeCreated, SortKey::Name] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let all = s
                .work_request_logs(
                    &w.id,
                    &PageRequest {
                        sort,
                        order,
                        limit: None,
                        after: None,
                    },
                )
                .await
                .unwrap()
                .items;
            assert_eq!(all.len(), 19);
            let keys: Vec<(i64, String)> = all
                .iter()
                .map(|l| match sort {
                    SortKey::TimeCreated => (l.timestamp.as_microsecond(), String::new()),
                    SortKey::Name => (0, l.message.clone()),
                })
                .collect();
            let mut want = keys.clone();
            want.sort();
            if order == SortOrder::Desc {
                want.reverse();
            }
            assert_eq!(keys, want);
            for limit in [1, 4] {
                let paged = walk(
                    &async |p| s.work_request_logs(&w.id, &p).await.unwrap(),
                    sort,
                    order,
                    limit,
                    &async |_| {},
                )
                .await;
                assert_eq!(paged, all, "{sort:?} {order:?} limit {limit}");
            }
        }
    }
    let values: Vec<String> = (0..11)
        .map(|i| {
            format!(
                "('{}', 'e{i:02}', 'CODE_{}', 'm{i}', {})",
                w.id,
                i % 3,
                1_000_000 * (i % 4)
            )
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO work_request_errors (work_request_id, entry_id, code, message, time_created) VALUES {}",
        values.join(", ")
    ))
    .await;
    for sort in [SortKey::TimeCreated, SortKey::Name] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let all = s
                .work_request_errors(
                    &w.id,
                    &PageRequest {
                        sort,
                        order,
                        limit: None,
                        after: None,
                    },
                )
                .await
                .unwrap()
                .items;
            assert_eq!(all.len(), 11);
            let paged = walk(
                &async |p| s.work_request_errors(&w.id, &p).await.unwrap(),
                sort,
                order,
                3,
                &async |_| {},
            )
            .await;
            assert_eq!(paged, all);
            let messages: HashSet<&str> = paged.iter().map(|e| e.message.as_str()).collect();
            assert_eq!(messages.len(), 11);
        }
    }
}

async fn paging_with_inserts_between_pages(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let originals: Vec<ManagedInstance> = (0..20)
        .map(|i| instance(&c, &format!("n{:02}", i), OsFamily::Linux, at(100 + i, 0)))
        .collect();
    s.managed_instance_insert_many(&originals).await.unwrap();
    let wr_originals: Vec<WorkRequest> = (0..20)
        .map(|i| work_request(&c, Some(&format!("d{:02}", i)), None, at(100 + i, 0)))
        .collect();
    s.work_request_insert_many(&wr_originals, &[])
        .await
        .unwrap();
    let f = ManagedInstanceFilter {
        compartment_id: c.clone(),
        ..Default::default()
    };
    let wf = WorkRequestFilter {
        compartment_id: c.clone(),
        ..Default::default()
    };
    let mut round = 0;
    for sort in [SortKey::TimeCreated, SortKey::Name] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            round += 1;
            // After every page, rows land at both ends of the order and in the middle.
            let insert = async |n: usize| {
                let mis: Vec<ManagedInstance> = [(0, "a"), (150, "m"), (900, "z")]
                    .iter()
                    .map(|(t, p)| {
                        instance(
                            &c,
                            &format!("{p}{round}-{n}"),
                            OsFamily::Linux,
                            at(*t + n as i64, round),
                        )
                    })
                    .collect();
                s.managed_instance_insert_many(&mis).await.unwrap();
                let wrs: Vec<WorkRequest> = [(0, "a"), (150, "m"), (900, "z")]
                    .iter()
                    .map(|(t, p)| {
                        work_request(
                            &c,
                            Some(&format!("{p}{round}-{n}")),
                            None,
                            at(*t + n as i64, round),
                        )
                    })
                    .collect();
                s.work_request_insert_many(&wrs, &[]).await.unwrap();
            };
            let seen = walk(
                &async |p| s.managed_instance_list(&f, &p).await.unwrap(),
                sort,
                order,
                3,
                &insert,
            )
            .await;
            let seen_ids: Vec<String> = ids(&seen, |m| &m.id);
            let unique: HashSet<&String> = seen_ids.iter().collect();
            assert_eq!(
                unique.len(),
                seen_ids.len(),
                "{sort:?} {order:?}: a row repeated"
            );
            for m in &originals {
                assert!(
                    unique.contains(&m.id),
                    "{sort:?} {order:?}: {} lost",
                    m.display_name
                );
            }
            let key = |m: &ManagedInstance| match sort {
                SortKey::TimeCreated => {
                    (m.time_created.as_microsecond(), String::new(), m.id.clone())
                }
                SortKey::Name => (0, m.display_name.clone(), m.id.clone()),
            };
            let keys: Vec<_> = seen.iter().map(key).collect();
            let mut want = keys.clone();
            want.sort();
            if order == SortOrder::Desc {
                want.reverse();
            }
            assert_eq!(keys, want, "{sort:?} {order:?}: out of order");

            let seen = walk(
                &async |p| s.work_request_list(&wf, &p).await.unwrap(),
                sort,
                order,
                4,
                &async |_| {},
            )
            .await;
            let unique: HashSet<String> = ids(&seen, |w| &w.id).into_iter().collect();
            assert_eq!(unique.len(), seen.len());
            for w in &wr_originals {
                assert!(unique.contains(&w.id));
            }
        }
    }
}

async fn version_mismatch_vs_not_found(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let d = new_compartment(s, &root, "d").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    let j = job(&c, "j", &[&mi], &[], at(1, 0));
    s.scheduled_job_create(&j, None).await.unwrap();
    let none = "ocid1.x.oc1..none";

    macro_rules! check {
        ($call:expr, $missing:expr) => {{
            assert!(
                matches!($call, Err(StoreError::VersionMismatch)),
                "{}",
                stringify!($call)
            );
            assert!(
                matches!($missing, Err(StoreError::NotFound)),
                "{}",
                stringify!($missing)
            );
        }};
    }
    check!(
        s.compartment_update(&c, &CompartmentPatch::default(), Some(9))
            .await,
        s.compartment_update(none, &CompartmentPatch::default(), Some(9))
            .await
    );
    check!(
        s.compartment_delete(&d, Some(9)).await,
        s.compartment_delete(none, Some(9)).await
    );
    check!(
        s.managed_instance_update(&mi.id, &ManagedInstancePatch::default(), Some(9))
            .await,
        s.managed_instance_update(none, &ManagedInstancePatch::default(), Some(9))
            .await
    );
    check!(
        s.managed_instance_group_update(&g.id, &ManagedInstanceGroupPatch::default(), Some(9))
            .await,
        s.managed_instance_group_update(none, &ManagedInstanceGroupPatch::default(), Some(9))
            .await
    );
    check!(
        s.managed_instance_group_change_compartment(&g.id, &d, Some(9), None)
            .await,
        s.managed_instance_group_change_compartment(none, &d, Some(9), None)
            .await
    );
    check!(
        s.managed_instance_group_delete(&g.id, Some(9)).await,
        s.managed_instance_group_delete(none, Some(9)).await
    );
    let mut ghost = j.clone();
    ghost.id = none.into();
    check!(
        s.scheduled_job_replace(&j, Some(9)).await,
        s.scheduled_job_replace(&ghost, Some(9)).await
    );
    check!(
        s.scheduled_job_change_compartment(&j.id, &d, Some(9), None)
            .await,
        s.scheduled_job_change_compartment(none, &d, Some(9), None)
            .await
    );
    check!(
        s.scheduled_job_delete(&j.id, Some(9)).await,
        s.scheduled_job_delete(none, Some(9)).await
    );
    // Nothing changed.
    assert_eq!(s.compartment_get(&c).await.unwrap().unwrap().version, 1);
    assert_eq!(
        s.managed_instance_get(&mi.id).await.unwrap(),
        Some(mi.clone())
    );
    assert_eq!(
        s.managed_instance_group_get(&g.id).await.unwrap(),
        Some(g.clone())
    );
    assert_eq!(s.scheduled_job_get(&j.id).await.unwrap(), Some(j.clone()));

    // Racing guarded updates with the same version: exactly one wins.
    let mut tasks = vec![];
    for i in 0..8 {
        let s = db.store.clone();
        let id = g.id.clone();
        tasks.push(tokio::spawn(async move {
            let patch = ManagedInstanceGroupPatch {
                display_name: Some(format!("g{i}")),
                ..Default::default()
            };
            s.managed_instance_group_update(&id, &patch, Some(1)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(g) => {
                wins += 1;
                assert_eq!(g.version, 2);
            }
            Err(StoreError::VersionMismatch) => {}
            Err(e) => panic!("a racing update answers Ok or VersionMismatch, got {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn retry_tokens(db: Db) {
    let s = &*db.store;
    let r = retry("ocid1.user.oc1..u", "tok-1", "ocid1.x.oc1..res");
    assert!(
        s.retry_record_get(&r.principal_id, &r.token)
            .await
            .unwrap()
            .is_none()
    );
    s.retry_record_put(&r).await.unwrap();
    assert_eq!(
        s.retry_record_get(&r.principal_id, &r.token).await.unwrap(),
        Some(r.clone())
    );
    assert!(matches!(
        s.retry_record_put(&r).await,
        Err(StoreError::RetryTokenUsed)
    ));
    // The same token from another principal is another record.
    let other = retry("ocid1.user.oc1..v", "tok-1", "ocid1.x.oc1..other");
    s.retry_record_put(&other).await.unwrap();
    assert_eq!(
        s.retry_record_get(&other.principal_id, "tok-1")
            .await
            .unwrap()
            .unwrap()
            .resource_id,
        "ocid1.x.oc1..other"
    );
    let mut old = retry("ocid1.user.oc1..u", "old", "x");
    old.time_created = at(-86_400, 0);
    s.retry_record_put(&old).await.unwrap();
    assert_eq!(s.retry_record_purge(at(-1, 0)).await.unwrap(), 1);
    assert!(
        s.retry_record_get(&old.principal_id, "old")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.retry_record_get(&r.principal_id, &r.token)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.retry_record_purge(at(1, 0)).await.unwrap(), 2);
    assert_eq!(s.retry_record_purge(at(1, 0)).await.unwrap(), 0);

    // Racing requests with one token: exactly one records it.
    let mut tasks = vec![];
    for i in 0..8 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.retry_record_put(&retry("ocid1.user.oc1..w", "race", &format!("r{i}")))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::RetryTokenUsed) => {}
            Err(e) => panic!("expected RetryTokenUsed, got {e:?}"),
        }
    }
    assert_eq!(ok, 1);
}

async fn retry_token_duplicates_roll_back(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let d = new_compartment(s, &root, "d").await;
    let p = "ocid1.user.oc1..p";
    let used = |tok: &str| retry(p, tok, "first");
    let is_used =
        |r: StoreResult<()>| assert!(matches!(r, Err(StoreError::RetryTokenUsed)), "{r:?}");

    // Each method records its token with its change...
    let cc = compartment(&c, "cc", at(1, 0));
    s.compartment_create(&cc, Some(&used("t-comp")))
        .await
        .unwrap();
    assert_eq!(
        s.retry_record_get(p, "t-comp").await.unwrap(),
        Some(used("t-comp"))
    );

    // ...and a used token undoes the change.
    let dup = compartment(&c, "dup", at(1, 0));
    is_used(s.compartment_create(&dup, Some(&used("t-comp"))).await);
    assert!(s.compartment_get(&dup.id).await.unwrap().is_none());

    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, Some(&used("t-group")))
        .await
        .unwrap();
    let g2 = group(&c, "g2", OsFamily::Linux, at(1, 0));
    is_used(
        s.managed_instance_group_create(&g2, Some(&used("t-group")))
            .await,
    );
    assert!(
        s.managed_instance_group_get(&g2.id)
            .await
            .unwrap()
            .is_none()
    );

    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    is_used(
        s.managed_instance_group_attach(&g.id, &mi.id, Some(&used("t-group")))
            .await,
    );
    assert!(
        s.managed_instance_group_members(&g.id)
            .await
            .unwrap()
            .is_empty()
    );
    s.managed_instance_group_attach(&g.id, &mi.id, Some(&used("t-attach")))
        .await
        .unwrap();
    is_used(
        s.managed_instance_group_detach(&g.id, &mi.id, Some(&used("t-attach")))
            .await,
    );
    assert_eq!(
        s.managed_instance_group_members(&g.id).await.unwrap().len(),
        1
    );

    is_used(
        s.managed_instance_group_change_compartment(&g.id, &d, Some(1), Some(&used("t-attach")))
            .await,
    );
    let still = s.managed_instance_group_get(&g.id).await.unwrap().unwrap();
    assert_eq!(
        (still.compartment_id.as_str(), still.version),
        (c.as_str(), 1)
    );

    let j = job(&c, "j", &[&mi], &[&g], at(1, 0));
    is_used(s.scheduled_job_create(&j, Some(&used("t-attach"))).await);
    assert!(s.scheduled_job_get(&j.id).await.unwrap().is_none());
    let f = ScheduledJobFilter {
        compartment_id: c.clone(),
        managed_instance_id: Some(mi.id.clone()),
        ..Default::default()
    };
    assert!(
        s.scheduled_job_list(&f, &page_all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(s.managed_instance_counts(&mi.id).await.unwrap(), (0, 0));
    s.scheduled_job_create(&j, Some(&used("t-job")))
        .await
        .unwrap();
    is_used(
        s.scheduled_job_change_compartment(&j.id, &d, None, Some(&used("t-job")))
            .await,
    );
    let still = s.scheduled_job_get(&j.id).await.unwrap().unwrap();
    assert_eq!(
        (still.compartment_id.as_str(), still.version),
        (c.as_str(), 1)
    );

    // A retried create racing its first attempt: one creates, the other learns the token is used.
    let mut tasks = vec![];
    for i in 0..6 {
        let s = db.store.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let g = group(&c, &format!("race-{i}"), OsFamily::Linux, at(1, 0));
            let r = s
                .managed_instance_group_create(&g, Some(&retry(p, "t-race", &g.id)))
                .await;
            (r, g.id)
        }));
    }
    let mut created = vec![];
    for t in tasks {
        let (r, id) = t.await.unwrap();
        match r {
            Ok(()) => created.push(id),
            Err(StoreError::RetryTokenUsed) => {
                assert!(s.managed_instance_group_get(&id).await.unwrap().is_none());
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(
        s.retry_record_get(p, "t-race")
            .await
            .unwrap()
            .unwrap()
            .resource_id,
        created[0]
    );
}

async fn backup(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mis: Vec<ManagedInstance> = (0..10)
        .map(|i| instance(&c, &format!("m{i}"), OsFamily::Linux, at(i, 0)))
        .collect();
    s.managed_instance_insert_many(&mis).await.unwrap();
    let target = db.dir.path().join("backup.db");
    match db.backend() {
        Backend::Postgres => {
            assert_conflict(s.backup_to(&target).await, "pg_dump");
            assert!(!target.exists());
        }
        Backend::Sqlite => {
            s.backup_to(&target).await.unwrap();
            // Writes after the backup are not in it.
            s.managed_instance_insert(&instance(&c, "late", OsFamily::Linux, at(99, 0)))
                .await
                .unwrap();
            let copy = SqliteStore::open(&format!("sqlite://{}", target.display()))
                .await
                .expect("the backup opens as a store");
            assert_eq!(
                copy.tenancy_get().await.unwrap(),
                s.tenancy_get().await.unwrap()
            );
            let f = ManagedInstanceFilter {
                compartment_id: c.clone(),
                ..Default::default()
            };
            let asc = PageRequest {
                order: SortOrder::Asc,
                ..page_all()
            };
            assert_eq!(
                copy.managed_instance_list(&f, &asc).await.unwrap().items,
                mis
            );
            assert_eq!(
                s.managed_instance_list(&f, &asc).await.unwrap().items.len(),
                11
            );
            // The copy is a full store: it takes writes.
            copy.compartment_create(&compartment(&root, "in-copy", at(1, 0)), None)
                .await
                .unwrap();
            // An existing file is never overwritten.
            let before = std::fs::metadata(&target).unwrap().len();
            assert_conflict(s.backup_to(&target).await, "exists");
            assert_eq!(std::fs::metadata(&target).unwrap().len(), before);
        }
    }
}

/// The child side of `crash_durability`: writes acknowledged instances one by one, then dies
/// without closing anything.
async fn crash_child(url: &str) -> ! {
    let compartment = std::env::var(CRASH_CHILD_COMPARTMENT).expect("compartment");
    let store = osm_store::connect(url)
        .await
        .expect("child opens the store");
    for i in 0..25 {
        let mut mi = instance(
            &compartment,
            &format!("crash-{i:02}"),
            OsFamily::Linux,
            at(i, 0),
        );
        mi.id = format!("ocid1.instance.oc1..crash{i:02}");
        store
            .managed_instance_insert(&mi)
            .await
            .expect("child write");
    }
    let g = group(&compartment, "crash-group", OsFamily::Linux, at(0, 0));
    store.managed_instance_group_create(&g, None).await.unwrap();
    store
        .managed_instance_group_attach(&g.id, "ocid1.instance.oc1..crash07", None)
        .await
        .unwrap();
    std::process::abort();
}

fn current_test_name() -> String {
    std::thread::current()
        .name()
        .map(str::to_string)
        .filter(|n| n.contains("::"))
        .unwrap_or_default()
}

async fn crash_durability(db: Db) {
    if let Backend::Sqlite = db.backend() {
        let path = db.url.strip_prefix("sqlite://").unwrap();
        let sqlite = SqliteStore::open(&db.url).await.unwrap();
        let settings = sqlite.settings().await.unwrap();
        assert_eq!(settings.journal_mode.to_lowercase(), "wal");
        assert_eq!(settings.synchronous, 2, "synchronous=FULL");
        assert!(settings.foreign_keys);
        assert!(settings.busy_timeout_ms > 0);
        assert_eq!(settings.page_size, 16384, "a new database has 16 KiB pages");
        assert!(std::path::Path::new(path).exists());
    }
    let root = tenancy(&*db.store).await;
    let c = new_compartment(&*db.store, &root, "c").await;

    // In process: a store dropped without closing loses nothing it acknowledged.
    let second = db.reopen().await;
    let kept = instance(&c, "kept", OsFamily::Linux, at(1, 0));
    second.managed_instance_insert(&kept).await.unwrap();
    drop(second);
    let third = db.reopen().await;
    assert_eq!(
        third.managed_instance_get(&kept.id).await.unwrap(),
        Some(kept.clone())
    );
    drop(third);

    // Across a crash: a child process writes, then aborts without closing anything.
    let name = match db.backend() {
        Backend::Sqlite => "sqlite::crash_durability",
        Backend::Postgres => "postgres::crash_durability",
    };
    assert!(current_test_name().is_empty() || current_test_name() == name);
    let exe = std::env::current_exe().unwrap();
    let out = tokio::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_URL, &db.url)
        .env(CRASH_CHILD_COMPARTMENT, &c)
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "the child should have aborted: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(db.store);
    let after = osm_store::connect(&db.url)
        .await
        .expect("reopen after the crash");
    let f = ManagedInstanceFilter {
        compartment_id: c.clone(),
        ..Default::default()
    };
    let names: BTreeSet<String> = after
        .managed_instance_list(&f, &page_all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.display_name)
        .collect();
    let mut want: BTreeSet<String> = (0..25).map(|i| format!("crash-{i:02}")).collect();
    want.insert("kept".into());
    assert_eq!(
        names,
        want,
        "child stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let of = after
        .managed_instance_groups_of("ocid1.instance.oc1..crash07")
        .await
        .unwrap();
    assert_eq!(
        ids(&of, |g| &g.display_name),
        vec!["crash-group".to_string()]
    );
    // And the reopened store takes writes.
    after
        .managed_instance_insert(&instance(&c, "after", OsFamily::Linux, at(1, 0)))
        .await
        .unwrap();
}

// --- SQLite only --------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_memory_store() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let root = tenancy(&s).await;
    let c = new_compartment(&s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    // Reads share the one connection and see the writes.
    assert_eq!(s.managed_instance_get(&mi.id).await.unwrap(), Some(mi));
    let other = SqliteStore::open("sqlite::memory:").await.unwrap();
    assert!(
        other.tenancy_get().await.unwrap().is_none(),
        "each memory store is private"
    );
}

#[tokio::test]
async fn sqlite_creates_missing_file_and_refuses_bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("new.db");
    assert!(!path.exists());
    let s = osm_store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    s.ping().await.unwrap();
    assert!(path.exists());
    assert!(SqliteStore::open("sqlite://").await.is_err());
    assert!(SqliteStore::open("postgres://x").await.is_err());
}

#[test]
fn pg_url_rewrite() {
    assert_eq!(
        pg_url_with_db("postgres://postgres@127.0.0.1:5432/postgres", "t"),
        "postgres://postgres@127.0.0.1:5432/t"
    );
    assert_eq!(
        pg_url_with_db("postgres://u:p@h/db?sslmode=disable", "t"),
        "postgres://u:p@h/t?sslmode=disable"
    );
    assert_eq!(
        pg_url_with_db("postgres://h:5432", "t"),
        "postgres://h:5432/t"
    );
}

// --- package inventory --------------------------------------------------------------------

use osm_core::inventory::*;

fn pkg(name: &str, version: &str, arch: Option<&str>) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        architecture: arch.map(str::to_string),
        package_type: Some("deb".into()),
        install_time: Some(at(-1000, 0)),
    }
}

fn pkg_update(
    name: &str,
    class: UpdateClassification,
    cves: &[&str],
    advisories: &[&str],
) -> PackageUpdate {
    PackageUpdate {
        name: name.into(),
        architecture: Some("amd64".into()),
        installed_version: "1.0-1".into(),
        available_version: "1.0-2".into(),
        update_type: class,
        cves: cves.iter().map(|c| c.to_string()).collect(),
        advisories: advisories
            .iter()
            .map(|a| Advisory {
                name: a.to_string(),
                advisory_type: None,
                synopsis: Some(format!("{a} synopsis")),
                issued: Some(at(-50, 0)),
            })
            .collect(),
        package_type: None,
    }
}

fn win_update(
    name: &str,
    title: &str,
    class: UpdateClassification,
    installed: bool,
    installable: Option<Installable>,
) -> WindowsUpdate {
    WindowsUpdate {
        name: name.into(),
        display_name: title.into(),
        update_type: class,
        installed,
        installable,
        reboot_required: Some(true),
        kb_article_ids: vec!["5034441".into()],
        description: Some(format!("{title} description")),
        size_in_bytes: Some(1234),
    }
}

async fn all_packages(s: &dyn Store, id: &str, list: PackageList) -> Vec<Package> {
    let mut req = PageRequest::all();
    req.sort = SortKey::Name;
    req.order = SortOrder::Asc;
    s.instance_package_list(id, list, None, &req)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.item)
        .collect()
}

async fn all_updates(s: &dyn Store, id: &str) -> Vec<ListedUpdate> {
    let mut req = PageRequest::all();
    req.sort = SortKey::Name;
    req.order = SortOrder::Asc;
    s.instance_update_list(id, None, &req).await.unwrap().items
}

async fn counts(s: &dyn Store, id: &str) -> UpdateCounts {
    s.managed_instance_get(id).await.unwrap().unwrap().updates
}

fn full(installed: Vec<Package>, updates: Vec<PackageUpdate>) -> InventoryUpload {
    InventoryUpload::Full(FullInventory {
        installed,
        available: vec![pkg("vim", "9.0", Some("amd64"))],
        updates,
        windows_updates: vec![],
    })
}

async fn inventory_full_replace_and_counts(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    let quiet = instance(&c, "q", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[mi.clone(), quiet.clone()])
        .await
        .unwrap();
    assert_eq!(s.inventory_state(&mi.id).await.unwrap(), None);

    let first = full(
        vec![
            pkg("libc6", "2.36-9", Some("amd64")),
            pkg("bash", "5.2-1", None),
            pkg("libc6", "2.36-9", Some("i386")),
        ],
        vec![
            pkg_update(
                "openssl",
                UpdateClassification::Security,
                &["CVE-2024-0727", "CVE-2023-5678"],
                &["DSA-5678-1"],
            ),
            pkg_update("libc6", UpdateClassification::Bug, &[], &[]),
        ],
    );
    assert_eq!(
        s.inventory_apply(&mi.id, &root, &first, at(10, 0))
            .await
            .unwrap(),
        InventoryApplied::Stored { revision: 1 }
    );
    assert_eq!(
        s.inventory_state(&mi.id).await.unwrap(),
        Some(InventoryState {
            revision: 1,
            time_reported: at(10, 0)
        })
    );
    let installed = all_packages(s, &mi.id, PackageList::Installed).await;
    let names: Vec<String> = installed.iter().map(Package::key).collect();
    assert_eq!(names, ["bash ", "libc6 amd64", "libc6 i386"]);
    assert_eq!(installed[0], pkg("bash", "5.2-1", None));
    assert_eq!(
        all_packages(s, &mi.id, PackageList::Available).await,
        [pkg("vim", "9.0", Some("amd64"))]
    );
    let updates = all_updates(s, &mi.id).await;
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].update.name, "libc6");
    // The package type comes from the installed package when the update has none.
    assert_eq!(updates[0].package_type.as_deref(), Some("deb"));
    let openssl = &updates[1];
    assert_eq!(openssl.update.cves, ["CVE-2024-0727", "CVE-2023-5678"]);
    assert_eq!(openssl.package_type, None);
    let erratum = s.erratum_find(&root, "DSA-5678-1").await.unwrap().unwrap();
    assert!(
        erratum.id.starts_with("ocid1.osmserratum.oc1.."),
        "{}",
        erratum.id
    );
    assert_eq!(erratum.compartment_id, root);
    assert_eq!(erratum.advisory_type, Some(UpdateClassification::Security));
    assert_eq!(erratum.synopsis.as_deref(), Some("DSA-5678-1 synopsis"));
    assert_eq!(erratum.issued, Some(at(-50, 0)));
    assert_eq!(erratum.related_cves.len(), 2);
    assert_eq!(
        openssl.errata,
        [(erratum.id.clone(), "DSA-5678-1".to_string())]
    );
    assert_eq!(
        counts(s, &mi.id).await,
        UpdateCounts {
            security: 1,
            bug: 1,
            enhancement: 0,
            other: 0
        }
    );

    // Heartbeat counts no longer apply once an inventory exists; without one they do.
    let facts = AgentFacts {
        updates: Some(UpdateCountsWire {
            security: 9,
            bug: 9,
            enhancement: 9,
            other: 9,
        }),
        ..Default::default()
    };
    s.agent_report(&mi.id, &facts, at(11, 0)).await.unwrap();
    assert_eq!(
        counts(s, &mi.id).await,
        UpdateCounts {
            security: 1,
            bug: 1,
            enhancement: 0,
            other: 0
        }
    );
    s.agent_report(&quiet.id, &facts, at(11, 0)).await.unwrap();
    assert_eq!(counts(s, &quiet.id).await.total(), 36);

    // A full upload replaces everything; rows it keeps keep the time osm first saw them.
    let mut req = PageRequest::all();
    req.order = SortOrder::Asc;
    let second = InventoryUpload::Full(FullInventory {
        installed: vec![pkg("bash", "5.2-2", None), pkg("zsh", "5.9", Some("amd64"))],
        ..Default::default()
    });
    assert_eq!(
        s.inventory_apply(&mi.id, &root, &second, at(20, 0))
            .await
            .unwrap(),
        InventoryApplied::Stored { revision: 2 }
    );
    let by_time = s
        .instance_package_list(&mi.id, PackageList::Installed, None, &req)
        .await
        .unwrap()
        .items;
    assert_eq!(
        by_time
            .iter()
            .map(|r| (
                r.item.name.as_str(),
                r.item.version.as_str(),
                r.time_created
            ))
            .collect::<Vec<_>>(),
        [("bash", "5.2-2", at(10, 0)), ("zsh", "5.9", at(20, 0))]
    );
    assert!(
        all_packages(s, &mi.id, PackageList::Available)
            .await
            .is_empty()
    );
    assert!(all_updates(s, &mi.id).await.is_empty());
    assert_eq!(counts(s, &mi.id).await, UpdateCounts::default());
    // The errata catalogue outlives the updates that named it.
    assert_eq!(
        s.erratum_find(&root, "DSA-5678-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        erratum.id
    );
    // displayName filters by package name.
    let only = s
        .instance_package_list(
            &mi.id,
            PackageList::Installed,
            Some("zsh"),
            &PageRequest::all(),
        )
        .await
        .unwrap();
    assert_eq!(only.items.len(), 1);

    assert!(matches!(
        s.inventory_apply("ocid1.instance.oc1..none", &root, &second, at(21, 0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.inventory_state(&quiet.id).await.unwrap(), None);
}

async fn inventory_diff_and_revision_mismatch(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    let other = instance(&c, "o", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[mi.clone(), other.clone()])
        .await
        .unwrap();
    // A diff from nothing (revision 0) is a valid start.
    let start = InventoryUpload::Diff(InventoryDiff {
        base_revision: 0,
        installed: Some(Changes {
            upsert: vec![
                pkg("bash", "5.2-1", None),
                pkg("openssl", "3.0.11", Some("amd64")),
            ],
            remove: vec![],
        }),
        updates: Some(Changes {
            upsert: vec![
                pkg_update(
                    "openssl",
                    UpdateClassification::Security,
                    &["CVE-2024-0001"],
                    &["DSA-1-1"],
                ),
                pkg_update("curl", UpdateClassification::Enhancement, &[], &[]),
            ],
            remove: vec![],
        }),
        ..Default::default()
    });
    assert_eq!(
        s.inventory_apply(&mi.id, &root, &start, at(10, 0))
            .await
            .unwrap(),
        InventoryApplied::Stored { revision: 1 }
    );
    assert_eq!(
        counts(s, &mi.id).await,
        UpdateCounts {
            security: 1,
            bug: 0,
            enhancement: 1,
            other: 0
        }
    );

    // A diff against another revision changes nothing.
    let stale = InventoryUpload::Diff(InventoryDiff {
        base_revision: 0,
        installed: Some(Changes {
            upsert: vec![],
            remove: vec![PackageKey {
                name: "bash".into(),
                architecture: None,
            }],
        }),
        ..Default::default()
    });
    assert_eq!(
        s.inventory_apply(&mi.id, &root, &stale, at(11, 0))
            .await
            .unwrap(),
        InventoryApplied::RevisionMismatch { current: 1 }
    );
    assert_eq!(
        all_packages(s, &mi.id, PackageList::Installed).await.len(),
        2
    );
    assert_eq!(
        s.inventory_state(&mi.id)
            .await
            .unwrap()
            .unwrap()
            .time_reported,
        at(10, 0)
    );

    // The update of openssl installed: the package moves, the update goes; removing what is
    // not there is no error; other sections stay as they were.
    let installed = InventoryUpload::Diff(InventoryDiff {
        base_revision: 1,
        installed: Some(Changes {
            upsert: vec![pkg("openssl", "3.0.13", Some("amd64"))],
            remove: vec![PackageKey {
                name: "nano".into(),
                architecture: None,
            }],
        }),
        updates: Some(Changes {
            upsert: vec![],
            remove: vec![PackageKey {
                name: "openssl".into(),
                architecture: Some("amd64".into()),
            }],
        }),
        ..Default::default()
    });
    assert_eq!(
        s.inventory_apply(&mi.id, &root, &installed, at(12, 0))
            .await
            .unwrap(),
        InventoryApplied::Stored { revision: 2 }
    );
    let pkgs = all_packages(s, &mi.id, PackageList::Installed).await;
    assert_eq!(
        pkgs.iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect::<Vec<_>>(),
        [("bash", "5.2-1"), ("openssl", "3.0.13")]
    );
    let updates = all_updates(s, &mi.id).await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].update.name, "curl");
    assert_eq!(
        counts(s, &mi.id).await,
        UpdateCounts {
            security: 0,
            bug: 0,
            enhancement: 1,
            other: 0
        }
    );
    assert_eq!(
        s.inventory_state(&mi.id).await.unwrap(),
        Some(InventoryState {
            revision: 2,
            time_reported: at(12, 0)
        })
    );

    // Another instance reports the same advisory with another CVE: the erratum gains it,
    // keeps its id, and a synopsis only replaces the stored one when given.
    let before = s.erratum_find(&root, "DSA-1-1").await.unwrap().unwrap();
    let mut u = pkg_update(
        "libssl3",
        UpdateClassification::Security,
        &["CVE-2024-0002", "CVE-2024-0001"],
        &["DSA-1-1"],
    );
    u.advisories[0].synopsis = None;
    u.advisories[0].advisory_type = Some(UpdateClassification::Security);
    let upload = InventoryUpload::Full(FullInventory {
        updates: vec![u],
        ..Default::default()
    });
    assert_eq!(
        s.inventory_apply(&other.id, &root, &upload, at(13, 0))
            .await
            .unwrap(),
        InventoryApplied::Stored { revision: 1 }
    );
    let after = s.erratum_find(&root, "DSA-1-1").await.unwrap().unwrap();
    assert_eq!(after.id, before.id);
    assert_eq!(after.related_cves, ["CVE-2024-0001", "CVE-2024-0002"]);
    assert_eq!(after.synopsis, before.synopsis);
    assert_eq!(after.time_created, before.time_created);
    assert_eq!(after.time_updated, at(13, 0));
    let listed = all_updates(s, &other.id).await;
    assert_eq!(
        listed[0].errata,
        [(before.id.clone(), "DSA-1-1".to_string())]
    );
    // The first instance's rows are untouched by the other's uploads.
    assert_eq!(
        all_packages(s, &mi.id, PackageList::Installed).await.len(),
        2
    );
}

async fn inventory_windows_updates_and_catalogue(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let elsewhere = new_compartment(s, &root, "elsewhere").await;
    let win = instance(&c, "w", OsFamily::Windows, at(1, 0));
    let far = instance(&elsewhere, "far", OsFamily::Windows, at(1, 0));
    s.managed_instance_insert_many(&[win.clone(), far.clone()])
        .await
        .unwrap();
    let upload = InventoryUpload::Full(FullInventory {
        windows_updates: vec![
            win_update(
                "aaaa-1",
                "Security Update KB1",
                UpdateClassification::Security,
                false,
                Some(Installable::Installable),
            ),
            win_update(
                "bbbb-2",
                "Bug Fix KB2",
                UpdateClassification::Bug,
                false,
                None,
            ),
            win_update(
                "cccc-3",
                "Old Update KB3",
                UpdateClassification::Security,
                true,
                Some(Installable::Installable),
            ),
        ],
        ..Default::default()
    });
    s.inventory_apply(&win.id, &root, &upload, at(10, 0))
        .await
        .unwrap();
    assert_eq!(
        counts(s, &win.id).await,
        UpdateCounts {
            security: 1,
            bug: 1,
            enhancement: 0,
            other: 0
        }
    );
    let list = async |installed: bool, installable: Option<Installable>| -> Vec<String> {
        let filter = WindowsUpdateFilter {
            display_name: None,
            installable,
        };
        s.instance_windows_update_list(&win.id, installed, &filter, &PageRequest::all())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.item.name)
            .collect()
    };
    let mut pending = list(false, None).await;
    pending.sort();
    assert_eq!(pending, ["aaaa-1", "bbbb-2"]);
    assert_eq!(
        list(false, Some(Installable::Installable)).await,
        ["aaaa-1"]
    );
    // An update reported without installability counts as UNKNOWN.
    assert_eq!(list(false, Some(Installable::Unknown)).await, ["bbbb-2"]);
    assert!(
        list(false, Some(Installable::NotInstallable))
            .await
            .is_empty()
    );
    assert_eq!(list(true, None).await, ["cccc-3"]);

    // The catalogue: what instances in the given compartments reported.
    let catalogue = |comps: Vec<String>| async move {
        s.windows_update_list(&comps, &WindowsUpdateFilter::default(), &PageRequest::all())
            .await
            .unwrap()
            .items
    };
    assert_eq!(catalogue(vec![c.clone()]).await.len(), 3);
    assert!(catalogue(vec![elsewhere.clone()]).await.is_empty());
    assert!(catalogue(vec![]).await.is_empty());
    let got = s
        .windows_update_get("aaaa-1", std::slice::from_ref(&c))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.kb_article_ids, ["5034441"]);
    assert_eq!(
        got.description.as_deref(),
        Some("Security Update KB1 description")
    );
    assert_eq!(got.size_in_bytes, Some(1234));
    assert_eq!(got.time_created, at(10, 0));
    assert!(
        s.windows_update_get("aaaa-1", std::slice::from_ref(&elsewhere))
            .await
            .unwrap()
            .is_none()
    );
    let titled = s
        .windows_update_list(
            std::slice::from_ref(&c),
            &WindowsUpdateFilter {
                display_name: Some("Bug Fix KB2".into()),
                installable: None,
            },
            &PageRequest::all(),
        )
        .await
        .unwrap();
    assert_eq!(titled.items.len(), 1);

    // Installing one: a diff marks it installed; counts follow.
    let mut done = win_update(
        "aaaa-1",
        "Security Update KB1",
        UpdateClassification::Security,
        true,
        Some(Installable::Installable),
    );
    done.description = None;
    let diff = InventoryUpload::Diff(InventoryDiff {
        base_revision: 1,
        windows_updates: Some(Changes {
            upsert: vec![done],
            remove: vec![UpdateName {
                name: "bbbb-2".into(),
            }],
        }),
        ..Default::default()
    });
    assert_eq!(
        s.inventory_apply(&win.id, &root, &diff, at(20, 0))
            .await
            .unwrap(),
        InventoryApplied::Stored { revision: 2 }
    );
    assert_eq!(counts(s, &win.id).await, UpdateCounts::default());
    let mut installed = list(true, None).await;
    installed.sort();
    assert_eq!(installed, ["aaaa-1", "cccc-3"]);
    // The catalogue keeps a description it had when a report omits it, and keeps entries
    // no instance reports any more (bbbb-2) only while some instance in reach has it.
    let got = s
        .windows_update_get("aaaa-1", std::slice::from_ref(&c))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.description.as_deref(),
        Some("Security Update KB1 description")
    );
    assert!(
        s.windows_update_get("bbbb-2", std::slice::from_ref(&c))
            .await
            .unwrap()
            .is_none()
    );
    // The far instance reports it: visible from its compartment only.
    let far_upload = InventoryUpload::Full(FullInventory {
        windows_updates: vec![win_update(
            "bbbb-2",
            "Bug Fix KB2",
            UpdateClassification::Bug,
            false,
            None,
        )],
        ..Default::default()
    });
    s.inventory_apply(&far.id, &root, &far_upload, at(30, 0))
        .await
        .unwrap();
    assert!(
        s.windows_update_get("bbbb-2", std::slice::from_ref(&elsewhere))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(catalogue(vec![c.clone(), elsewhere.clone()]).await.len(), 3);
}

async fn paging_inventory(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "m", OsFamily::Linux, at(1, 0));
    let win = instance(&c, "w", OsFamily::Windows, at(1, 0));
    s.managed_instance_insert_many(&[mi.clone(), win.clone()])
        .await
        .unwrap();
    // Names repeat across architectures and sort by byte; rows arrive at two times.
    let names = [
        "zlib1g",
        "Zebra",
        "bash",
        "bash-completion",
        "a",
        "a-b",
        "libc6",
        "libc6-dev",
        "é-pkg",
        "curl",
    ];
    let mut first = vec![];
    let mut second = vec![];
    let mut expected = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        for arch in [None, Some("amd64"), Some("i386")] {
            let p = pkg(n, "1", arch);
            expected.insert(p.key());
            if i % 2 == 0 {
                first.push(p)
            } else {
                second.push(p)
            }
        }
    }
    let up = InventoryUpload::Full(FullInventory {
        installed: first,
        ..Default::default()
    });
    s.inventory_apply(&mi.id, &root, &up, at(10, 0))
        .await
        .unwrap();
    let up = InventoryUpload::Diff(InventoryDiff {
        base_revision: 1,
        installed: Some(Changes {
            upsert: second,
            remove: vec![],
        }),
        ..Default::default()
    });
    s.inventory_apply(&mi.id, &root, &up, at(20, 0))
        .await
        .unwrap();
    check_paging(
        async |req| {
            s.instance_package_list(&mi.id, PackageList::Installed, None, &req)
                .await
                .unwrap()
        },
        |r, sort| {
            let key = match sort {
                SortKey::TimeCreated => KeyValue::Micros(r.time_created.as_microsecond()),
                SortKey::Name => KeyValue::Text(r.item.name.clone()),
            };
            (key, r.item.key())
        },
        &expected,
    )
    .await;

    let mut updates = vec![];
    let mut expected = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        let mut u = pkg_update(n, UpdateClassification::Bug, &[], &[]);
        u.architecture = if i % 3 == 0 {
            None
        } else {
            Some("amd64".into())
        };
        expected.insert(u.key());
        updates.push(u);
    }
    let up = InventoryUpload::Full(FullInventory {
        updates,
        ..Default::default()
    });
    s.inventory_apply(&mi.id, &root, &up, at(30, 0))
        .await
        .unwrap();
    check_paging(
        async |req| s.instance_update_list(&mi.id, None, &req).await.unwrap(),
        |u, sort| {
            let key = match sort {
                SortKey::TimeCreated => KeyValue::Micros(u.time_created.as_microsecond()),
                SortKey::Name => KeyValue::Text(u.update.name.clone()),
            };
            (key, u.update.key())
        },
        &expected,
    )
    .await;

    // Windows updates share titles; rows arrive at two times.
    let mut batch = [vec![], vec![]];
    let mut expected = BTreeSet::new();
    for i in 0..14 {
        let title = format!("Update {}", i % 4);
        let name = format!("{:08x}-guid", 1000 - i);
        expected.insert(name.clone());
        batch[i % 2].push(win_update(
            &name,
            &title,
            UpdateClassification::Security,
            false,
            None,
        ));
    }
    let up = InventoryUpload::Full(FullInventory {
        windows_updates: batch[0].clone(),
        ..Default::default()
    });
    s.inventory_apply(&win.id, &root, &up, at(10, 0))
        .await
        .unwrap();
    let up = InventoryUpload::Diff(InventoryDiff {
        base_revision: 1,
        windows_updates: Some(Changes {
            upsert: batch[1].clone(),
            remove: vec![],
        }),
        ..Default::default()
    });
    s.inventory_apply(&win.id, &root, &up, at(20, 0))
        .await
        .unwrap();
    let none = WindowsUpdateFilter::default();
    check_paging(
        async |req| {
            s.instance_windows_update_list(&win.id, false, &none, &req)
                .await
                .unwrap()
        },
        |r, sort| {
            let key = match sort {
                SortKey::TimeCreated => KeyValue::Micros(r.time_created.as_microsecond()),
                SortKey::Name => KeyValue::Text(r.item.display_name.clone()),
            };
            (key, r.item.name.clone())
        },
        &expected,
    )
    .await;
    let comps = vec![c.clone()];
    check_paging(
        async |req| s.windows_update_list(&comps, &none, &req).await.unwrap(),
        |w, sort| {
            let key = match sort {
                SortKey::TimeCreated => KeyValue::Micros(w.time_created.as_microsecond()),
                SortKey::Name => KeyValue::Text(w.display_name.clone()),
            };
            (key, w.name.clone())
        },
        &expected,
    )
    .await;
}

// --- errata and OSV matching --------------------------------------------------------------

use osm_core::errata::{ImportRecord, ImportSummary};

/// An OSV record affecting `pkg` in `ecosystem` below `fixed`, with CVE `aliases`.
fn osv(
    id: &str,
    modified: i64,
    ecosystem: &str,
    pkg: &str,
    fixed: &str,
    aliases: &[&str],
) -> ImportRecord {
    osv_doc(serde_json::json!({
        "id": id,
        "aliases": aliases,
        "summary": format!("{pkg} security update"),
        "details": format!("{id} fixes {pkg}."),
        "published": "2029-12-01T00:00:00Z",
        "modified": osm_core::time::format_rfc3339(at(modified, 0)),
        "affected": [{"package": {"ecosystem": ecosystem, "name": pkg},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}],
    }))
}

fn osv_doc(v: serde_json::Value) -> ImportRecord {
    let text = v.to_string();
    ImportRecord {
        advisory: osm_core::osv::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        document: text,
    }
}

fn on(mut mi: ManagedInstance, os: &str, version: &str) -> ManagedInstance {
    mi.os_name = Some(os.into());
    mi.os_version = Some(version.into());
    mi
}

fn update_of(
    name: &str,
    installed: &str,
    available: &str,
    class: UpdateClassification,
    cves: &[&str],
    advisories: &[&str],
) -> PackageUpdate {
    PackageUpdate {
        installed_version: installed.into(),
        available_version: available.into(),
        ..pkg_update(name, class, cves, advisories)
    }
}

fn debian_updates() -> Vec<PackageUpdate> {
    vec![
        update_of(
            "openssl",
            "3.0.11-1~deb12u1",
            "3.0.11-1~deb12u2",
            UpdateClassification::Bug,
            &["CVE-2023-9999"],
            &["DLA-9-1"],
        ),
        // An epoch: 1:1.2.13-1 is newer than any version without one.
        update_of(
            "zlib1g",
            "1:1.2.13.dfsg-1",
            "1:1.2.13.dfsg-1+deb12u1",
            UpdateClassification::Enhancement,
            &[],
            &[],
        ),
        update_of(
            "curl",
            "7.88.1-10",
            "7.88.1-10+deb12u5",
            UpdateClassification::Bug,
            &[],
            &[],
        ),
    ]
}

fn feed() -> Vec<ImportRecord> {
    vec![
        osv(
            "DSA-5900-1",
            10,
            "Debian:12",
            "openssl",
            "3.0.11-1~deb12u2",
            &["CVE-2024-0002", "CVE-2024-0001"],
        ),
        osv(
            "DSA-5901-1",
            10,
            "Debian:12",
            "zlib1g",
            "1:1.2.13.dfsg-1+deb12u1",
            &["CVE-2024-0100"],
        ),
        // Another release and another distribution: neither applies to a Debian 12 host.
        osv(
            "DSA-5902-1",
            10,
            "Debian:11",
            "curl",
            "7.88.1-10+deb12u9",
            &["CVE-2024-0200"],
        ),
        osv(
            "USN-7000-1",
            10,
            "Ubuntu:22.04:LTS",
            "curl",
            "7.88.1-10+deb12u9",
            &["CVE-2024-0300"],
        ),
    ]
}

fn by_name(updates: &[ListedUpdate]) -> BTreeMap<String, &ListedUpdate> {
    updates.iter().map(|u| (u.update.name.clone(), u)).collect()
}

async fn erratum_names(s: &dyn Store, instance: &str) -> Vec<String> {
    let mut req = PageRequest::all();
    req.sort = SortKey::Name;
    req.order = SortOrder::Asc;
    s.instance_errata_list(instance, None, &req)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn everywhere(compartments: &[&str]) -> ErratumFilter {
    let c: Vec<String> = compartments.iter().map(|c| c.to_string()).collect();
    ErratumFilter {
        catalogue_in: c.clone(),
        applying_in: c,
        ..Default::default()
    }
}

async fn errata_import_matches_updates(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let other = new_compartment(s, &root, "other").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    let ubu = on(
        instance(&other, "ubu", OsFamily::Linux, at(1, 0)),
        "Ubuntu",
        "22.04",
    );
    s.managed_instance_insert_many(&[deb.clone(), ubu.clone()])
        .await
        .unwrap();
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(5, 0))
        .await
        .unwrap();
    s.inventory_apply(&ubu.id, &root, &full(vec![], debian_updates()), at(5, 0))
        .await
        .unwrap();
    let before = counts(s, &deb.id).await;
    assert_eq!((before.security, before.bug, before.enhancement), (0, 2, 1));
    assert_eq!(erratum_names(s, &deb.id).await, ["DLA-9-1"]);

    let summary = s.errata_import(&root, &feed(), at(20, 0)).await.unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            records: 4,
            created: 4,
            updates_changed: 2,
            instances_changed: 1,
            ..Default::default()
        }
    );
    // Stored through the existing columns: type, CVEs (merged with the agent's), advisories.
    let updates = all_updates(s, &deb.id).await;
    let u = by_name(&updates);
    let openssl = &u["openssl"].update;
    assert_eq!(openssl.update_type, UpdateClassification::Security);
    assert_eq!(
        openssl.cves,
        ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"]
    );
    let names: Vec<&str> = u["openssl"]
        .errata
        .iter()
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(names, ["DLA-9-1", "DSA-5900-1"]);
    assert_eq!(
        u["zlib1g"].update.update_type,
        UpdateClassification::Security
    );
    assert_eq!(u["zlib1g"].update.cves, ["CVE-2024-0100"]);
    assert_eq!(u["curl"].update.update_type, UpdateClassification::Bug);
    assert!(u["curl"].update.cves.is_empty());
    let after = counts(s, &deb.id).await;
    assert_eq!((after.security, after.bug, after.enhancement), (2, 1, 0));
    // The Ubuntu host reported the same packages: no Debian record applies to it.
    let ubu_updates = all_updates(s, &ubu.id).await;
    assert_eq!(
        by_name(&ubu_updates)["openssl"].update.update_type,
        UpdateClassification::Bug
    );
    assert_eq!(counts(s, &ubu.id).await.security, 0);
    assert_eq!(
        erratum_names(s, &deb.id).await,
        ["DLA-9-1", "DSA-5900-1", "DSA-5901-1"]
    );
    assert_eq!(erratum_names(s, &ubu.id).await, ["DLA-9-1"]);

    // The catalogue entry of a record.
    let page = s
        .erratum_list(
            &ErratumFilter {
                advisory_name: Some("DSA-5900-1".into()),
                ..everywhere(&[&root])
            },
            &PageRequest::all(),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let e = &page.items[0];
    assert!(e.id.starts_with("ocid1.osmserratum.oc1.."), "{}", e.id);
    assert_eq!(e.compartment_id, root);
    assert_eq!(e.advisory_type, Some(UpdateClassification::Security));
    assert_eq!(e.synopsis.as_deref(), Some("openssl security update"));
    assert_eq!(e.description.as_deref(), Some("DSA-5900-1 fixes openssl."));
    assert_eq!(e.issuer.as_deref(), Some("Debian"));
    assert_eq!(e.related_cves, ["CVE-2024-0001", "CVE-2024-0002"]);
    assert_eq!(e.modified, Some(at(10, 0)));
    assert_eq!(e.issued, Some("2029-12-01T00:00:00Z".parse().unwrap()));
    // The same id the update lists.
    assert_eq!(u["openssl"].errata[1].0, e.id);

    // Visibility: whole catalogue from the tenancy; from "other" only what applies there.
    let details = s
        .erratum_get(&e.id, &everywhere(&[&root, &c, &other]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        details.affected_instances,
        [IdName {
            id: deb.id.clone(),
            display_name: "deb".into()
        }]
    );
    let versions: Vec<(&str, &str)> = details
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            ("openssl", "3.0.11-1~deb12u2"),
            ("openssl", "3.0.11-1~deb12u2")
        ]
    );
    assert_eq!(details.packages[0].architecture, None);
    assert_eq!(details.packages[1].architecture.as_deref(), Some("amd64"));
    assert!(
        s.erratum_get(&e.id, &everywhere(&[&other]))
            .await
            .unwrap()
            .is_none()
    );
    let from_c = s
        .erratum_get(&e.id, &everywhere(&[&c]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_c.affected_instances.len(), 1);
    let only_root = s
        .erratum_get(
            &e.id,
            &ErratumFilter {
                catalogue_in: vec![root.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(only_root.affected_instances.is_empty());
    let listed: Vec<String> = s
        .erratum_list(&everywhere(&[&other]), &PageRequest::all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, ["DLA-9-1"]);
    assert!(
        s.erratum_list(&ErratumFilter::default(), &PageRequest::all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // The issue-date window (the agent's DLA-9-1 was issued at -50 s, the records in 2029).
    let window = ErratumFilter {
        issued_from: Some(at(-60, 0)),
        issued_to: Some(at(0, 0)),
        ..everywhere(&[&root])
    };
    let names: Vec<String> = s
        .erratum_list(&window, &PageRequest::all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["DLA-9-1"]);
}

async fn errata_reimport_is_idempotent_and_stale_records_wait(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    s.managed_instance_insert(&deb).await.unwrap();
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(5, 0))
        .await
        .unwrap();
    s.errata_import(&root, &feed(), at(20, 0)).await.unwrap();
    let updates = all_updates(s, &deb.id).await;
    let erratum = async |name: &str| {
        s.erratum_list(
            &ErratumFilter {
                advisory_name: Some(name.to_string()),
                ..everywhere(&[&root])
            },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items
        .remove(0)
    };
    let first = erratum("DSA-5900-1").await;

    let again = s.errata_import(&root, &feed(), at(30, 0)).await.unwrap();
    assert_eq!(
        again,
        ImportSummary {
            records: 4,
            unchanged: 4,
            ..Default::default()
        }
    );
    assert_eq!(all_updates(s, &deb.id).await, updates);
    assert_eq!(erratum("DSA-5900-1").await, first);

    // A newer version (fixed later, another CVE) replaces the record; an older one waits.
    let newer = osv(
        "DSA-5900-1",
        40,
        "Debian:12",
        "openssl",
        "3.0.11-1~deb12u3",
        &["CVE-2024-0003"],
    );
    let older = osv(
        "DSA-5901-1",
        5,
        "Debian:12",
        "zlib1g",
        "1:1.2.13.dfsg-1",
        &[],
    );
    let r = s
        .errata_import(&root, &[newer, older], at(50, 0))
        .await
        .unwrap();
    assert_eq!(
        r,
        ImportSummary {
            records: 2,
            updated: 1,
            stale: 1,
            updates_changed: 1,
            instances_changed: 1,
            ..Default::default()
        }
    );
    let u = all_updates(s, &deb.id).await;
    let u = by_name(&u);
    // deb12u2 no longer fixes it: the openssl update is what the agent said again.
    assert_eq!(u["openssl"].update.update_type, UpdateClassification::Bug);
    assert_eq!(u["openssl"].update.cves, ["CVE-2023-9999"]);
    assert_eq!(
        u["zlib1g"].update.update_type,
        UpdateClassification::Security
    );
    let e = erratum("DSA-5900-1").await;
    assert_eq!(e.id, first.id);
    assert_eq!(e.modified, Some(at(40, 0)));
    // No agent reported this erratum: its CVEs are the new record's (see
    // errata_cves_keep_what_agents_reported); the solution names the new fix.
    assert_eq!(e.related_cves, ["CVE-2024-0003"]);
    assert!(
        e.solution.as_deref().unwrap().contains("deb12u3"),
        "{:?}",
        e.solution
    );
    assert_eq!(erratum("DSA-5901-1").await.modified, Some(at(10, 0)));
}

async fn errata_import_is_all_or_nothing(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    s.managed_instance_insert(&deb).await.unwrap();
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(5, 0))
        .await
        .unwrap();
    let updates = all_updates(s, &deb.id).await;
    let before = counts(s, &deb.id).await;
    // The tenancy does not exist: the catalogue insert fails after the records were stored and
    // the updates matched; the whole import rolls back.
    let r = s
        .errata_import("ocid1.tenancy.oc1..missing", &feed(), at(20, 0))
        .await;
    assert!(matches!(r, Err(StoreError::MissingReference(_))), "{r:?}");
    assert_eq!(all_updates(s, &deb.id).await, updates);
    assert_eq!(counts(s, &deb.id).await, before);
    assert_eq!(erratum_names(s, &deb.id).await, ["DLA-9-1"]);
    // Nothing of it was kept: the same batch now imports as new.
    let ok = s.errata_import(&root, &feed(), at(21, 0)).await.unwrap();
    assert_eq!(ok.created, 4);
    assert_eq!(ok.updates_changed, 2);
}

async fn errata_withdrawn_records_stop_matching(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    s.managed_instance_insert(&deb).await.unwrap();
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(5, 0))
        .await
        .unwrap();
    let reported = all_updates(s, &deb.id).await;
    let before = counts(s, &deb.id).await;
    s.errata_import(&root, &feed(), at(20, 0)).await.unwrap();
    assert_eq!(counts(s, &deb.id).await.security, 2);

    let mut doc: serde_json::Value = serde_json::from_str(&feed()[0].document).unwrap();
    doc["modified"] = serde_json::json!("2030-01-01T00:01:00Z");
    doc["withdrawn"] = serde_json::json!("2030-01-01T00:01:00Z");
    let r = s
        .errata_import(&root, &[osv_doc(doc)], at(60, 0))
        .await
        .unwrap();
    assert_eq!((r.updated, r.withdrawn, r.updates_changed), (1, 1, 1));
    let now = all_updates(s, &deb.id).await;
    let u = by_name(&now);
    let was = by_name(&reported);
    // Exactly what the agent reported, its own CVE and advisory kept.
    assert_eq!(u["openssl"].update, was["openssl"].update);
    assert_eq!(
        u["zlib1g"].update.update_type,
        UpdateClassification::Security
    );
    let c2 = counts(s, &deb.id).await;
    assert_eq!((c2.security, c2.bug, c2.enhancement), (1, before.bug, 0));
    assert_eq!(erratum_names(s, &deb.id).await, ["DLA-9-1", "DSA-5901-1"]);
    // The entry stays in the catalogue, marked withdrawn, applying nowhere.
    let e = s
        .erratum_list(
            &ErratumFilter {
                advisory_name: Some("DSA-5900-1".into()),
                ..everywhere(&[&root])
            },
            &PageRequest::all(),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(e.withdrawn, Some(at(60, 0)));
    let d = s
        .erratum_get(&e.id, &everywhere(&[&root, &c]))
        .await
        .unwrap()
        .unwrap();
    assert!(d.affected_instances.is_empty());
    // A later upload does not bring it back either.
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(70, 0))
        .await
        .unwrap();
    assert_eq!(counts(s, &deb.id).await.security, 1);
}

async fn errata_matching_on_upload_survives_later_uploads(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    let unknown = on(
        instance(&c, "arch", OsFamily::Linux, at(1, 0)),
        "Arch Linux",
        "rolling",
    );
    s.managed_instance_insert_many(&[deb.clone(), unknown.clone()])
        .await
        .unwrap();
    // Records first, inventory after: the upload is matched in its own transaction.
    let r = s.errata_import(&root, &feed(), at(2, 0)).await.unwrap();
    assert_eq!((r.created, r.updates_changed), (4, 0));
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(5, 0))
        .await
        .unwrap();
    s.inventory_apply(
        &unknown.id,
        &root,
        &full(vec![], debian_updates()),
        at(5, 0),
    )
    .await
    .unwrap();
    let check = async |security: i64| {
        let u = all_updates(s, &deb.id).await;
        let u = by_name(&u);
        assert_eq!(
            u["openssl"].update.update_type,
            UpdateClassification::Security
        );
        assert_eq!(
            u["openssl"].update.cves,
            ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"]
        );
        assert_eq!(counts(s, &deb.id).await.security, security);
    };
    check(2).await;
    // An OS osm has no ecosystem for is never matched.
    assert_eq!(counts(s, &unknown.id).await.security, 0);
    // A later full upload (the agent reports the same as before) keeps the OSV CVEs.
    s.inventory_apply(&deb.id, &root, &full(vec![], debian_updates()), at(6, 0))
        .await
        .unwrap();
    check(2).await;
    // A diff that touches another update leaves openssl matched; one that changes zlib1g's
    // available version to a still vulnerable one drops zlib1g's match.
    let rev = s.inventory_state(&deb.id).await.unwrap().unwrap().revision;
    let diff = InventoryUpload::Diff(InventoryDiff {
        base_revision: rev,
        updates: Some(Changes {
            upsert: vec![update_of(
                "zlib1g",
                "1:1.2.13.dfsg-1",
                "1:1.2.13.dfsg-1+b1",
                UpdateClassification::Enhancement,
                &[],
                &[],
            )],
            remove: vec![],
        }),
        ..Default::default()
    });
    s.inventory_apply(&deb.id, &root, &diff, at(7, 0))
        .await
        .unwrap();
    check(1).await;
    let u = all_updates(s, &deb.id).await;
    let u = by_name(&u);
    assert_eq!(
        u["zlib1g"].update.update_type,
        UpdateClassification::Enhancement
    );
    assert!(u["zlib1g"].update.advisories.is_empty());
    assert_eq!(erratum_names(s, &deb.id).await, ["DLA-9-1", "DSA-5900-1"]);
    // Removing the update removes its errata from the instance.
    let diff = InventoryUpload::Diff(InventoryDiff {
        base_revision: rev + 1,
        updates: Some(Changes {
            upsert: vec![],
            remove: vec![PackageKey {
                name: "openssl".into(),
                architecture: Some("amd64".into()),
            }],
        }),
        ..Default::default()
    });
    s.inventory_apply(&deb.id, &root, &diff, at(8, 0))
        .await
        .unwrap();
    assert!(erratum_names(s, &deb.id).await.is_empty());
    assert_eq!(counts(s, &deb.id).await.security, 0);
}

/// Imports and uploads at the same time (PostgreSQL runs them on several connections): none
/// fails or deadlocks, and whatever the order, every upload ends matched against the records.
async fn errata_imports_race_uploads(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let fleet: Vec<ManagedInstance> = (0..8)
        .map(|i| {
            on(
                instance(&c, &format!("deb{i}"), OsFamily::Linux, at(1, 0)),
                "Debian GNU/Linux",
                "12",
            )
        })
        .collect();
    s.managed_instance_insert_many(&fleet).await.unwrap();
    let mut tasks = vec![];
    for mi in &fleet {
        let (store, root, id) = (db.store.clone(), root.clone(), mi.id.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..4 {
                store
                    .inventory_apply(
                        &id,
                        &root,
                        &full(vec![], debian_updates()),
                        at(10 + round, 0),
                    )
                    .await
                    .expect("an upload beside an import");
            }
        }));
    }
    let (store, tenancy_id) = (db.store.clone(), root.clone());
    tasks.push(tokio::spawn(async move {
        for round in 0..4 {
            let records: Vec<ImportRecord> = feed()
                .into_iter()
                .map(|r| {
                    let mut doc: serde_json::Value = serde_json::from_str(&r.document).unwrap();
                    doc["modified"] =
                        serde_json::json!(osm_core::time::format_rfc3339(at(10 + round, 0)));
                    osv_doc(doc)
                })
                .collect();
            store
                .errata_import(&tenancy_id, &records, at(10 + round, 0))
                .await
                .expect("an import beside uploads");
        }
    }));
    for t in tasks {
        t.await.unwrap();
    }
    for mi in &fleet {
        let u = all_updates(s, &mi.id).await;
        let u = by_name(&u);
        assert_eq!(
            u["openssl"].update.update_type,
            UpdateClassification::Security,
            "{}",
            mi.display_name
        );
        assert_eq!(
            u["openssl"].update.cves,
            ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"]
        );
        assert_eq!(counts(s, &mi.id).await.security, 2, "{}", mi.display_name);
        assert_eq!(
            erratum_names(s, &mi.id).await,
            ["DLA-9-1", "DSA-5900-1", "DSA-5901-1"]
        );
    }
}

async fn paging_errata(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    s.managed_instance_insert(&deb).await.unwrap();
    // 23 records, some sharing an issue date, one without; each fixes one package.
    let mut records = vec![];
    let mut updates = vec![];
    for i in 0..23 {
        let pkg = format!("pkg{i:02}");
        let mut doc = serde_json::json!({
            "id": format!("DSA-{}-1", 6000 + (i * 7) % 23),
            "aliases": [format!("CVE-2024-{:04}", 1000 + i)],
            "modified": "2030-01-01T00:00:00Z",
            "published": osm_core::time::format_rfc3339(at(-((i % 5) * 100), 0)),
            "affected": [{"package": {"ecosystem": "Debian:12", "name": pkg},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-2"}]}]}],
        });
        if i == 7 {
            doc.as_object_mut().unwrap().remove("published");
        }
        records.push(osv_doc(doc));
        updates.push(update_of(
            &pkg,
            "1.0-1",
            "1.0-2",
            UpdateClassification::Bug,
            &[],
            &[],
        ));
    }
    s.inventory_apply(&deb.id, &root, &full(vec![], updates), at(5, 0))
        .await
        .unwrap();
    s.errata_import(&root, &records, at(10, 0)).await.unwrap();
    let all = s
        .erratum_list(&everywhere(&[&root]), &PageRequest::all())
        .await
        .unwrap()
        .items;
    let expected: BTreeSet<String> = all.iter().map(|e| e.id.clone()).collect();
    assert_eq!(expected.len(), 23);
    check_paging(
        async |req| s.erratum_list(&everywhere(&[&root]), &req).await.unwrap(),
        |e, sort| match sort {
            SortKey::TimeCreated => (
                KeyValue::Micros(e.issued.map_or(0, osm_core::time::to_micros)),
                e.id.clone(),
            ),
            SortKey::Name => (KeyValue::Text(e.name.clone()), e.id.clone()),
        },
        &expected,
    )
    .await;
    check_paging(
        async |req| s.instance_errata_list(&deb.id, None, &req).await.unwrap(),
        |e, sort| match sort {
            SortKey::TimeCreated => (
                KeyValue::Micros(osm_core::time::to_micros(e.time_created)),
                e.id.clone(),
            ),
            SortKey::Name => (KeyValue::Text(e.name.clone()), e.id.clone()),
        },
        &expected,
    )
    .await;
    let one = s
        .instance_errata_list(&deb.id, Some("DSA-6000-1"), &PageRequest::all())
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
}

// --- migration 0007 on a store that already holds updates --------------------------------

/// The tenancy's compartment row, as the migration checks insert it below their data.
const TENANCY_ROW: &str = "INSERT INTO compartments (id, parent_id, name, description, lifecycle_state, time_created, freeform_tags, defined_tags, version) \
     VALUES ('ocid1.tenancy.oc1..t', NULL, 'root', '', 'ACTIVE', 1, '{}', '{}', 1);";

/// Tests `$check::sqlite` and `$check::postgres` of a migration check that takes the backend.
macro_rules! on_both_backends {
    ($check:ident) => {
        mod $check {
            use super::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$check(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$check(Backend::Postgres).await;
            }
        }
    };
}

/// A database of `backend` migrated up to `version`, then `rows` run on it: the url, the
/// folder holding a SQLite file, and the PostgreSQL database to drop afterwards.
async fn database_at_migration(
    backend: Backend,
    version: i64,
    rows: &str,
) -> (String, tempfile::TempDir, Option<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("osm.db").display()),
            None,
        ),
        Backend::Postgres => {
            let admin = pg_admin_url();
            let name = format!("osm_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = pg_admin(&admin).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .unwrap();
            (pg_url_with_db(&admin, &name), Some((admin, name)))
        }
    };
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let mut migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    migrator.migrations = std::borrow::Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect(),
    );
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                .await
                .unwrap();
            migrator.run(&pool).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(rows.to_string()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(rows.to_string()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    (url, dir, pg)
}

async fn drop_database(pg: Option<(String, String)>) {
    if let Some((admin, name)) = pg
        && let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await
    {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A database at migration 0006 with an instance whose agent reported an update naming an
/// advisory; migrating to 0007 keeps what the agent reported (`reported_*`) and lists the
/// advisory among the instance's errata.
async fn migration_0007_keeps_reported_updates(backend: Backend) {
    let rows = &format!(
        "{TENANCY_ROW} INSERT INTO managed_instances (id, compartment_id, display_name, os_name, os_version, os_family, status, is_reboot_required, is_data_collection_authorized, security_updates, bug_updates, enhancement_updates, other_updates, time_created, version) \
                VALUES ('ocid1.instance.oc1..m', 'ocid1.tenancy.oc1..t', 'old', 'Debian GNU/Linux', '12', 'LINUX', 'NORMAL', false, false, 0, 1, 0, 0, 1, 1); \
                INSERT INTO instance_inventories (instance_id, revision, time_reported) VALUES ('ocid1.instance.oc1..m', 1, 1); \
                INSERT INTO instance_updates (instance_id, item_key, name, architecture, installed_version, available_version, update_type, package_type, cves, advisories, revision, time_created) \
                VALUES ('ocid1.instance.oc1..m', 'openssl amd64', 'openssl', 'amd64', '3.0.11-1~deb12u1', '3.0.11-1~deb12u2', 'BUG', NULL, '[\"CVE-2023-9999\"]', '[\"DLA-9-1\", \"DLA-9-2\"]', 1, 1); \
                INSERT INTO errata (id, compartment_id, name, advisory_type, synopsis, issued, related_cves, time_created, time_updated) \
                VALUES ('ocid1.osmserratum.oc1..e', 'ocid1.tenancy.oc1..t', 'DLA-9-1', 'BUG', NULL, NULL, '[]', 1, 1)"
    );
    let (url, _dir, pg) = database_at_migration(backend, 6, rows).await;
    let store = osm_store::connect(&url)
        .await
        .expect("migrates to the latest version");
    let mut req = PageRequest::all();
    req.sort = SortKey::Name;
    req.order = SortOrder::Asc;
    let names: Vec<String> = store
        .instance_errata_list("ocid1.instance.oc1..m", None, &req)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["DLA-9-1"], "DLA-9-2 has no catalogue entry");
    // What the agent reported stays its own: a record fixing the update adds to it, and a
    // withdrawal takes back exactly that.
    let fix = osv(
        "DSA-5900-1",
        10,
        "Debian:12",
        "openssl",
        "3.0.11-1~deb12u2",
        &["CVE-2024-0001"],
    );
    let r = store
        .errata_import("ocid1.tenancy.oc1..t", &[fix], at(20, 0))
        .await
        .unwrap();
    assert_eq!(r.updates_changed, 1);
    let u = &all_updates(&*store, "ocid1.instance.oc1..m").await[0].update;
    assert_eq!(u.update_type, UpdateClassification::Security);
    assert_eq!(u.cves, ["CVE-2023-9999", "CVE-2024-0001"]);
    let mut doc = serde_json::json!({"id": "DSA-5900-1", "modified": "2030-01-01T00:10:00Z", "withdrawn": "2030-01-01T00:10:00Z"});
    doc["affected"] = serde_json::from_str::<serde_json::Value>(
        &osv(
            "DSA-5900-1",
            10,
            "Debian:12",
            "openssl",
            "3.0.11-1~deb12u2",
            &[],
        )
        .document,
    )
    .unwrap()["affected"]
        .clone();
    store
        .errata_import("ocid1.tenancy.oc1..t", &[osv_doc(doc)], at(30, 0))
        .await
        .unwrap();
    let u = &all_updates(&*store, "ocid1.instance.oc1..m").await[0].update;
    assert_eq!(u.update_type, UpdateClassification::Bug);
    assert_eq!(u.cves, ["CVE-2023-9999"]);
    let advisories: Vec<&str> = u.advisories.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(advisories, ["DLA-9-1", "DLA-9-2"]);
    drop(store);
    drop_database(pg).await;
}

on_both_backends!(migration_0007_keeps_reported_updates);

// --- migration 0012 on a store that logged claims as rows -----------------------------------

/// Before migration 0012 every claim wrote a "Started by the agent" log row; migrating turns
/// those into `time_claimed` (the entry reads once, in its place) and leaves other rows alone.
async fn migration_0012_keeps_claim_entries(backend: Backend) {
    let rows = &format!(
        "{TENANCY_ROW} INSERT INTO work_requests (id, compartment_id, operation_type, status, description, message, managed_instance_id, managed_instance_name, os_family, percent_complete, time_accepted, time_started, time_finished, parent_id, scheduled_job_id, resources, action) \
                VALUES ('ocid1.osmsworkrequest.oc1..w', 'ocid1.tenancy.oc1..t', 'UPDATEALL', 'SUCCEEDED', NULL, NULL, NULL, NULL, 'LINUX', 100, 10, 20, 30, NULL, NULL, '[]', NULL), \
                ('ocid1.osmsworkrequest.oc1..c', 'ocid1.tenancy.oc1..t', 'UPDATEALL', 'CANCELED', NULL, NULL, NULL, NULL, 'LINUX', 100, 10, 40, 40, NULL, NULL, '[]', NULL); \
                INSERT INTO work_request_logs (work_request_id, entry_id, message, lines, time_created) VALUES \
                ('ocid1.osmsworkrequest.oc1..w', '01', 'Started by the agent', NULL, 20), \
                ('ocid1.osmsworkrequest.oc1..w', '02', '', '[\"done\", \"Succeeded\"]', 30), \
                ('ocid1.osmsworkrequest.oc1..c', '03', 'Started by the agent', NULL, 35), \
                ('ocid1.osmsworkrequest.oc1..c', '04', 'Canceled', NULL, 40)"
    );
    let (url, _dir, pg) = database_at_migration(backend, 11, rows).await;
    let store = osm_store::connect(&url)
        .await
        .expect("migrates to the latest version");
    let entry = |m: &str, t: i64| (m.to_string(), t);
    assert_log_reads(
        &*store,
        "ocid1.osmsworkrequest.oc1..w",
        &[
            entry("Started by the agent", 20),
            entry("done", 30),
            entry("Succeeded", 30),
        ],
    )
    .await;
    // A row that does not match the request's start stays a row.
    assert_log_reads(
        &*store,
        "ocid1.osmsworkrequest.oc1..c",
        &[entry("Started by the agent", 35), entry("Canceled", 40)],
    )
    .await;
    drop(store);
    drop_database(pg).await;
}

on_both_backends!(migration_0012_keeps_claim_entries);

// --- migration 0014 on a store with leases in their own table ------------------------------

/// Before migration 0014 a claimed request's lease was a row of `work_leases`; migrating moves
/// it into the request's queue row: the lease still renews and expires, and queued work is
/// still claimed, the leased request not again.
async fn migration_0014_moves_leases_into_the_queue(backend: Backend) {
    let wr = |id: &str, status: &str, started: &str| {
        format!(
            "('{id}', 'ocid1.tenancy.oc1..t', 'UPDATEALL', '{status}', 'd', NULL, 'ocid1.instance.oc1..m', 'web', 'LINUX', 0, 10, {started}, NULL, NULL, NULL, '[]', '{{\"kind\":\"update_all\",\"update_type\":\"ALL\"}}')"
        )
    };
    let rows = format!(
        "{TENANCY_ROW} INSERT INTO managed_instances (id, compartment_id, display_name, os_name, os_version, os_family, status, is_reboot_required, is_data_collection_authorized, security_updates, bug_updates, enhancement_updates, other_updates, time_created, version) \
         VALUES ('ocid1.instance.oc1..m', 'ocid1.tenancy.oc1..t', 'web', 'Debian GNU/Linux', '12', 'LINUX', 'NORMAL', false, false, 0, 0, 0, 0, 1, 1); \
         INSERT INTO work_requests (id, compartment_id, operation_type, status, description, message, managed_instance_id, managed_instance_name, os_family, percent_complete, time_accepted, time_started, time_finished, parent_id, scheduled_job_id, resources, action) \
         VALUES {}, {}, {}, {}; \
         INSERT INTO work_queue (work_request_id, managed_instance_id, time_accepted) VALUES ('ocid1.osmsworkrequest.oc1..q', 'ocid1.instance.oc1..m', 10); \
         INSERT INTO work_leases (managed_instance_id, work_request_id, lease_expires) VALUES \
         ('ocid1.instance.oc1..m', 'ocid1.osmsworkrequest.oc1..a', {early}), ('ocid1.instance.oc1..m', 'ocid1.osmsworkrequest.oc1..b', {}), \
         ('ocid1.instance.oc1..m', 'ocid1.osmsworkrequest.oc1..s', {early})",
        wr("ocid1.osmsworkrequest.oc1..q", "ACCEPTED", "NULL"),
        wr("ocid1.osmsworkrequest.oc1..a", "IN_PROGRESS", "20"),
        wr("ocid1.osmsworkrequest.oc1..b", "CANCELLING", "20"),
        // A stale lease of a finished request is not carried over.
        wr("ocid1.osmsworkrequest.oc1..s", "SUCCEEDED", "20"),
        at(120, 0).as_microsecond(),
        early = at(60, 0).as_microsecond(),
    );
    let (url, _dir, pg) = database_at_migration(backend, 13, &rows).await;
    let store = osm_store::connect(&url)
        .await
        .expect("migrates to the latest version");
    let lease = jiff::SignedDuration::from_mins(5);
    // The earlier lease ran out, the later not yet.
    let expired = store
        .work_request_expire_leases(at(90, 0), 10)
        .await
        .unwrap();
    assert_eq!(expired, ["ocid1.osmsworkrequest.oc1..a"]);
    let renewed = store
        .work_request_renew_leases("ocid1.instance.oc1..m", at(100, 0), lease)
        .await
        .unwrap();
    assert_eq!(
        renewed,
        [(
            "ocid1.osmsworkrequest.oc1..b".to_string(),
            WorkRequestStatus::Cancelling
        )]
    );
    assert!(
        store
            .work_request_expire_leases(at(200, 0), 10)
            .await
            .unwrap()
            .is_empty(),
        "renewed until 100 s + 5 min"
    );
    let claim = Claim {
        instance_id: "ocid1.instance.oc1..m".into(),
        limit: 10,
    };
    let claimed = store
        .work_request_dispatch(&[], std::slice::from_ref(&claim), at(210, 0), lease)
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.claimed[0].iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["ocid1.osmsworkrequest.oc1..q"]);
    drop(store);
    drop_database(pg).await;
}

on_both_backends!(migration_0014_moves_leases_into_the_queue);

// --- compliance report --------------------------------------------------------------------

use osm_core::report::{ComplianceRows, InstanceRow, PendingUpdate, UpdateSource};

/// A report's reads collected whole, and the batches they came in.
async fn compliance_batches(
    s: &dyn Store,
    scope: &ComplianceScope,
    classes: &[UpdateClassification],
    batches: ComplianceBatches,
) -> StoreResult<(ComplianceRows, Vec<ComplianceBatch>)> {
    let mut seen = vec![];
    s.compliance_scan(scope, classes, batches, &mut |b| {
        seen.push(b);
        std::ops::ControlFlow::Continue(())
    })
    .await?;
    let mut rows = ComplianceRows::default();
    for b in &seen {
        match b.clone() {
            ComplianceBatch::Instances(i) => rows.instances.extend(i),
            ComplianceBatch::Updates(u) => rows.updates.extend(u),
        }
    }
    Ok((rows, seen))
}

/// A report's reads collected whole, in batches of the default size.
async fn compliance_rows(
    s: &dyn Store,
    scope: &ComplianceScope,
    classes: &[UpdateClassification],
) -> StoreResult<ComplianceRows> {
    Ok(
        compliance_batches(s, scope, classes, ComplianceBatches::default())
            .await?
            .0,
    )
}

/// The report's rows of one instance.
fn row_of<'a>(rows: &'a osm_core::report::ComplianceRows, id: &str) -> &'a InstanceRow {
    rows.instances
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the report: {rows:#?}"))
}

fn pending_of(rows: &osm_core::report::ComplianceRows, id: &str) -> Vec<String> {
    let mut names: Vec<String> = rows
        .updates
        .iter()
        .filter(|u| u.instance_id == id)
        .map(|u| format!("{}:{}", u.update_type, u.name))
        .collect();
    names.sort();
    names
}

const SECURITY_ONLY: &[UpdateClassification] = &[UpdateClassification::Security];

async fn compliance_counts_and_pending_updates(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let vulnerable = instance(&c, "vulnerable", OsFamily::Linux, at(1, 0));
    let patched = instance(&c, "patched", OsFamily::Linux, at(1, 0));
    let win = instance(&c, "win", OsFamily::Windows, at(1, 0));
    s.managed_instance_insert_many(&[vulnerable.clone(), patched.clone(), win.clone()])
        .await
        .unwrap();
    let upload = full(
        vec![pkg("openssl", "3.0.11-1", Some("amd64"))],
        vec![
            pkg_update(
                "openssl",
                UpdateClassification::Security,
                &["CVE-2024-0727", "CVE-2023-5678"],
                &["DSA-5678-1"],
            ),
            pkg_update(
                "zlib1g",
                UpdateClassification::Security,
                &["CVE-2023-45853"],
                &[],
            ),
            pkg_update("libc6", UpdateClassification::Bug, &[], &[]),
            pkg_update("vim", UpdateClassification::Enhancement, &[], &[]),
            pkg_update("tzdata", UpdateClassification::Other, &[], &[]),
        ],
    );
    s.inventory_apply(&vulnerable.id, &root, &upload, at(10, 0))
        .await
        .unwrap();
    // Zero security updates: only a bug fix pending.
    let upload = full(
        vec![],
        vec![pkg_update("libc6", UpdateClassification::Bug, &[], &[])],
    );
    s.inventory_apply(&patched.id, &root, &upload, at(20, 0))
        .await
        .unwrap();
    let upload = InventoryUpload::Full(FullInventory {
        windows_updates: vec![
            win_update(
                "aaaa-1",
                "Security Update KB1",
                UpdateClassification::Security,
                false,
                None,
            ),
            win_update(
                "bbbb-2",
                "Old Security KB2",
                UpdateClassification::Security,
                true,
                None,
            ),
            win_update(
                "cccc-3",
                "Bug Fix KB3",
                UpdateClassification::Bug,
                false,
                None,
            ),
        ],
        ..Default::default()
    });
    s.inventory_apply(&win.id, &root, &upload, at(30, 0))
        .await
        .unwrap();

    let scope = ComplianceScope::Compartments(vec![c.clone()]);
    let rows = compliance_rows(s, &scope, SECURITY_ONLY).await.unwrap();
    assert_eq!(rows.instances.len(), 3);
    let v = row_of(&rows, &vulnerable.id);
    assert_eq!(
        v.pending,
        UpdateCounts {
            security: 2,
            bug: 1,
            enhancement: 1,
            other: 1
        }
    );
    assert_eq!(v.inventory_reported, Some(at(10, 0)));
    assert_eq!(v.display_name, "vulnerable");
    assert_eq!(v.compartment_id, c);
    assert_eq!(v.os_family, OsFamily::Linux);
    assert_eq!(v.os_name.as_deref(), Some("Oracle Linux"));
    assert_eq!(v.last_checkin, Some(at(1, 0)));
    let p = row_of(&rows, &patched.id);
    assert_eq!(p.pending.security, 0);
    assert_eq!(p.pending.bug, 1);
    assert_eq!(p.inventory_reported, Some(at(20, 0)));
    // Windows: only updates not installed are pending.
    let w = row_of(&rows, &win.id);
    assert_eq!((w.pending.security, w.pending.bug), (1, 1));

    // Only the classes asked for come back, with what the report shows of them.
    assert_eq!(
        pending_of(&rows, &vulnerable.id),
        ["SECURITY:openssl", "SECURITY:zlib1g"]
    );
    assert!(pending_of(&rows, &patched.id).is_empty());
    assert_eq!(pending_of(&rows, &win.id), ["SECURITY:aaaa-1"]);
    let openssl = rows.updates.iter().find(|u| u.name == "openssl").unwrap();
    assert_eq!(
        openssl,
        &PendingUpdate {
            instance_id: vulnerable.id.clone(),
            source: UpdateSource::Package,
            display_name: "openssl".into(),
            name: "openssl".into(),
            architecture: Some("amd64".into()),
            installed_version: Some("1.0-1".into()),
            available_version: Some("1.0-2".into()),
            update_type: UpdateClassification::Security,
            cves: vec!["CVE-2024-0727".into(), "CVE-2023-5678".into()],
            advisories: vec!["DSA-5678-1".into()],
        }
    );
    let kb1 = rows.updates.iter().find(|u| u.name == "aaaa-1").unwrap();
    assert_eq!(kb1.source, UpdateSource::Windows);
    assert_eq!(kb1.display_name, "Security Update KB1");
    assert_eq!(kb1.installed_version, None);

    let wider = compliance_rows(
        s,
        &scope,
        &[UpdateClassification::Security, UpdateClassification::Bug],
    )
    .await
    .unwrap();
    assert_eq!(
        pending_of(&wider, &vulnerable.id),
        ["BUG:libc6", "SECURITY:openssl", "SECURITY:zlib1g"]
    );
    assert_eq!(pending_of(&wider, &patched.id), ["BUG:libc6"]);
    assert_eq!(
        pending_of(&wider, &win.id),
        ["BUG:cccc-3", "SECURITY:aaaa-1"]
    );
    let counts_only = compliance_rows(s, &scope, &[]).await.unwrap();
    assert!(counts_only.updates.is_empty());
    assert_eq!(row_of(&counts_only, &vulnerable.id).pending.security, 2);

    // An update-all of the security updates: the report follows the inventory.
    let diff = InventoryUpload::Diff(InventoryDiff {
        base_revision: 1,
        updates: Some(Changes {
            upsert: vec![],
            remove: vec![
                PackageKey {
                    name: "openssl".into(),
                    architecture: Some("amd64".into()),
                },
                PackageKey {
                    name: "zlib1g".into(),
                    architecture: Some("amd64".into()),
                },
            ],
        }),
        ..Default::default()
    });
    s.inventory_apply(&vulnerable.id, &root, &diff, at(40, 0))
        .await
        .unwrap();
    let after = compliance_rows(s, &scope, SECURITY_ONLY).await.unwrap();
    assert!(pending_of(&after, &vulnerable.id).is_empty());
    let v = row_of(&after, &vulnerable.id);
    assert_eq!((v.pending.security, v.pending.bug), (0, 1));
    assert_eq!(v.inventory_reported, Some(at(40, 0)));
}

async fn compliance_scopes(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let team = new_compartment(s, &root, "team").await;
    let inner = new_compartment(s, &team, "inner").await;
    let other = new_compartment(s, &root, "other").await;
    let top = instance(&team, "top", OsFamily::Linux, at(1, 0));
    let deep = instance(&inner, "deep", OsFamily::Linux, at(1, 0));
    let away = instance(&other, "away", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[top.clone(), deep.clone(), away.clone()])
        .await
        .unwrap();
    for (mi, cve) in [
        (&top, "CVE-2024-0001"),
        (&deep, "CVE-2024-0002"),
        (&away, "CVE-2024-0003"),
    ] {
        let upload = full(
            vec![],
            vec![pkg_update(
                "openssl",
                UpdateClassification::Security,
                &[cve],
                &[],
            )],
        );
        s.inventory_apply(&mi.id, &root, &upload, at(10, 0))
            .await
            .unwrap();
    }
    let ids = |rows: &osm_core::report::ComplianceRows| {
        sorted(
            rows.instances
                .iter()
                .map(|i| i.display_name.clone())
                .collect(),
        )
    };
    let cves = |rows: &osm_core::report::ComplianceRows| {
        sorted(rows.updates.iter().flat_map(|u| u.cves.clone()).collect())
    };

    // A compartment alone: not what lies below it.
    let rows = compliance_rows(
        s,
        &ComplianceScope::Compartments(vec![team.clone()]),
        SECURITY_ONLY,
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows), ["top"]);
    assert_eq!(cves(&rows), ["CVE-2024-0001"]);
    // Its subtree, as the caller lists it.
    let rows = compliance_rows(
        s,
        &ComplianceScope::Compartments(vec![team.clone(), inner.clone()]),
        SECURITY_ONLY,
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows), ["deep", "top"]);
    assert_eq!(cves(&rows), ["CVE-2024-0001", "CVE-2024-0002"]);
    // Nothing asked, nothing read.
    let rows = compliance_rows(s, &ComplianceScope::Compartments(vec![]), SECURITY_ONLY)
        .await
        .unwrap();
    assert!(rows.instances.is_empty() && rows.updates.is_empty());

    // A group: its members, wherever they live.
    let g = group(&team, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    let rows = compliance_rows(s, &ComplianceScope::Group(g.id.clone()), SECURITY_ONLY)
        .await
        .unwrap();
    assert!(rows.instances.is_empty(), "an empty group has no instances");
    s.managed_instance_group_attach(&g.id, &deep.id, None)
        .await
        .unwrap();
    s.managed_instance_group_attach(&g.id, &away.id, None)
        .await
        .unwrap();
    let rows = compliance_rows(s, &ComplianceScope::Group(g.id.clone()), SECURITY_ONLY)
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["away", "deep"]);
    assert_eq!(cves(&rows), ["CVE-2024-0002", "CVE-2024-0003"]);
    assert_eq!(row_of(&rows, &away.id).compartment_id, other);
    s.managed_instance_group_detach(&g.id, &away.id, None)
        .await
        .unwrap();
    let rows = compliance_rows(s, &ComplianceScope::Group(g.id.clone()), SECURITY_ONLY)
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["deep"]);
    let rows = compliance_rows(
        s,
        &ComplianceScope::Group(new_ocid(ResourceKind::ManagedInstanceGroup)),
        SECURITY_ONLY,
    )
    .await
    .unwrap();
    assert!(
        rows.instances.is_empty(),
        "an unknown group has no instances"
    );
}

async fn compliance_without_inventory(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    // Its heartbeat counters say 3 security updates, but no inventory was ever uploaded: the
    // report knows no update of it.
    let silent = instance(&c, "silent", OsFamily::Linux, at(1, 0));
    assert_eq!(silent.updates.security, 3);
    let empty = instance(&c, "empty", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(&[silent.clone(), empty.clone()])
        .await
        .unwrap();
    // An inventory with nothing pending.
    s.inventory_apply(&empty.id, &root, &full(vec![], vec![]), at(5, 0))
        .await
        .unwrap();
    let rows = compliance_rows(
        s,
        &ComplianceScope::Compartments(vec![c.clone()]),
        SECURITY_ONLY,
    )
    .await
    .unwrap();
    assert_eq!(rows.instances.len(), 2);
    let r = row_of(&rows, &silent.id);
    assert_eq!(r.inventory_reported, None);
    assert_eq!(r.pending, UpdateCounts::default());
    let r = row_of(&rows, &empty.id);
    assert_eq!(r.inventory_reported, Some(at(5, 0)));
    assert_eq!(r.pending, UpdateCounts::default());
    assert!(rows.updates.is_empty());
}

/// The report's reads come in batches of at most the sizes asked for, each instance once and
/// before its updates, all of the same rows as one read; the sink can stop them.
async fn compliance_reads_in_batches(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let hosts: Vec<ManagedInstance> = (0..7)
        .map(|k| instance(&c, &format!("h{k}"), OsFamily::Linux, at(1, 0)))
        .collect();
    s.managed_instance_insert_many(&hosts).await.unwrap();
    // Host k has k security updates and one bug fix; host 6 has more than a batch holds.
    for (k, h) in hosts.iter().enumerate() {
        let mut updates: Vec<PackageUpdate> = (0..k)
            .map(|n| {
                pkg_update(
                    &format!("p{n}"),
                    UpdateClassification::Security,
                    &[&format!("CVE-2024-{:04}", 1000 + n)],
                    &[],
                )
            })
            .collect();
        updates.push(pkg_update("bugfix", UpdateClassification::Bug, &[], &[]));
        s.inventory_apply(&h.id, &root, &full(vec![], updates), at(10, 0))
            .await
            .unwrap();
    }
    let scope = ComplianceScope::Compartments(vec![c.clone()]);
    let small = ComplianceBatches {
        instances: 3,
        updates: 4,
    };
    let sorted_rows = |mut r: ComplianceRows| {
        r.instances.sort_by(|a, b| a.id.cmp(&b.id));
        r.updates
            .sort_by(|a, b| (&a.instance_id, &a.name).cmp(&(&b.instance_id, &b.name)));
        r
    };
    let (rows, seen) = compliance_batches(s, &scope, SECURITY_ONLY, small)
        .await
        .unwrap();
    let whole = compliance_rows(s, &scope, SECURITY_ONLY).await.unwrap();
    assert_eq!(sorted_rows(rows.clone()), sorted_rows(whole));
    assert_eq!(rows.instances.len(), 7);
    assert_eq!(rows.updates.len(), 21, "0 + 1 + … + 6 security updates");
    let mut delivered: HashSet<String> = HashSet::new();
    let mut instance_batches = 0;
    for b in &seen {
        match b {
            ComplianceBatch::Instances(i) => {
                instance_batches += 1;
                assert!(i.len() <= 3, "{} instances in a batch of 3", i.len());
                for row in i {
                    assert!(delivered.insert(row.id.clone()), "{} twice", row.id);
                }
            }
            ComplianceBatch::Updates(u) => {
                let owners: BTreeSet<&str> = u.iter().map(|u| u.instance_id.as_str()).collect();
                assert!(
                    u.len() <= 4 || owners.len() == 1,
                    "{} updates of {owners:?} in a batch of 4",
                    u.len()
                );
                for o in owners {
                    assert!(delivered.contains(o), "updates of {o} before it");
                }
            }
        }
    }
    assert_eq!(instance_batches, 3, "7 instances, 3 a batch");
    // Counts only: no update batch at all.
    let (rows, seen) = compliance_batches(s, &scope, &[], small).await.unwrap();
    assert_eq!(rows.instances.len(), 7);
    assert!(
        seen.iter()
            .all(|b| matches!(b, ComplianceBatch::Instances(_)))
    );
    assert_eq!(rows.instances.iter().map(|i| i.pending.bug).sum::<i64>(), 7);
    // Stopping after the first batch reads no further.
    let mut calls = 0;
    s.compliance_scan(&scope, SECURITY_ONLY, small, &mut |_| {
        calls += 1;
        std::ops::ControlFlow::Break(())
    })
    .await
    .unwrap();
    assert_eq!(calls, 1);
    // A group, paged the same way.
    let g = group(&c, "g", OsFamily::Linux, at(1, 0));
    s.managed_instance_group_create(&g, None).await.unwrap();
    for h in &hosts[2..] {
        s.managed_instance_group_attach(&g.id, &h.id, None)
            .await
            .unwrap();
    }
    let (rows, _) = compliance_batches(
        s,
        &ComplianceScope::Group(g.id.clone()),
        SECURITY_ONLY,
        ComplianceBatches {
            instances: 2,
            updates: 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(rows.instances.len(), 5);
    assert_eq!(rows.updates.len(), 2 + 3 + 4 + 5 + 6);
}

/// A scope of more compartments than either backend takes bound parameters (SQLite 32766,
/// PostgreSQL 65535): the ids are one bound JSON array.
async fn compliance_scope_of_many_compartments(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "one", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert_many(std::slice::from_ref(&mi))
        .await
        .unwrap();
    let upload = full(
        vec![],
        vec![pkg_update(
            "openssl",
            UpdateClassification::Security,
            &["CVE-2024-0727"],
            &[],
        )],
    );
    s.inventory_apply(&mi.id, &root, &upload, at(10, 0))
        .await
        .unwrap();
    let mut ids: Vec<String> = (0..70_000)
        .map(|_| new_ocid(ResourceKind::Compartment))
        .collect();
    ids.push(c.clone());
    let rows = compliance_rows(s, &ComplianceScope::Compartments(ids), SECURITY_ONLY)
        .await
        .unwrap();
    assert_eq!(rows.instances.len(), 1);
    assert_eq!(rows.instances[0].id, mi.id);
    assert_eq!(rows.updates.len(), 1);
}

async fn related_cves(s: &dyn Store, tenancy: &str, name: &str) -> Vec<String> {
    s.erratum_find(tenancy, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no erratum {name}"))
        .related_cves
}

/// An erratum's CVEs are the ones agents reported for it and the current OSV record's: a newer
/// record that names fewer CVEs drops only those it had added, never one an agent reported.
async fn errata_cves_keep_what_agents_reported(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let deb = on(
        instance(&c, "deb", OsFamily::Linux, at(1, 0)),
        "Debian GNU/Linux",
        "12",
    );
    s.managed_instance_insert_many(std::slice::from_ref(&deb))
        .await
        .unwrap();
    // The agent names DSA-5900-1 itself, with CVEs of its own.
    let mut updates = debian_updates();
    updates[0] = update_of(
        "openssl",
        "3.0.11-1~deb12u1",
        "3.0.11-1~deb12u2",
        UpdateClassification::Security,
        &["CVE-2023-9999", "CVE-2024-0001"],
        &["DSA-5900-1"],
    );
    let upload = full(vec![], updates);
    s.inventory_apply(&deb.id, &root, &upload, at(5, 0))
        .await
        .unwrap();
    assert_eq!(
        related_cves(s, &root, "DSA-5900-1").await,
        ["CVE-2023-9999", "CVE-2024-0001"]
    );
    let record = |modified: i64, aliases: &[&str]| {
        osv(
            "DSA-5900-1",
            modified,
            "Debian:12",
            "openssl",
            "3.0.11-1~deb12u2",
            aliases,
        )
    };
    s.errata_import(
        &root,
        &[record(10, &["CVE-2024-0001", "CVE-2024-0002"])],
        at(20, 0),
    )
    .await
    .unwrap();
    assert_eq!(
        related_cves(s, &root, "DSA-5900-1").await,
        ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"]
    );
    // A newer version of the record no longer names CVE-2024-0001 nor CVE-2024-0002: the
    // agent's stay, the record's own goes.
    let summary = s
        .errata_import(&root, &[record(11, &["CVE-2024-0003"])], at(21, 0))
        .await
        .unwrap();
    assert_eq!(summary.updated, 1);
    assert_eq!(
        related_cves(s, &root, "DSA-5900-1").await,
        ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0003"]
    );
    // The agent reporting again keeps the record's CVEs.
    s.inventory_apply(&deb.id, &root, &upload, at(22, 0))
        .await
        .unwrap();
    assert_eq!(
        related_cves(s, &root, "DSA-5900-1").await,
        ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0003"]
    );
    // A record no agent reported follows the record exactly.
    let only_osv = |modified: i64, aliases: &[&str]| {
        osv(
            "DSA-5901-1",
            modified,
            "Debian:12",
            "zlib1g",
            "1:1.2.13.dfsg-1+deb12u1",
            aliases,
        )
    };
    s.errata_import(
        &root,
        &[only_osv(10, &["CVE-2024-0100", "CVE-2024-0101"])],
        at(23, 0),
    )
    .await
    .unwrap();
    s.errata_import(&root, &[only_osv(11, &["CVE-2024-0101"])], at(24, 0))
        .await
        .unwrap();
    assert_eq!(
        related_cves(s, &root, "DSA-5901-1").await,
        ["CVE-2024-0101"]
    );
    // The updates themselves carry the agent's CVEs and the current record's.
    let updates = all_updates(s, &deb.id).await;
    assert_eq!(
        by_name(&updates)["openssl"].update.cves,
        ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0003"]
    );
    assert_eq!(by_name(&updates)["zlib1g"].update.cves, ["CVE-2024-0101"]);
}

/// A batch larger than any statement chunk, touching many instances, lands whole; one bad
/// reference later in the batch (an unknown tenancy) leaves nothing behind.
async fn errata_import_is_set_based_and_all_or_nothing_at_scale(db: Db) {
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let hosts: Vec<ManagedInstance> = (0..20)
        .map(|i| {
            on(
                instance(&c, &format!("deb-{i:02}"), OsFamily::Linux, at(1, 0)),
                "Debian GNU/Linux",
                "12",
            )
        })
        .collect();
    s.managed_instance_insert_many(&hosts).await.unwrap();
    let updates: Vec<PackageUpdate> = (0..20)
        .map(|p| {
            update_of(
                &format!("pkg{p}"),
                "1.0-1",
                "1.0-2",
                UpdateClassification::Bug,
                &[],
                &[],
            )
        })
        .collect();
    for h in &hosts {
        s.inventory_apply(&h.id, &root, &full(vec![], updates.clone()), at(5, 0))
            .await
            .unwrap();
    }
    // 600 records (more than a statement chunk held), 30 per package.
    let records: Vec<ImportRecord> = (0..600)
        .map(|i| {
            osv(
                &format!("DSA-{}-1", 10_000 + i),
                10,
                "Debian:12",
                &format!("pkg{}", i % 20),
                "1.0-2",
                &[&format!("CVE-2024-{:05}", 10_000 + i)],
            )
        })
        .collect();
    let missing = s
        .errata_import("ocid1.tenancy.oc1..nothing", &records, at(20, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::MissingReference(_)),
        "{missing}"
    );
    assert_eq!(counts(s, &hosts[0].id).await.security, 0);
    assert!(erratum_names(s, &hosts[0].id).await.is_empty());

    let summary = s.errata_import(&root, &records, at(20, 0)).await.unwrap();
    assert_eq!(summary.created, 600);
    assert_eq!(summary.updates_changed, 20 * 20);
    assert_eq!(summary.instances_changed, 20);
    for h in [&hosts[0], &hosts[19]] {
        assert_eq!(counts(s, &h.id).await.security, 20);
        assert_eq!(erratum_names(s, &h.id).await.len(), 600);
        let u = all_updates(s, &h.id).await;
        assert_eq!(by_name(&u)["pkg0"].update.cves.len(), 30);
        assert_eq!(by_name(&u)["pkg0"].errata.len(), 30);
    }
    assert_eq!(
        related_cves(s, &root, "DSA-10041-1").await,
        ["CVE-2024-10041"]
    );
}

/// Migration 0010: the indexes the errata read paths use.
async fn errata_read_paths_have_indexes(db: Db) {
    use sqlx::Row;
    let names: Vec<String> = match db.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'errata'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'errata'")
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect()
        }
    };
    for want in ["errata_by_issue_date", "errata_by_name"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
}

/// Queued work and the leases agents hold outlive the store that wrote them: a store opened
/// afterwards (osmd restarted) finds the same queue, in the same order, and the same leases
/// with their deadlines (SQLite keeps both in memory, read back from the rows when it opens).
async fn open_work_outlives_the_store(db: Db) {
    use osm_core::lifecycle::Event;
    let s = &*db.store;
    let root = tenancy(s).await;
    let c = new_compartment(s, &root, "c").await;
    let mi = instance(&c, "web-01", OsFamily::Linux, at(1, 0));
    s.managed_instance_insert(&mi).await.unwrap();
    let action = WorkAction::UpdateAll {
        update_type: UpdateType::All,
    };
    let wrs: Vec<WorkRequest> = (0..4)
        .map(|i| osm_core::work::work_request_for(&mi, &action, None, None, at(2 + i, 0)))
        .collect();
    s.work_request_insert_many(&wrs, &[]).await.unwrap();
    let lease = jiff::SignedDuration::from_mins(5);
    let claim = |limit| Claim {
        instance_id: mi.id.clone(),
        limit,
    };
    let first = s
        .work_request_dispatch(&[], &[claim(1)], at(10, 0), lease)
        .await
        .unwrap();
    assert_eq!(first.claimed[0][0].id, wrs[0].id);
    // The last one is canceled while queued: it leaves the queue for good.
    s.work_request_transition(
        &wrs[3].id,
        &[WorkRequestStatus::Accepted],
        WorkRequestStatus::Canceled,
        at(11, 0),
        None,
    )
    .await
    .unwrap();

    let after = db.reopen().await;
    let renewed = after
        .work_request_renew_leases(&mi.id, at(20, 0), lease)
        .await
        .unwrap();
    assert_eq!(
        renewed,
        [(wrs[0].id.clone(), WorkRequestStatus::InProgress)]
    );
    let claimed = after
        .work_request_dispatch(&[], &[claim(10)], at(30, 0), lease)
        .await
        .unwrap();
    let got: Vec<&str> = claimed.claimed[0].iter().map(|w| w.id.as_str()).collect();
    assert_eq!(got, [wrs[1].id.as_str(), wrs[2].id.as_str()]);
    let report = AgentOutcomes {
        instance_id: mi.id.clone(),
        items: vec![Completion {
            id: wrs[0].id.clone(),
            event: Event::Succeed,
            errors: vec![],
            log: vec![],
        }],
    };
    let done = after
        .work_request_dispatch(&[report], &[], at(40, 0), lease)
        .await
        .unwrap();
    assert_eq!(
        done.completed[0][0].as_ref().unwrap().status,
        WorkRequestStatus::Succeeded
    );
    // Renewed at 20 s, the first lease would have run until 5 min 20 s; the two claimed at
    // 30 s run out at 5 min 30 s.
    assert!(
        after
            .work_request_expire_leases(at(5 * 60 + 29, 0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let expired = after
        .work_request_expire_leases(at(5 * 60 + 31, 0), 10)
        .await
        .unwrap();
    assert_eq!(expired.len(), 2);
    assert!(expired.contains(&wrs[1].id) && expired.contains(&wrs[2].id));
    assert!(
        after
            .work_request_dispatch(&[], &[claim(10)], at(6 * 60, 0), lease)
            .await
            .unwrap()
            .claimed[0]
            .is_empty(),
        "nothing left to claim"
    );
}
