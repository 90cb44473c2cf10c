//! The compliance report endpoint (`GET /osm/v1/reports/compliance`): scopes, filters and
//! figures checked against the per-instance update lists an SDK script would walk; reach
//! limited to grants (404 otherwise), and without a scope what the caller may read; details
//! capped; bad input answered 4xx. (That bad input changes nothing osmctl writes or sends is
//! `osmctl`'s `report_bad_input_changes_nothing`.)

use jiff::Timestamp;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::inventory::{Advisory, FullInventory, InventoryUpload, PackageUpdate, WindowsUpdate};
use osm_core::{OsFamily, UpdateClassification};
use serde_json::{Value, json};

use crate::helpers::spawn_app_with;
use crate::{Backend, TestApp, both_backends, instance, spawn_app};

both_backends!(
    report_scopes_filters_and_figures,
    report_reach_is_limited_to_grants,
    report_without_scope_covers_what_the_caller_may_read,
    report_details_are_capped,
    report_bad_input_is_refused
);

const REPORT: &str = "/osm/v1/reports/compliance";

fn update(name: &str, class: UpdateClassification, cves: &[&str]) -> PackageUpdate {
    PackageUpdate {
        name: name.into(),
        architecture: Some("amd64".into()),
        installed_version: "1.0-1".into(),
        available_version: "1.0-2".into(),
        update_type: class,
        cves: cves.iter().map(|c| c.to_string()).collect(),
        advisories: if class == UpdateClassification::Security {
            vec![Advisory {
                name: format!("DSA-{name}"),
                advisory_type: Some(UpdateClassification::Security),
                synopsis: None,
                issued: None,
            }]
        } else {
            vec![]
        },
        package_type: Some("deb".into()),
    }
}

/// An instance in `compartment` whose agent uploaded these updates (none: no upload at all).
async fn host(
    app: &TestApp,
    compartment: &str,
    name: &str,
    updates: Option<Vec<PackageUpdate>>,
) -> String {
    let mi = instance(compartment, name, OsFamily::Linux);
    app.store.managed_instance_insert(&mi).await.unwrap();
    if let Some(updates) = updates {
        let upload = InventoryUpload::Full(FullInventory {
            updates,
            ..Default::default()
        });
        app.store
            .inventory_apply(&mi.id, &app.tenancy, &upload, Timestamp::now())
            .await
            .unwrap();
    }
    mi.id
}

async fn report(app: &TestApp, query: &str) -> Value {
    let r = app.get(&format!("{REPORT}?{query}")).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()
}

fn by_name<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["displayName"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report:#}"))
}

