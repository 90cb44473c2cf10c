//! The store conformance suite: every case runs on SQLite and on PostgreSQL (a fresh database
//! per test; PostgreSQL must answer at `OSM_TEST_PG_URL` — the test fails, never skips, when it
//! does not).

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::page::{Cursor, KeyValue, PageRequest, SortKey};
use osm_core::*;
use osm_store::*;

struct Fixture {
    store: Arc<dyn Store>,
    tenancy: Compartment,
    admin: User,
    _dir: tempfile::TempDir,
}

async fn open(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("osm.db").display()),
        Backend::Postgres => fresh_pg().await,
    };
    let store = connect(&url).await.expect("store opens");
    let b = bootstrap_data();
    assert!(store.bootstrap(&b).await.unwrap());
    Fixture {
        store,
        tenancy: b.tenancy,
        admin: b.admin,
        _dir: dir,
    }
}

async fn fresh_pg() -> String {
    use sqlx::Connection;
    let admin = std::env::var("OSM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is not reachable ({e}); run the tests with scripts/test")
        });
    let name = format!("osm_store_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

/// Now, at the store's precision (microseconds).
fn now() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap()
}

fn bootstrap_data() -> Bootstrap {
    let t = now();
    let tenancy = Compartment {
        id: new_ocid(ResourceKind::Tenancy),
        parent_id: None,
        name: "root".into(),
        description: "root".into(),
        lifecycle_state: CompartmentState::Active,
        time_created: t,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        version: 1,
    };
    let admin = User {
        id: new_ocid(ResourceKind::User),
        tenancy_id: tenancy.id.clone(),
        name: "admin".into(),
        description: "".into(),
        time_created: t,
    };
    Bootstrap {
        admin_key: ApiKey {
            user_id: admin.id.clone(),
            fingerprint: "aa:bb".into(),
            public_key_pem: "PEM".into(),
            time_created: t,
        },
        admin_group: Group {
            id: new_ocid(ResourceKind::Group),
            name: "Administrators".into(),
            description: "".into(),
            time_created: t,
        },
        tenancy,
        admin,
    }
}

fn compartment(parent: &str, name: &str, at: Timestamp) -> Compartment {
    Compartment {
        id: new_ocid(ResourceKind::Compartment),
        parent_id: Some(parent.into()),
        name: name.into(),
        description: "d".into(),
        lifecycle_state: CompartmentState::Active,
        time_created: at,
        freeform_tags: [("k".to_string(), "v".to_string())].into(),
        defined_tags: Default::default(),
        version: 1,
    }
}

fn instance(compartment: &str, name: &str, family: OsFamily, at: Timestamp) -> ManagedInstance {
    ManagedInstance {
        id: new_ocid(ResourceKind::ManagedInstance),
        compartment_id: compartment.into(),
        display_name: name.into(),
        description: None,
        os_name: Some("Debian".into()),
        os_version: None,
        os_kernel_version: None,
        os_family: family,
        status: ManagedInstanceStatus::Normal,
        last_checkin: Some(at),
        last_boot: None,
        is_reboot_required: true,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: UpdateCounts {
            security: 1,
            bug: 2,
            enhancement: 3,
            other: 4,
        },
        time_created: at,
        version: 1,
    }
}

fn group(compartment: &str, name: &str, family: OsFamily, at: Timestamp) -> ManagedInstanceGroup {
    ManagedInstanceGroup {
        id: new_ocid(ResourceKind::ManagedInstanceGroup),
        compartment_id: compartment.into(),
        display_name: name.into(),
        description: Some("g".into()),
        os_family: family,
        lifecycle_state: LifecycleState::Active,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        time_created: at,
        version: 1,
        member_count: 0,
    }
}

fn job(
    compartment: &str,
    groups: Vec<IdName>,
    instances: Vec<IdName>,
    next: Timestamp,
) -> ScheduledJob {
    ScheduledJob {
        id: new_ocid(ResourceKind::ScheduledJob),
        compartment_id: compartment.into(),
        display_name: "job".into(),
        description: None,
        schedule_type: ScheduleType::Recurring,
        time_next_execution: Some(next),
        time_last_execution: None,
        interval_type: Some(IntervalType::Day),
        interval_value: Some(2),
        managed_instances: instances,
        managed_instance_groups: groups,
        operation_type: OperationType::UpdateAll,
        update_type: Some(UpdateType::Security),
        package_names: vec![],
        update_names: vec![],
        lifecycle_state: LifecycleState::Active,
        freeform_tags: Default::default(),
        defined_tags: Default::default(),
        os_family: OsFamily::Linux,
        is_restricted: false,
        time_zone: Some("Europe/Paris".into()),
        time_created: now(),
        version: 1,
    }
}

