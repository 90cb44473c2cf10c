//! Package inventory end to end: agents upload through the real agent protocol, operators read
//! packages, updates and Windows updates back through signed API calls.

use osm_client::AgentClient;
use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, spawn_app};

both_backends!(
    upload_full_and_diff_then_read,
    bad_uploads_change_nothing,
    windows_updates
);

async fn enrol(app: &TestApp, hostname: &str, family: &str) -> AgentClient {
    let key = std::fs::read_to_string(app.dir.path().join("admin/install-key")).unwrap();
    let ca = std::fs::read(app.ca_file()).unwrap();
    let body = json!({"hostname": hostname, "osFamily": family,
        "facts": {"updates": {"security": 3, "bug": 1, "enhancement": 0, "other": 0}}});
    AgentClient::enroll(&app.base, Some(&ca), key.trim(), &body)
        .await
        .expect("enrols")
        .0
}

async fn upload(agent: &AgentClient, body: &Value) -> (u16, Value) {
    let r = agent.post("/agent/v1/inventory", body).await.unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

async fn inventory_revision(agent: &AgentClient) -> i64 {
    let r = agent.post("/agent/v1/heartbeat", &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json::<Value>()["inventoryRevision"].as_i64().unwrap()
}

async fn instance(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/20190801/managedInstances/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn counts(mi: &Value) -> [i64; 5] {
    [
        "updatesAvailable",
        "securityUpdatesAvailable",
        "bugUpdatesAvailable",
        "enhancementUpdatesAvailable",
        "otherUpdatesAvailable",
    ]
    .map(|k| mi[k].as_i64().unwrap())
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["name"].as_str().unwrap(),
                i["architecture"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn linux_inventory() -> Value {
    let mut installed: Vec<Value> = (0..25)
        .map(|i| json!({"name": format!("pkg-{i:02}"), "version": format!("1.{i}-1"), "architecture": "amd64", "type": "deb"}))
        .collect();
    installed.push(json!({"name": "libc6", "version": "2.36-9", "architecture": "amd64", "type": "deb", "installTime": "2024-03-01T10:00:00Z"}));
    installed
        .push(json!({"name": "libc6", "version": "2.36-9", "architecture": "i386", "type": "deb"}));
    installed.push(
        json!({"name": "openssl", "version": "3.0.11-1", "architecture": "amd64", "type": "deb"}),
    );
    json!({
        "mode": "full",
        "installed": installed,
        "available": [{"name": "nginx", "version": "1.22.1-9", "architecture": "amd64", "type": "deb"},
                      {"name": "zsh", "version": "5.9-4"}],
        "updates": [
            {"name": "openssl", "architecture": "amd64", "installedVersion": "3.0.11-1", "availableVersion": "3.0.13-1",
             "updateType": "SECURITY", "cves": ["CVE-2024-0727", "CVE-2023-6129"],
             "advisories": [{"name": "DSA-5678-1", "type": "SECURITY", "synopsis": "openssl security update", "issued": "2024-02-01T00:00:00Z"}]},
            {"name": "pkg-03", "architecture": "amd64", "installedVersion": "1.3-1", "availableVersion": "1.3-2",
             "updateType": "BUG"}
        ]
    })
}

async fn upload_full_and_diff_then_read(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "web-01", "LINUX").await;
    let id = agent.instance_id.clone();
    assert_eq!(inventory_revision(&agent).await, 0);
    // Until an inventory arrives, the heartbeat's counts stand.
    assert_eq!(counts(&instance(&app, &id).await), [4, 3, 1, 0, 0]);

    assert_eq!(
        upload(&agent, &linux_inventory()).await,
        (200, json!({"revision": 1}))
    );
    assert_eq!(inventory_revision(&agent).await, 1);
    assert_eq!(counts(&instance(&app, &id).await), [2, 1, 1, 0, 0]);
    // Heartbeat counts no longer override what the inventory says.
    agent
        .post(
            "/agent/v1/heartbeat",
            &json!({"updates": {"security": 9, "bug": 9, "enhancement": 9, "other": 9}}),
        )
        .await
        .unwrap();
    assert_eq!(counts(&instance(&app, &id).await), [2, 1, 1, 0, 0]);

    // Installed packages, paged by name (as the SDK's pagination helper walks them).
    let base = format!("/20190801/managedInstances/{id}");
    let items = app
        .list_all(&format!("{base}/packages?sortBy=DISPLAYNAME&limit=7"))
        .await;
    assert_eq!(items.len(), 28);
    let listed = names(&items);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(listed[0], "libc6/amd64");
    let libc = &items[0];
    assert_eq!(libc["displayName"], "libc6");
    assert_eq!(libc["type"], "deb");
    assert_eq!(libc["version"], "2.36-9");
    assert_eq!(libc["installTime"], "2024-03-01T10:00:00.000Z");
    let r = app
        .get(&format!("{base}/packages?limit=7&sortBy=DISPLAYNAME"))
        .await;
    assert_eq!(r.json::<Vec<Value>>().len(), 7);
    assert!(r.header("opc-next-page").is_some());
    let desc = app
        .get(&format!(
            "{base}/packages?sortBy=DISPLAYNAME&sortOrder=DESC"
        ))
        .await
        .json::<Vec<Value>>();
    assert_eq!(names(&desc)[0], "pkg-24/amd64");
    let libc6 = app.get(&format!("{base}/packages?displayName=libc6")).await;
    assert_eq!(names(&libc6.json::<Vec<Value>>()).len(), 2);
    // Another compartment holds no packages of this instance.
    let other = app.compartment(&app.tenancy, "elsewhere").await;
    let r = app
        .get(&format!("{base}/packages?compartmentId={other}"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json::<Vec<Value>>().is_empty());

    let available = app
        .list_all(&format!("{base}/packages/available?limit=1"))
        .await;
    assert_eq!(names(&available).len(), 2);
    let zsh = available.iter().find(|p| p["name"] == "zsh").unwrap();
    assert_eq!(zsh["type"], "unknown");
    assert!(zsh.get("architecture").is_none());

    let updates: Vec<Value> = app
        .get(&format!("{base}/packages/updates?sortBy=DISPLAYNAME"))
        .await
        .json();
    assert_eq!(names(&updates), ["openssl/amd64", "pkg-03/amd64"]);
    let openssl = &updates[0];
    assert_eq!(openssl["updateType"], "SECURITY");
    assert_eq!(openssl["installedVersion"], "3.0.11-1");
    assert_eq!(openssl["availableVersion"], "3.0.13-1");
    assert_eq!(openssl["type"], "deb");
    assert_eq!(
        openssl["relatedCves"],
        json!(["CVE-2023-6129", "CVE-2024-0727"])
    );
    let erratum = &openssl["errata"][0];
    assert_eq!(erratum["displayName"], "DSA-5678-1");
    assert!(
        erratum["id"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.osmserratum.oc1..")
    );
    assert_eq!(updates[1]["updateType"], "BUG");
    assert_eq!(updates[1]["errata"], json!([]));

    // The security update installed: a diff moves openssl into the installed packages.
    let diff = json!({"mode": "diff", "baseRevision": 1,
        "installed": {"upsert": [{"name": "openssl", "version": "3.0.13-1", "architecture": "amd64", "type": "deb"}]},
        "updates": {"remove": [{"name": "openssl", "architecture": "amd64"}]}});
    assert_eq!(upload(&agent, &diff).await, (200, json!({"revision": 2})));
    assert_eq!(counts(&instance(&app, &id).await), [1, 0, 1, 0, 0]);
    let openssl: Vec<Value> = app
        .get(&format!("{base}/packages?displayName=openssl"))
        .await
        .json();
    assert_eq!(openssl[0]["version"], "3.0.13-1");

    // A diff against a revision osmd no longer holds: 409 with the revision, nothing changed.
    let stale = json!({"mode": "diff", "baseRevision": 1, "installed": {"remove": [{"name": "libc6", "architecture": "amd64"}]}});
    let (status, body) = upload(&agent, &stale).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "InventoryRevisionMismatch");
    assert_eq!(body["revision"], 2);
    assert!(body["message"].as_str().unwrap().contains("full upload"));
    assert_eq!(
        app.list_all(&format!("{base}/packages?limit=100"))
            .await
            .len(),
        28
    );

    // Another agent uploads for its own instance only; a forged identity is refused.
    let other_agent = enrol(&app, "db-01", "LINUX").await;
    let small = json!({"mode": "full", "installed": [{"name": "postgresql-15", "version": "15.6-0+deb12u1"}]});
    assert_eq!(upload(&other_agent, &small).await.0, 200);
    let ca = std::fs::read(app.ca_file()).unwrap();
    let forged = AgentClient::resume(&app.base, Some(&ca), &id, "not-the-secret").unwrap();
    assert_eq!(upload(&forged, &small).await.0, 401);
    assert_eq!(
        app.list_all(&format!("{base}/packages?limit=100"))
            .await
            .len(),
        28
    );
    let theirs: Vec<Value> = app
        .get(&format!(
            "/20190801/managedInstances/{}/packages",
            other_agent.instance_id
        ))
        .await
        .json();
    assert_eq!(names(&theirs), ["postgresql-15/"]);

    // Instances that do not exist answer 404, as those out of reach do.
    let r = app
        .get("/20190801/managedInstances/ocid1.instance.oc1..nothere/packages/updates")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json::<Value>()["code"], "NotAuthorizedOrNotFound");
    let r = app.get(&format!("{base}/packages?sortBy=NAME")).await;
    assert_eq!(r.status, 400);
}

async fn bad_uploads_change_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "web-01", "LINUX").await;
    let id = agent.instance_id.clone();
    assert_eq!(upload(&agent, &linux_inventory()).await.0, 200);
    let before_counts = counts(&instance(&app, &id).await);
    let base = format!("/20190801/managedInstances/{id}");
    let before = app.list_all(&format!("{base}/packages?limit=1000")).await;

    let update = |patch: Value| {
        let mut u = json!({"name": "curl", "installedVersion": "7.88.1-10", "availableVersion": "7.88.1-10+deb12u5",
                           "updateType": "SECURITY", "cves": ["CVE-2024-2398"]});
        for (k, v) in patch.as_object().unwrap() {
            u[k] = v.clone();
        }
        json!({"mode": "full", "updates": [u]})
    };
    let many: Vec<Value> = (0..100_001)
        .map(|i| json!({"name": format!("p{i}"), "version": "1"}))
        .collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"installed": []}), "mode is required"),
        (json!({"mode": "partial"}), "mode must be"),
        (json!({"mode": 3}), "mode"),
        (
            json!({"mode": "full", "installed": [{"name": "bash"}]}),
            "installed[0]",
        ),
        (
            json!({"mode": "full", "installed": [{"name": "two words", "version": "1"}]}),
            "installed[0].name",
        ),
        (
            json!({"mode": "full", "installed": [{"name": "bash", "version": "1", "installTime": "yesterday"}]}),
            "installed[0].installTime",
        ),
        (
            json!({"mode": "full", "installed": [{"name": "bash", "version": "1"}, {"name": "bash", "version": "2", "architecture": ""}]}),
            "installed[1]: \"bash\" appears more than once",
        ),
        (update(json!({"cves": ["CVE-24-1"]})), "updates[0].cves[0]"),
        (
            update(json!({"updateType": "BUGFIX"})),
            "updates[0].updateType",
        ),
        (
            update(json!({"advisories": [{"name": "DSA 1"}]})),
            "updates[0].advisories[0].name",
        ),
        (
            update(json!({"availableVersion": ""})),
            "updates[0].availableVersion",
        ),
        (
            json!({"mode": "full", "windowsUpdates": [{"name": "x", "displayName": "t", "updateType": "SECURITY", "installed": false, "installable": "MAYBE"}]}),
            "windowsUpdates[0].installable",
        ),
        (
            json!({"mode": "full", "windowsUpdates": [{"name": "x", "displayName": "t", "updateType": "SECURITY", "installed": false, "kbArticleIds": ["KB 1"]}]}),
            "windowsUpdates[0].kbArticleIds[0]",
        ),
        (
            json!({"mode": "diff", "installed": {"upsert": []}}),
            "baseRevision",
        ),
        (
            json!({"mode": "diff", "baseRevision": 1, "installed": {"upsert": [{"name": "vim", "version": "9"}], "remove": [{"name": "vim"}]}}),
            "both upserted and removed",
        ),
        (
            json!({"mode": "full", "available": many}),
            "available has 100001 items",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = upload(&agent, &body).await;
        assert_eq!(status, 400, "{needle}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    assert_eq!(inventory_revision(&agent).await, 1);
    assert_eq!(counts(&instance(&app, &id).await), before_counts);
    assert_eq!(
        app.list_all(&format!("{base}/packages?limit=1000")).await,
        before
    );
}

async fn windows_updates(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "win-01", "WINDOWS").await;
    let id = agent.instance_id.clone();
    let body = json!({"mode": "full", "windowsUpdates": [
        {"name": "6f5a2d4f-0001", "displayName": "2024-05 Cumulative Update (KB5037782)", "updateType": "SECURITY",
         "installed": false, "installable": "INSTALLABLE", "rebootRequired": true, "kbArticleIds": ["5037782"],
         "description": "Security fixes", "sizeInBytes": 734003200},
        {"name": "6f5a2d4f-0002", "displayName": "Servicing Stack Update (KB5037000)", "updateType": "BUG",
         "installed": false, "installable": "NOT_INSTALLABLE"},
        {"name": "6f5a2d4f-0003", "displayName": "2024-04 Cumulative Update (KB5036909)", "updateType": "SECURITY",
         "installed": true, "kbArticleIds": ["5036909"]}
    ]});
    assert_eq!(upload(&agent, &body).await, (200, json!({"revision": 1})));
    assert_eq!(counts(&instance(&app, &id).await), [2, 1, 1, 0, 0]);

    let base = format!("/20190801/managedInstances/{id}");
    let pending = app
        .list_all(&format!(
            "{base}/updates/available?limit=1&sortBy=DISPLAYNAME"
        ))
        .await;
    assert_eq!(pending.len(), 2);
    assert_eq!(
        pending[0]["displayName"],
        "2024-05 Cumulative Update (KB5037782)"
    );
    assert_eq!(pending[0]["isEligibleForInstallation"], "INSTALLABLE");
    assert_eq!(pending[0]["isRebootRequiredForInstallation"], true);
    let eligible: Vec<Value> = app
        .get(&format!(
            "{base}/updates/available?isEligibleForInstallation=INSTALLABLE"
        ))
        .await
        .json();
    assert_eq!(eligible.len(), 1);
    assert_eq!(eligible[0]["name"], "6f5a2d4f-0001");
    let r = app
        .get(&format!(
            "{base}/updates/available?isEligibleForInstallation=YES"
        ))
        .await;
    assert_eq!(r.status, 400);
    let installed: Vec<Value> = app.get(&format!("{base}/updates/installed")).await.json();
    assert_eq!(
        installed,
        [
            json!({"displayName": "2024-04 Cumulative Update (KB5036909)", "name": "6f5a2d4f-0003", "updateType": "SECURITY"})
        ]
    );

    // The catalogue of the compartment, and each update by name.
    let all = app
        .list_all(&format!(
            "/20190801/updates?compartmentId={}&limit=2",
            app.tenancy
        ))
        .await;
    assert_eq!(all.len(), 3);
    let everywhere: Vec<Value> = app.get("/20190801/updates").await.json();
    assert_eq!(everywhere.len(), 3);
    let empty = app.compartment(&app.tenancy, "empty").await;
    let none: Vec<Value> = app
        .get(&format!("/20190801/updates?compartmentId={empty}"))
        .await
        .json();
    assert!(none.is_empty());
    let one: Value = app.get("/20190801/updates/6f5a2d4f-0001").await.json();
    assert_eq!(one["kbArticleIds"], json!(["5037782"]));
    assert_eq!(one["sizeInBytes"], 734003200);
    assert_eq!(one["description"], "Security fixes");
    assert_eq!(one["updateType"], "SECURITY");
    assert_eq!(one["isEligibleForInstallation"], "INSTALLABLE");
    let r = app.get("/20190801/updates/6f5a2d4f-9999").await;
    assert_eq!(r.status, 404);

    // Installed through a diff: counts follow.
    let diff = json!({"mode": "diff", "baseRevision": 1, "windowsUpdates": {"upsert": [
        {"name": "6f5a2d4f-0001", "displayName": "2024-05 Cumulative Update (KB5037782)", "updateType": "SECURITY", "installed": true}]}});
    assert_eq!(upload(&agent, &diff).await, (200, json!({"revision": 2})));
    assert_eq!(counts(&instance(&app, &id).await), [1, 0, 1, 0, 0]);
    let one: Value = app.get("/20190801/updates/6f5a2d4f-0001").await.json();
    assert_eq!(
        one["description"], "Security fixes",
        "the catalogue keeps it"
    );
}