fn names(report: &Value) -> Vec<String> {
    let mut n: Vec<String> = report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["displayName"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

/// What the N+1 way sees: the security updates of each instance through
/// `ListAvailableUpdatesForManagedInstance`, with their CVEs.
async fn security_updates_listed(app: &TestApp, id: &str) -> (usize, Vec<String>) {
    let r = app
        .get(&format!("/20190801/managedInstances/{id}/packages/updates"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let security: Vec<Value> = r
        .json::<Vec<Value>>()
        .into_iter()
        .filter(|u| u["updateType"] == "SECURITY")
        .collect();
    let mut cves: Vec<String> = security
        .iter()
        .flat_map(|u| u["relatedCves"].as_array().unwrap().clone())
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    cves.sort();
    cves.dedup();
    (security.len(), cves)
}

async fn report_scopes_filters_and_figures(b: Backend) {
    use UpdateClassification::*;
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let team = app.compartment(&t, "team").await;
    let inner = app.compartment(&team, "inner").await;
    let other = app.compartment(&t, "other").await;
    let web = host(
        &app,
        &team,
        "web",
        Some(vec![
            update("openssl", Security, &["CVE-2024-0727", "CVE-2023-5678"]),
            update("zlib1g", Security, &["CVE-2023-45853"]),
            update("libc6", Bug, &[]),
        ]),
    )
    .await;
    let db = host(
        &app,
        &inner,
        "db",
        Some(vec![
            update("openssl", Security, &["CVE-2024-0727"]),
            update("vim", Enhancement, &[]),
        ]),
    )
    .await;
    let clean = host(&app, &inner, "clean", Some(vec![update("bash", Bug, &[])])).await;
    let silent = host(&app, &inner, "silent", None).await;
    let _away = host(
        &app,
        &other,
        "away",
        Some(vec![update("curl", Security, &["CVE-2024-2398"])]),
    )
    .await;

    // The compartment alone, then its subtree.
    let r = report(&app, &format!("compartmentId={team}")).await;
    assert_eq!(names(&r), ["web"]);
    assert_eq!(r["scope"]["compartmentId"], team.as_str());
    assert_eq!(r["scope"]["compartmentIdInSubtree"], false);
    assert_eq!(r["scope"]["compartmentCount"], 1);
    let r = report(
        &app,
        &format!("compartmentId={team}&compartmentIdInSubtree=true"),
    )
    .await;
    assert_eq!(names(&r), ["clean", "db", "silent", "web"]);
    assert_eq!(r["scope"]["compartmentCount"], 2);
    assert_eq!(r["filters"]["severity"], "SECURITY");
    assert_eq!(r["filters"]["updateTypes"], json!(["SECURITY"]));
    assert_eq!(r["filters"]["details"], false);
    let s = &r["summary"];
    assert_eq!(s["instancesScanned"], 4);
    assert_eq!(s["instancesMissingUpdates"], 2);
    assert_eq!(s["instancesWithoutInventory"], 1);
    assert_eq!(s["missingUpdates"], 3);
    assert_eq!(s["missingSecurityUpdates"], 3);
    assert_eq!(s["distinctCves"], 3);
    assert!(s["timeOldestInventory"].is_string());
    // Worst first.
    let order: Vec<&str> = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(&order[..2], ["web", "db"]);
    let w = by_name(&r, "web");
    assert_eq!(w["id"], web.as_str());
    assert_eq!(w["compartmentId"], team.as_str());
    assert_eq!(w["osFamily"], "LINUX");
    assert_eq!(w["osName"], "Debian GNU/Linux");
    assert_eq!(
        (w["securityUpdates"].as_i64(), w["bugUpdates"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(w["missingUpdates"], 2);
    assert_eq!(
        w["relatedCves"],
        json!(["CVE-2023-45853", "CVE-2023-5678", "CVE-2024-0727"])
    );
    assert!(w["inventoryAgeSeconds"].as_i64().unwrap() >= 0);
    assert!(w.get("updates").is_none(), "no details asked");
    let q = by_name(&r, "silent");
    assert!(q.get("timeInventoryReported").is_none());
    assert!(q.get("inventoryAgeSeconds").is_none());
    assert_eq!(q["missingUpdates"], 0);
    assert_eq!(by_name(&r, "clean")["bugUpdates"], 1);
    assert_eq!(by_name(&r, "clean")["missingUpdates"], 0);

    // The report agrees with the per-instance lists, instance by instance.
    for id in [&web, &db, &clean, &silent] {
        let row = r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap();
        let (count, cves) = security_updates_listed(&app, id).await;
        assert_eq!(row["missingSecurityUpdates"], count as i64, "{row:#}");
        assert_eq!(row["relatedCves"], json!(cves), "{row:#}");
    }

    // Details: the updates with their versions, CVEs and advisories.
    let r = report(
        &app,
        &format!("compartmentId={team}&compartmentIdInSubtree=true&details=true"),
    )
    .await;
    let updates = by_name(&r, "web")["updates"].as_array().unwrap().clone();
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0],
        json!({"displayName": "openssl", "name": "openssl", "kind": "PACKAGE", "updateType": "SECURITY",
               "architecture": "amd64", "installedVersion": "1.0-1", "availableVersion": "1.0-2",
               "relatedCves": ["CVE-2024-0727", "CVE-2023-5678"], "advisories": ["DSA-openssl"]})
    );
    assert_eq!(by_name(&r, "clean")["updates"], json!([]));

    // Severity: bug fixes count too.
    let r = report(
        &app,
        &format!("compartmentId={team}&compartmentIdInSubtree=true&severity=BUG&details=true"),
    )
    .await;
    assert_eq!(r["filters"]["updateTypes"], json!(["SECURITY", "BUG"]));
    assert_eq!(r["summary"]["instancesMissingUpdates"], 3);
    assert_eq!(r["summary"]["missingUpdates"], 5);
    assert_eq!(r["summary"]["missingSecurityUpdates"], 3);
    let w = by_name(&r, "web")["updates"].as_array().unwrap().clone();
    let kinds: Vec<&str> = w
        .iter()
        .map(|u| u["updateType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SECURITY", "SECURITY", "BUG"]);

    // CVE filter (any case in, upper case out).
    let r = report(
        &app,
        &format!(
            "compartmentId={team}&compartmentIdInSubtree=true&cve=cve-2023-45853,CVE-2099-0001"
        ),
    )
    .await;
    assert_eq!(
        r["filters"]["cves"],
        json!(["CVE-2023-45853", "CVE-2099-0001"])
    );
    assert_eq!(r["summary"]["instancesMissingUpdates"], 1);
    assert_eq!(r["summary"]["missingUpdates"], 1);
    assert_eq!(by_name(&r, "web")["relatedCves"], json!(["CVE-2023-45853"]));
    assert_eq!(r["summary"]["instancesScanned"], 4);

    // The tenancy's whole tree, and a group.
    let r = report(
        &app,
        &format!("compartmentId={t}&compartmentIdInSubtree=true"),
    )
    .await;
    assert_eq!(r["summary"]["instancesScanned"], 5);
    assert_eq!(r["summary"]["instancesMissingUpdates"], 3);
    assert_eq!(r["scope"]["compartmentCount"], 4);
    let g = app.group(&team, "web-and-db").await;
    for mi in [&web, &db] {
        let r = app
            .post(
                &format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId={mi}"),
                None,
            )
            .await;
        assert!(r.status < 300, "{}", r.text());
    }
    let r = report(&app, &format!("managedInstanceGroupId={g}&details=true")).await;
    assert_eq!(names(&r), ["db", "web"]);
    assert_eq!(r["scope"]["managedInstanceGroupId"], g.as_str());
    assert_eq!(r["scope"]["managedInstanceGroupName"], "web-and-db");
    assert!(r["scope"].get("compartmentId").is_none());
    assert_eq!(r["summary"]["missingUpdates"], 3);
    app.stop().await;
}

/// A user whose only grant is `compartment`, and a client signing as it.
async fn limited_user(app: &TestApp, compartment: &str) -> osm_client::Client {
    app.user_granted("auditor", &[compartment]).await
}

async fn report_reach_is_limited_to_grants(b: Backend) {
    use UpdateClassification::*;
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let team = app.compartment(&t, "team").await;
    let inner = app.compartment(&team, "inner").await;
    let secret = app.compartment(&t, "secret").await;
    let mine = host(
        &app,
        &inner,
        "mine",
        Some(vec![update("a", Security, &["CVE-2024-0001"])]),
    )
    .await;
    let hidden = host(
        &app,
        &secret,
        "hidden",
        Some(vec![update("b", Security, &["CVE-2024-0002"])]),
    )
    .await;
    let team_group = app.group(&team, "mixed").await;
    let secret_group = app.group(&secret, "secret").await;
    for mi in [&mine, &hidden] {
        let r = app
            .post(
                &format!("/20190801/managedInstanceGroups/{team_group}/actions/attachManagedInstance?managedInstanceId={mi}"),
                None,
            )
            .await;
        assert!(r.status < 300, "{}", r.text());
    }
    let auditor = limited_user(&app, &team).await;
    let get = async |q: String| {
        let r = auditor.get(&format!("{REPORT}?{q}")).await.unwrap();
        (r.status, r.json::<Value>())
    };

    let (status, r) = get(format!("compartmentId={team}&compartmentIdInSubtree=true")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(names(&r), ["mine"]);
    let (status, r) = get(format!("compartmentId={inner}")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(names(&r), ["mine"]);
    // Out of reach looks like not found: the tenancy, a sibling, an unknown compartment.
    for c in [&t, &secret, &new_ocid(ResourceKind::Compartment)] {
        for subtree in ["true", "false"] {
            let (status, body) = get(format!(
                "compartmentId={c}&compartmentIdInSubtree={subtree}"
            ))
            .await;
            assert_eq!(status, 404, "{c}: {body}");
            assert_eq!(body["code"], "NotAuthorizedOrNotFound");
        }
    }
    let (status, _) = get(format!("managedInstanceGroupId={secret_group}")).await;
    assert_eq!(status, 404);
    let unknown = new_ocid(ResourceKind::ManagedInstanceGroup);
    let (status, _) = get(format!("managedInstanceGroupId={unknown}")).await;
    assert_eq!(status, 404);
    // A group in reach with a member out of reach: the member is left out.
    let (status, r) = get(format!("managedInstanceGroupId={team_group}&details=true")).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(names(&r), ["mine"]);
    assert_eq!(r["summary"]["distinctCves"], 1);
    // The administrator sees both.
    let r = report(&app, &format!("managedInstanceGroupId={team_group}")).await;
    assert_eq!(names(&r), ["hidden", "mine"]);
    // A deleted group is gone.
    let r = app
        .delete(
            &format!("/20190801/managedInstanceGroups/{secret_group}"),
            None,
        )
        .await;
    assert!(r.status < 300, "{}", r.text());
    let r = app
        .get(&format!("{REPORT}?managedInstanceGroupId={secret_group}"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    app.stop().await;
}

/// Without a scope the report covers every compartment the caller may read: the tenancy's
/// tree for the administrator (reported as the tenancy and its subtree), the subtrees of its
/// grants for a user who may not read the tenancy; a user granted nothing is told so.
async fn report_without_scope_covers_what_the_caller_may_read(b: Backend) {
    use UpdateClassification::*;
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let team = app.compartment(&t, "team").await;
    let inner = app.compartment(&team, "inner").await;
    let lab = app.compartment(&t, "lab").await;
    let secret = app.compartment(&t, "secret").await;
    host(
        &app,
        &inner,
        "mine",
        Some(vec![update("a", Security, &["CVE-2024-0001"])]),
    )
    .await;
    host(&app, &lab, "bench", Some(vec![update("b", Bug, &[])])).await;
    host(
        &app,
        &secret,
        "hidden",
        Some(vec![update("c", Security, &["CVE-2024-0002"])]),
    )
    .await;

    let r = report(&app, "").await;
    assert_eq!(
        r["scope"],
        json!({"compartmentId": t, "compartmentIdInSubtree": true, "compartmentCount": 5})
    );
    assert_eq!(names(&r), ["bench", "hidden", "mine"]);

    let auditor = app.user_granted("auditor", &[&team, &inner, &lab]).await;
    let r = auditor.get(REPORT).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r: Value = r.json();
    let mut roots = vec![team.clone(), lab.clone()];
    roots.sort();
    assert_eq!(
        r["scope"],
        json!({"compartmentIds": roots, "compartmentIdInSubtree": true, "compartmentCount": 3})
    );
    assert_eq!(
        names(&r),
        ["bench", "mine"],
        "nothing of the secret compartment"
    );
    assert_eq!(r["summary"]["instancesMissingUpdates"], 1);
    assert_eq!(r["summary"]["distinctCves"], 1);
    // With details and filters, the same scope.
    let r = auditor
        .get(&format!("{REPORT}?details=true&severity=BUG"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>()["summary"]["instancesMissingUpdates"], 2);

    let nobody = app.user_granted("nobody", &[]).await;
    let r = nobody.get(REPORT).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let body: Value = r.json();
    assert_eq!(body["code"], "NotAuthorizedOrNotFound");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("granted no compartment"), "{message}");
    assert!(!message.contains(&t), "names nothing: {message}");
    app.stop().await;
}

/// A report with details lists at most the configured number of updates: past it, a 413 that
/// says what to do; without details, or narrowed, the same fleet is reported.
async fn report_details_are_capped(b: Backend) {
    use UpdateClassification::*;
    let app = spawn_app_with(b, |s| s.report_max_detail_updates = 3).await;
    let t = app.tenancy.clone();
    let c = app.compartment(&t, "c").await;
    host(
        &app,
        &c,
        "web",
        Some(vec![
            update("openssl", Security, &["CVE-2024-0727"]),
            update("zlib1g", Security, &["CVE-2023-45853"]),
            update("libc6", Bug, &[]),
        ]),
    )
    .await;
    host(
        &app,
        &c,
        "db",
        Some(vec![
            update("openssl", Security, &["CVE-2024-0727"]),
            update("curl", Security, &["CVE-2024-2398"]),
        ]),
    )
    .await;
    let r = app
        .get(&format!("{REPORT}?compartmentId={c}&details=true"))
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    let body: Value = r.json();
    assert_eq!(body["code"], "ReportTooLarge");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("more than 3 missing updates"), "{message}");
    assert!(message.contains("without details"), "{message}");
    // The counts have no limit.
    let r = report(&app, &format!("compartmentId={c}")).await;
    assert_eq!(r["summary"]["missingUpdates"], 4);
    // Narrowed to three updates or fewer, details are listed.
    let r = report(
        &app,
        &format!("compartmentId={c}&details=true&cve=CVE-2024-0727,CVE-2024-2398"),
    )
    .await;
    assert_eq!(r["summary"]["missingUpdates"], 3);
    assert_eq!(by_name(&r, "db")["updates"].as_array().unwrap().len(), 2);
    // Bug fixes count too: two of them fix that CVE, but all five are too many.
    let r = app
        .get(&format!(
            "{REPORT}?compartmentId={c}&details=true&severity=BUG&cve=CVE-2024-0727"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app
        .get(&format!(
            "{REPORT}?compartmentId={c}&details=true&severity=BUG"
        ))
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    app.stop().await;
}

async fn report_bad_input_is_refused(b: Backend) {
    use UpdateClassification::*;
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let c = app.compartment(&t, "c").await;
    host(
        &app,
        &c,
        "web",
        Some(vec![update("openssl", Security, &["CVE-2024-0727"])]),
    )
    .await;
    let win = instance(&c, "win", OsFamily::Windows);
    app.store.managed_instance_insert(&win).await.unwrap();
    let upload = InventoryUpload::Full(FullInventory {
        windows_updates: vec![WindowsUpdate {
            name: "6f5a0001-5a1e-4c0d-9e11-0000004cc1d0".into(),
            display_name: "2024-02 Cumulative Update (KB5034441)".into(),
            update_type: Security,
            installed: false,
            installable: None,
            reboot_required: Some(true),
            kb_article_ids: vec!["5034441".into()],
            description: None,
            size_in_bytes: None,
        }],
        ..Default::default()
    });
    app.store
        .inventory_apply(&win.id, &t, &upload, Timestamp::now())
        .await
        .unwrap();
    let g = app.group(&c, "g").await;
    let good = report(
        &app,
        &format!("compartmentId={t}&compartmentIdInSubtree=true&details=true"),
    )
    .await;
    // A Windows instance's pending security update is reported with its title.
    let w = by_name(&good, "win");
    assert_eq!(w["missingUpdates"], 1);
    assert_eq!(w["updates"][0]["kind"], "WINDOWS_UPDATE");
    assert_eq!(
        w["updates"][0]["displayName"],
        "2024-02 Cumulative Update (KB5034441)"
    );

    let cves: Vec<String> = (0..101)
        .map(|n| format!("CVE-2024-{:04}", 1000 + n))
        .collect();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("compartmentId={c}&managedInstanceGroupId={g}"),
            "InvalidParameter",
            "not both",
        ),
        (
            format!("managedInstanceGroupId={g}&compartmentIdInSubtree=true"),
            "InvalidParameter",
            "compartmentIdInSubtree",
        ),
        (
            "compartmentId=nope".into(),
            "InvalidParameter",
            "compartmentId",
        ),
        (
            "managedInstanceGroupId=nope".into(),
            "InvalidParameter",
            "managedInstanceGroupId",
        ),
        (
            format!("compartmentId={c}&compartmentIdInSubtree=yes"),
            "InvalidParameter",
            "true or false",
        ),
        (
            format!("compartmentId={c}&details=1"),
            "InvalidParameter",
            "details",
        ),
        (
            format!("compartmentId={c}&severity=CRITICAL"),
            "InvalidParameter",
            "SECURITY, BUG, ENHANCEMENT or OTHER",
        ),
        (
            format!("compartmentId={c}&severity=security"),
            "InvalidParameter",
            "SECURITY",
        ),
        (
            format!("compartmentId={c}&cve=DSA-5678-1"),
            "InvalidParameter",
            "CVE-2024-3094",
        ),
        (
            format!("compartmentId={c}&cve="),
            "InvalidParameter",
            "not a CVE id",
        ),
        (
            format!("compartmentId={c}&cve=CVE-2024-0727,,CVE-2024-1"),
            "InvalidParameter",
            "not a CVE id",
        ),
        (
            format!("compartmentId={c}&cve={}", cves.join(",")),
            "InvalidParameter",
            "at most 100",
        ),
        (
            format!("compartmentId={c}&cve=CVE-2024-0727&cve=CVE-2024-0728"),
            "InvalidParameter",
            "more than once",
        ),
    ];
    for (query, code, needle) in &cases {
        let r = app.get(&format!("{REPORT}?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let body: Value = r.json();
        assert_eq!(body["code"], *code, "{query}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
    // An unknown compartment or group is not found, whatever the filters.
    for query in [
        format!("compartmentId={}", new_ocid(ResourceKind::Compartment)),
        format!(
            "compartmentId={}&compartmentIdInSubtree=true&details=true",
            new_ocid(ResourceKind::Compartment)
        ),
        format!(
            "managedInstanceGroupId={}&severity=BUG",
            new_ocid(ResourceKind::ManagedInstanceGroup)
        ),
    ] {
        let r = app.get(&format!("{REPORT}?{query}")).await;
        assert_eq!(r.status, 404, "{query}: {}", r.text());
        assert_eq!(r.json::<Value>()["code"], "NotAuthorizedOrNotFound");
    }
    app.stop().await;
}