fn retry(token: &str, resource: &str) -> RetryRecord {
    RetryRecord {
        principal_id: "ocid1.user.oc1..u".into(),
        token: token.into(),
        operation: "op".into(),
        request_hash: "h".into(),
        resource_id: resource.into(),
        time_created: now(),
    }
}

fn page(sort: SortKey, order: SortOrder, limit: u32) -> PageRequest {
    PageRequest {
        sort,
        order,
        limit: Some(limit),
        after: None,
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { super::$case(super::open(osm_store::Backend::Sqlite).await).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { super::$case(super::open(osm_store::Backend::Postgres).await).await }
            }
        )*
    };
}

conformance!(
    bootstrap_once,
    identity_grants,
    compartment_tree_and_rules,
    instances_and_filters,
    keyset_pages_under_concurrent_inserts,
    versions_and_not_found,
    retry_token_rolls_back,
    group_membership_rules,
    scheduled_jobs,
    work_requests_logs_and_children,
);

async fn bootstrap_once(f: Fixture) {
    assert!(
        !f.store.bootstrap(&bootstrap_data()).await.unwrap(),
        "a second bootstrap changes nothing"
    );
    assert_eq!(
        f.store.tenancy_get().await.unwrap().unwrap().id,
        f.tenancy.id
    );
    let key = f
        .store
        .api_key_get(&f.admin.id, "aa:bb")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.public_key_pem, "PEM");
    assert!(
        f.store
            .api_key_get(&f.admin.id, "cc:dd")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        f.store
            .user_granted_compartments(&f.admin.id)
            .await
            .unwrap(),
        vec![f.tenancy.id.clone()]
    );
    f.store.ping().await.unwrap();
}

async fn identity_grants(f: Fixture) {
    let c = compartment(&f.tenancy.id, "team", now());
    f.store.compartment_create(&c, None).await.unwrap();
    let user = User {
        id: new_ocid(ResourceKind::User),
        tenancy_id: f.tenancy.id.clone(),
        name: "u".into(),
        description: "".into(),
        time_created: now(),
    };
    f.store.user_create(&user).await.unwrap();
    assert_eq!(f.store.user_get(&user.id).await.unwrap().unwrap().name, "u");
    let g = Group {
        id: new_ocid(ResourceKind::Group),
        name: "team".into(),
        description: "".into(),
        time_created: now(),
    };
    f.store.user_group_create(&g).await.unwrap();
    f.store
        .user_group_add_member(&g.id, &user.id)
        .await
        .unwrap();
    f.store.user_group_grant(&g.id, &c.id).await.unwrap();
    assert_eq!(
        f.store.user_granted_compartments(&user.id).await.unwrap(),
        vec![c.id.clone()]
    );
    assert!(matches!(
        f.store.user_group_add_member(&g.id, &user.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        f.store
            .user_group_grant(&g.id, "ocid1.compartment.oc1..none")
            .await,
        Err(StoreError::MissingReference(_))
    ));
}

async fn compartment_tree_and_rules(f: Fixture) {
    let t = now();
    let a = compartment(&f.tenancy.id, "a", t);
    let b = compartment(&a.id, "b", t + SignedDuration::from_secs(1));
    let c = compartment(&b.id, "c", t + SignedDuration::from_secs(2));
    for x in [&a, &b, &c] {
        f.store.compartment_create(x, None).await.unwrap();
    }
    let dup = compartment(&f.tenancy.id, "a", t);
    assert!(matches!(
        f.store.compartment_create(&dup, None).await,
        Err(StoreError::Conflict(_))
    ));
    let orphan = compartment("ocid1.compartment.oc1..none", "x", t);
    assert!(matches!(
        f.store.compartment_create(&orphan, None).await,
        Err(StoreError::MissingReference(_))
    ));

    let filter = CompartmentFilter {
        parent_id: f.tenancy.id.clone(),
        in_subtree: true,
        ..Default::default()
    };
    let all = f
        .store
        .compartment_list(&filter, &PageRequest::all())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    let direct = f
        .store
        .compartment_list(
            &CompartmentFilter {
                in_subtree: false,
                ..filter.clone()
            },
            &PageRequest::all(),
        )
        .await
        .unwrap();
    assert_eq!(
        direct.items.iter().map(|c| &c.name).collect::<Vec<_>>(),
        ["a"]
    );
    let named = f
        .store
        .compartment_list(
            &CompartmentFilter {
                name: Some("c".into()),
                ..filter.clone()
            },
            &PageRequest::all(),
        )
        .await
        .unwrap();
    assert_eq!(named.items[0].id, c.id);
    assert_eq!(
        named.items[0].freeform_tags.get("k").map(String::as_str),
        Some("v")
    );
    assert_eq!(f.store.compartment_tree().await.unwrap().len(), 4);

    // A compartment with children or resources is not deleted.
    let err = f.store.compartment_delete(&b.id, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("1 compartment")),
        "{err:?}"
    );
    f.store
        .managed_instance_group_create(&group(&c.id, "g", OsFamily::Linux, t), None)
        .await
        .unwrap();
    let err = f.store.compartment_delete(&c.id, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("managed instance group")),
        "{err:?}"
    );

    let renamed = f
        .store
        .compartment_update(
            &a.id,
            &CompartmentPatch {
                description: Some("new".into()),
                ..Default::default()
            },
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!((renamed.description.as_str(), renamed.version), ("new", 2));
    let empty = compartment(&f.tenancy.id, "empty", t);
    f.store.compartment_create(&empty, None).await.unwrap();
    assert!(matches!(
        f.store
            .compartment_update(
                &empty.id,
                &CompartmentPatch {
                    name: Some("a".into()),
                    ..Default::default()
                },
                None
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    f.store
        .compartment_delete(&empty.id, Some(1))
        .await
        .unwrap();
    assert_eq!(
        f.store
            .compartment_get(&empty.id)
            .await
            .unwrap()
            .unwrap()
            .lifecycle_state,
        CompartmentState::Deleted
    );
    // Its name is free again.
    f.store
        .compartment_create(&compartment(&f.tenancy.id, "empty", t), None)
        .await
        .unwrap();
}

async fn instances_and_filters(f: Fixture) {
    let t = now();
    let lin = instance(&f.tenancy.id, "lin", OsFamily::Linux, t);
    let win = instance(
        &f.tenancy.id,
        "win",
        OsFamily::Windows,
        t + SignedDuration::from_secs(1),
    );
    f.store
        .managed_instance_insert_many(&[lin.clone(), win.clone()])
        .await
        .unwrap();
    assert_eq!(
        f.store
            .managed_instance_get(&lin.id)
            .await
            .unwrap()
            .unwrap(),
        lin,
        "round trip keeps every field"
    );
    assert!(matches!(
        f.store.managed_instance_insert(&lin).await,
        Err(StoreError::Conflict(_))
    ));
    let base = ManagedInstanceFilter {
        compartment_id: f.tenancy.id.clone(),
        ..Default::default()
    };
    let list = |filter: ManagedInstanceFilter| {
        let store = f.store.clone();
        async move {
            store
                .managed_instance_list(&filter, &PageRequest::all())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|m| m.display_name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(base.clone()).await, ["win", "lin"], "newest first");
    assert_eq!(
        list(ManagedInstanceFilter {
            os_family: Some(OsFamily::Windows),
            ..base.clone()
        })
        .await,
        ["win"]
    );
    assert_eq!(
        list(ManagedInstanceFilter {
            os_family: Some(OsFamily::All),
            ..base.clone()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        list(ManagedInstanceFilter {
            display_name: Some("lin".into()),
            ..base.clone()
        })
        .await,
        ["lin"]
    );
    let updated = f
        .store
        .managed_instance_update(
            &lin.id,
            &ManagedInstancePatch {
                is_data_collection_authorized: Some(true),
                notification_topic_id: None,
            },
            Some(1),
        )
        .await
        .unwrap();
    assert!(updated.is_data_collection_authorized && updated.version == 2);
    assert_eq!(
        f.store.managed_instance_counts(&lin.id).await.unwrap(),
        (0, 0)
    );
}

async fn keyset_pages_under_concurrent_inserts(f: Fixture) {
    let t = now();
    let mut batch = vec![];
    for i in 0..30 {
        // Pairs share a timestamp so the id tie-break matters.
        batch.push(group(
            &f.tenancy.id,
            &format!("g{:02}", i % 15),
            OsFamily::Linux,
            t + SignedDuration::from_secs(i / 2),
        ));
    }
    for g in &batch {
        f.store
            .managed_instance_group_create(g, None)
            .await
            .unwrap();
    }
    let filter = GroupFilter {
        compartment_id: f.tenancy.id.clone(),
        ..Default::default()
    };
    for (sort, order) in [
        (SortKey::TimeCreated, SortOrder::Desc),
        (SortKey::TimeCreated, SortOrder::Asc),
        (SortKey::Name, SortOrder::Asc),
        (SortKey::Name, SortOrder::Desc),
    ] {
        let mut req = page(sort, order, 7);
        let mut seen = vec![];
        let mut inserted = 0;
        loop {
            let p = f
                .store
                .managed_instance_group_list(&filter, &req)
                .await
                .unwrap();
            assert!(p.items.len() <= 7);
            seen.extend(p.items.iter().map(|g| g.id.clone()));
            // A row inserted behind the cursor must not shift later pages.
            if inserted < 2 {
                let late = group(
                    &f.tenancy.id,
                    "zz-late",
                    OsFamily::Linux,
                    t + SignedDuration::from_secs(1000),
                );
                f.store
                    .managed_instance_group_create(&late, None)
                    .await
                    .unwrap();
                inserted += 1;
            }
            match p.next {
                Some(c) => req.after = Some(c),
                None => break,
            }
        }
        let originals: std::collections::HashSet<_> = batch.iter().map(|g| g.id.clone()).collect();
        let seen_originals: Vec<_> = seen
            .iter()
            .filter(|id| originals.contains(*id))
            .cloned()
            .collect();
        assert_eq!(
            seen_originals.len(),
            30,
            "{sort:?} {order:?}: every original row exactly once"
        );
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort:?} {order:?}: no row twice");
    }
    // A cursor from another sort is refused when decoded by the API; the store trusts it but
    // must not fail on an unusual one.
    let odd = PageRequest {
        after: Some(Cursor {
            sort: SortKey::Name,
            order: SortOrder::Asc,
            key: KeyValue::Text("m".into()),
            id: "x".into(),
        }),
        ..page(SortKey::Name, SortOrder::Asc, 5)
    };
    f.store
        .managed_instance_group_list(&filter, &odd)
        .await
        .unwrap();
}

async fn versions_and_not_found(f: Fixture) {
    let g = group(&f.tenancy.id, "v", OsFamily::Linux, now());
    f.store
        .managed_instance_group_create(&g, None)
        .await
        .unwrap();
    let patch = ManagedInstanceGroupPatch {
        display_name: Some("v2".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.store
            .managed_instance_group_update(&g.id, &patch, Some(7))
            .await,
        Err(StoreError::VersionMismatch)
    ));
    assert!(matches!(
        f.store
            .managed_instance_group_update("ocid1.x.oc1..none", &patch, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        f.store
            .managed_instance_group_update(&g.id, &patch, Some(1))
            .await
            .unwrap()
            .version,
        2
    );
    assert!(matches!(
        f.store.managed_instance_group_delete(&g.id, Some(1)).await,
        Err(StoreError::VersionMismatch)
    ));
    f.store
        .managed_instance_group_delete(&g.id, Some(2))
        .await
        .unwrap();
    assert_eq!(
        f.store
            .managed_instance_group_get(&g.id)
            .await
            .unwrap()
            .unwrap()
            .lifecycle_state,
        LifecycleState::Deleted
    );
    let filter = GroupFilter {
        compartment_id: f.tenancy.id.clone(),
        ..Default::default()
    };
    assert!(
        f.store
            .managed_instance_group_list(&filter, &PageRequest::all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let deleted = GroupFilter {
        lifecycle_state: Some(LifecycleState::Deleted),
        ..filter
    };
    assert_eq!(
        f.store
            .managed_instance_group_list(&deleted, &PageRequest::all())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

async fn retry_token_rolls_back(f: Fixture) {
    let first = group(&f.tenancy.id, "first", OsFamily::Linux, now());
    f.store
        .managed_instance_group_create(&first, Some(&retry("t1", &first.id)))
        .await
        .unwrap();
    let second = group(&f.tenancy.id, "second", OsFamily::Linux, now());
    assert!(matches!(
        f.store
            .managed_instance_group_create(&second, Some(&retry("t1", &second.id)))
            .await,
        Err(StoreError::RetryTokenUsed)
    ));
    assert!(
        f.store
            .managed_instance_group_get(&second.id)
            .await
            .unwrap()
            .is_none(),
        "the losing create left nothing behind"
    );
    let rec = f
        .store
        .retry_record_get("ocid1.user.oc1..u", "t1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.resource_id, first.id);
    assert_eq!(
        f.store
            .retry_record_purge(now() + SignedDuration::from_secs(1))
            .await
            .unwrap(),
        1
    );
    assert!(
        f.store
            .retry_record_get("ocid1.user.oc1..u", "t1")
            .await
            .unwrap()
            .is_none()
    );
    f.store.retry_record_put(&retry("t2", "x")).await.unwrap();
    assert!(matches!(
        f.store.retry_record_put(&retry("t2", "x")).await,
        Err(StoreError::RetryTokenUsed)
    ));
}

async fn group_membership_rules(f: Fixture) {
    let t = now();
    let g = group(&f.tenancy.id, "linux", OsFamily::Linux, t);
    let any = group(&f.tenancy.id, "any", OsFamily::All, t);
    f.store
        .managed_instance_group_create(&g, None)
        .await
        .unwrap();
    f.store
        .managed_instance_group_create(&any, None)
        .await
        .unwrap();
    let a = instance(&f.tenancy.id, "b-host", OsFamily::Linux, t);
    let b = instance(&f.tenancy.id, "a-host", OsFamily::Linux, t);
    let w = instance(&f.tenancy.id, "win", OsFamily::Windows, t);
    f.store
        .managed_instance_insert_many(&[a.clone(), b.clone(), w.clone()])
        .await
        .unwrap();
    f.store
        .managed_instance_group_attach(&g.id, &a.id, None)
        .await
        .unwrap();
    f.store
        .managed_instance_group_attach(&g.id, &b.id, None)
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .managed_instance_group_attach(&g.id, &a.id, None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        f.store
            .managed_instance_group_attach(&g.id, &w.id, None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    f.store
        .managed_instance_group_attach(&any.id, &w.id, None)
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .managed_instance_group_attach(&g.id, "ocid1.instance.oc1..none", None)
            .await,
        Err(StoreError::MissingReference(_))
    ));
    let members: Vec<String> = f
        .store
        .managed_instance_group_members(&g.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.display_name)
        .collect();
    assert_eq!(members, ["a-host", "b-host"]);
    assert_eq!(
        f.store
            .managed_instance_group_get(&g.id)
            .await
            .unwrap()
            .unwrap()
            .member_count,
        2
    );
    assert_eq!(
        f.store.managed_instance_groups_of(&a.id).await.unwrap()[0].id,
        g.id
    );
    f.store
        .managed_instance_group_detach(&g.id, &a.id, None)
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .managed_instance_group_detach(&g.id, &a.id, None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // A group a job targets cannot be deleted until the job is.
    let j = job(
        &f.tenancy.id,
        vec![IdName {
            id: g.id.clone(),
            display_name: "linux".into(),
        }],
        vec![],
        now(),
    );
    f.store.scheduled_job_create(&j, None).await.unwrap();
    assert!(matches!(
        f.store.managed_instance_group_delete(&g.id, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        f.store.managed_instance_counts(&b.id).await.unwrap().0,
        1,
        "job counted through the group"
    );
    f.store.scheduled_job_delete(&j.id, None).await.unwrap();
    f.store
        .managed_instance_group_delete(&g.id, None)
        .await
        .unwrap();
    assert!(
        f.store
            .managed_instance_groups_of(&b.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn scheduled_jobs(f: Fixture) {
    let t = now();
    let g = group(&f.tenancy.id, "g", OsFamily::Linux, t);
    f.store
        .managed_instance_group_create(&g, None)
        .await
        .unwrap();
    let mi = instance(&f.tenancy.id, "h", OsFamily::Linux, t);
    f.store.managed_instance_insert(&mi).await.unwrap();
    let by_group = job(
        &f.tenancy.id,
        vec![IdName {
            id: g.id.clone(),
            display_name: "g".into(),
        }],
        vec![],
        t + SignedDuration::from_hours(1),
    );
    let mut by_instance = job(
        &f.tenancy.id,
        vec![],
        vec![IdName {
            id: mi.id.clone(),
            display_name: "h".into(),
        }],
        t + SignedDuration::from_hours(48),
    );
    by_instance.operation_type = OperationType::Install;
    by_instance.package_names = vec!["bash".into(), "curl".into()];
    by_instance.update_type = None;
    f.store.scheduled_job_create(&by_group, None).await.unwrap();
    f.store
        .scheduled_job_create(&by_instance, None)
        .await
        .unwrap();
    let got = f
        .store
        .scheduled_job_get(&by_instance.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, by_instance, "round trip keeps every field and target");
    let base = ScheduledJobFilter {
        compartment_id: f.tenancy.id.clone(),
        ..Default::default()
    };
    let ids = |p: osm_core::page::Page<ScheduledJob>| {
        p.items.into_iter().map(|j| j.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(f
            .store
            .scheduled_job_list(
                &ScheduledJobFilter {
                    managed_instance_group_id: Some(g.id.clone()),
                    ..base.clone()
                },
                &PageRequest::all()
            )
            .await
            .unwrap()),
        vec![by_group.id.clone()]
    );
    assert_eq!(
        ids(f
            .store
            .scheduled_job_list(
                &ScheduledJobFilter {
                    managed_instance_id: Some(mi.id.clone()),
                    ..base.clone()
                },
                &PageRequest::all()
            )
            .await
            .unwrap()),
        vec![by_instance.id.clone()]
    );
    assert_eq!(
        ids(f
            .store
            .scheduled_job_list(
                &ScheduledJobFilter {
                    operation_type: Some(OperationType::Install),
                    ..base.clone()
                },
                &PageRequest::all()
            )
            .await
            .unwrap()),
        vec![by_instance.id.clone()]
    );
    assert_eq!(
        ids(f
            .store
            .scheduled_job_list(
                &ScheduledJobFilter {
                    next_execution_before: Some(t + SignedDuration::from_hours(24)),
                    ..base.clone()
                },
                &PageRequest::all()
            )
            .await
            .unwrap()),
        vec![by_group.id.clone()]
    );
    let listed = f
        .store
        .scheduled_job_list(&base, &PageRequest::all())
        .await
        .unwrap();
    assert!(
        listed
            .items
            .iter()
            .all(|j| j.managed_instances.len() + j.managed_instance_groups.len() == 1),
        "lists carry targets"
    );

    let mut changed = got.clone();
    changed.interval_value = Some(3);
    assert!(matches!(
        f.store.scheduled_job_replace(&changed, Some(5)).await,
        Err(StoreError::VersionMismatch)
    ));
    let replaced = f
        .store
        .scheduled_job_replace(&changed, Some(1))
        .await
        .unwrap();
    assert_eq!((replaced.interval_value, replaced.version), (Some(3), 2));
    let other = compartment(&f.tenancy.id, "other", t);
    f.store.compartment_create(&other, None).await.unwrap();
    f.store
        .scheduled_job_change_compartment(&by_instance.id, &other.id, Some(2), None)
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .scheduled_job_change_compartment(
                &by_instance.id,
                "ocid1.compartment.oc1..none",
                None,
                None
            )
            .await,
        Err(StoreError::MissingReference(_))
    ));
    f.store
        .scheduled_job_delete(&by_group.id, None)
        .await
        .unwrap();
    assert_eq!(
        f.store
            .scheduled_job_get(&by_group.id)
            .await
            .unwrap()
            .unwrap()
            .lifecycle_state,
        LifecycleState::Deleted
    );
    assert!(
        ids(f
            .store
            .scheduled_job_list(&base, &PageRequest::all())
            .await
            .unwrap())
        .is_empty()
    );
}

async fn work_requests_logs_and_children(f: Fixture) {
    let t = now();
    let mi = IdName {
        id: new_ocid(ResourceKind::ManagedInstance),
        display_name: "h".into(),
    };
    let wr = |parent: Option<&str>, at: Timestamp| WorkRequest {
        id: new_ocid(ResourceKind::WorkRequest),
        compartment_id: f.tenancy.id.clone(),
        operation_type: OperationType::UpdateAll,
        status: WorkRequestStatus::Accepted,
        description: Some("update".into()),
        message: None,
        managed_instance: Some(mi.clone()),
        os_family: OsFamily::Linux,
        percent_complete: 12.5,
        time_accepted: at,
        time_started: Some(at),
        time_finished: None,
        parent_id: parent.map(str::to_string),
        scheduled_job_id: Some("ocid1.osmsscheduledjob.oc1..j".into()),
        resources: vec![WorkRequestResource {
            entity_type: "MANAGED_INSTANCE".into(),
            action_type: WorkRequestActionType::InProgress,
            identifier: mi.id.clone(),
            name: None,
            entity_uri: "/x".into(),
        }],
        children_ids: vec![],
    };
    let parent = wr(None, t);
    let kids: Vec<WorkRequest> = (1..=3)
        .map(|i| wr(Some(&parent.id), t + SignedDuration::from_secs(i)))
        .collect();
    let same_time = t + SignedDuration::from_secs(10);
    let logs: Vec<(String, WorkRequestLogEntry)> = (0..5)
        .map(|i| {
            (
                parent.id.clone(),
                WorkRequestLogEntry {
                    message: format!("line {i}"),
                    timestamp: same_time,
                },
            )
        })
        .collect();
    let mut all = vec![parent.clone()];
    all.extend(kids.clone());
    f.store.work_request_insert_many(&all, &logs).await.unwrap();
    let got = f.store.work_request_get(&parent.id).await.unwrap().unwrap();
    assert_eq!(
        got.children_ids,
        kids.iter().map(|k| k.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(got.percent_complete, 12.5);
    assert_eq!(got.resources, parent.resources);
    let mut req = page(SortKey::TimeCreated, SortOrder::Asc, 2);
    let mut messages = vec![];
    loop {
        let p = f.store.work_request_logs(&parent.id, &req).await.unwrap();
        messages.extend(p.items.into_iter().map(|l| l.message));
        match p.next {
            Some(c) => req.after = Some(c),
            None => break,
        }
    }
    assert_eq!(
        messages,
        ["line 0", "line 1", "line 2", "line 3", "line 4"],
        "entries in the same microsecond keep their order"
    );
    assert!(
        f.store
            .work_request_errors(&parent.id, &PageRequest::all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let by_mi = WorkRequestFilter {
        compartment_id: f.tenancy.id.clone(),
        managed_instance_id: Some(mi.id.clone()),
        ..Default::default()
    };
    assert_eq!(
        f.store
            .work_request_list(&by_mi, &PageRequest::all())
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    assert_eq!(
        f.store
            .scheduled_job_work_requests("ocid1.osmsscheduledjob.oc1..j")
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(f.store.managed_instance_counts(&mi.id).await.unwrap().1, 4);
}

/// SQLite only: what a store acknowledged is in the file after the process drops it without
/// closing, and `backup_to` writes a copy that opens as a complete store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_durability_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("osm.db").display());
    let b = bootstrap_data();
    let g = group(&b.tenancy.id, "kept", OsFamily::Linux, now());
    {
        let store = connect(&url).await.unwrap();
        store.bootstrap(&b).await.unwrap();
        store.managed_instance_group_create(&g, None).await.unwrap();
        std::mem::forget(store); // no orderly close, as in a crash
    }
    let store = connect(&url).await.unwrap();
    assert_eq!(
        store
            .managed_instance_group_get(&g.id)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "kept"
    );
    let copy = dir.path().join("copy.db");
    store.backup_to(&copy).await.unwrap();
    assert!(
        matches!(store.backup_to(&copy).await, Err(StoreError::Conflict(_))),
        "never overwrites"
    );
    let restored = connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    assert_eq!(
        restored.tenancy_get().await.unwrap().unwrap().id,
        b.tenancy.id
    );
    assert!(
        restored
            .managed_instance_group_get(&g.id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn postgres_backup_points_at_pg_dump() {
    let store = connect(&fresh_pg().await).await.unwrap();
    let err = store
        .backup_to(std::path::Path::new("/tmp/never"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_dump"));
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(connect("mysql://x").await.is_err());
}
