//! Errata end to end: agents report inventories through the agent protocol, operators import
//! OSV records (`POST /osm/v1/errata/import`, or `errata_dir` at start) and read the errata
//! calls of §3.7 and the updates they change.

use osm_client::AgentClient;
use serde_json::{Value, json};

use crate::helpers::{spawn_app_with, try_spawn_app_with};
use crate::{Backend, TestApp, both_backends, spawn_app};

both_backends!(
    import_then_list_get_and_instance_errata,
    import_refuses_bad_records_and_changes_nothing,
    errata_are_seen_only_within_reach,
    errata_dir_is_imported_at_start,
    a_bad_errata_dir_stops_the_start,
    imports_have_their_own_body_limit,
    compliance_report_after_an_osv_import_shows_the_cves_of_a_debian_host,
    malformed_osv_is_refused_whole_with_its_position,
    cves_are_only_what_looks_and_is_a_cve,
    reimporting_keeps_the_cves_agents_reported
);

const IMPORT: &str = "/osm/v1/errata/import";

async fn enrol(
    app: &TestApp,
    hostname: &str,
    os: &str,
    version: &str,
    compartment: Option<&str>,
) -> AgentClient {
    let key = std::fs::read_to_string(app.dir.path().join("admin/install-key")).unwrap();
    let ca = std::fs::read(app.ca_file()).unwrap();
    let mut body = json!({"hostname": hostname, "osFamily": "LINUX",
        "facts": {"osName": os, "osVersion": version}});
    if let Some(c) = compartment {
        body["compartmentId"] = json!(c);
    }
    AgentClient::enroll(&app.base, Some(&ca), key.trim(), &body)
        .await
        .expect("enrols")
        .0
}

fn inventory() -> Value {
    json!({
        "mode": "full",
        "installed": [
            {"name": "openssl", "version": "3.0.11-1~deb12u1", "architecture": "amd64", "type": "deb"},
            {"name": "zlib1g", "version": "1:1.2.13.dfsg-1", "architecture": "amd64", "type": "deb"},
            {"name": "curl", "version": "7.88.1-10", "architecture": "amd64", "type": "deb"}
        ],
        "updates": [
            {"name": "openssl", "architecture": "amd64", "installedVersion": "3.0.11-1~deb12u1",
             "availableVersion": "3.0.11-1~deb12u2", "updateType": "BUG", "cves": ["CVE-2023-9999"],
             "advisories": [{"name": "DLA-9-1", "type": "BUG", "synopsis": "openssl bug fix", "issued": "2023-06-01T00:00:00Z"}]},
            {"name": "zlib1g", "architecture": "amd64", "installedVersion": "1:1.2.13.dfsg-1",
             "availableVersion": "1:1.2.13.dfsg-1+deb12u1", "updateType": "ENHANCEMENT"},
            {"name": "curl", "architecture": "amd64", "installedVersion": "7.88.1-10",
             "availableVersion": "7.88.1-10+deb12u5", "updateType": "BUG"}
        ]
    })
}

fn record(id: &str, pkg: &str, fixed: &str, cves: &[&str], published: &str) -> Value {
    json!({
        "schema_version": "1.6.0",
        "id": id,
        "aliases": cves,
        "summary": format!("{pkg} security update"),
        "details": format!("Several flaws were found in {pkg}."),
        "published": published,
        "modified": "2024-03-01T00:00:00Z",
        "references": [{"type": "ADVISORY", "url": format!("https://security.example/{id}")}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": pkg},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
    })
}

fn feed() -> Value {
    json!({"records": [
        record("DSA-5900-1", "openssl", "3.0.11-1~deb12u2", &["CVE-2024-0001", "CVE-2024-0002"], "2024-02-28T00:00:00Z"),
        record("DSA-5901-1", "zlib1g", "1:1.2.13.dfsg-1+deb12u1", &["CVE-2024-0100"], "2024-01-15T00:00:00Z"),
        record("DSA-5902-1", "curl", "7.88.1-10+deb12u9", &["CVE-2024-0200"], "2024-01-01T00:00:00Z")
    ]})
}

async fn upload(agent: &AgentClient, body: &Value) {
    let r = agent.post("/agent/v1/inventory", body).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let r = app.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

async fn security_count(app: &TestApp, id: &str) -> i64 {
    get_json(app, &format!("/20190801/managedInstances/{id}")).await["securityUpdatesAvailable"]
        .as_i64()
        .unwrap()
}

async fn import_then_list_get_and_instance_errata(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let deb = enrol(&app, "deb-01", "Debian GNU/Linux", "12", None).await;
    let ubu = enrol(&app, "ubu-01", "Ubuntu", "22.04", None).await;
    upload(&deb, &inventory()).await;
    upload(&ubu, &inventory()).await;
    assert_eq!(security_count(&app, &deb.instance_id).await, 0);

    let r = app.post(IMPORT, Some(&feed())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json::<Value>(),
        json!({"records": 3, "created": 3, "updated": 0, "unchanged": 0, "stale": 0, "withdrawn": 0,
               "updatesChanged": 2, "instancesChanged": 1})
    );
    // The updates carry the OSV CVEs and errata next to what the agent reported.
    let updates: Vec<Value> = get_json(
        &app,
        &format!(
            "/20190801/managedInstances/{}/packages/updates?sortBy=DISPLAYNAME",
            deb.instance_id
        ),
    )
    .await
    .as_array()
    .unwrap()
    .clone();
    let openssl = updates.iter().find(|u| u["name"] == "openssl").unwrap();
    assert_eq!(openssl["updateType"], "SECURITY");
    assert_eq!(
        openssl["relatedCves"],
        json!(["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"])
    );
    let errata: Vec<&str> = openssl["errata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(errata, ["DLA-9-1", "DSA-5900-1"]);
    let curl = updates.iter().find(|u| u["name"] == "curl").unwrap();
    assert_eq!(
        curl["updateType"], "BUG",
        "deb12u5 is still below the fix (deb12u9)"
    );
    assert_eq!(security_count(&app, &deb.instance_id).await, 2);
    assert_eq!(
        security_count(&app, &ubu.instance_id).await,
        0,
        "no Debian record applies to Ubuntu"
    );

    // ListErrata: every row without limit, by issue date newest first by default.
    let list = format!("/20190801/errata?compartmentId={t}");
    let r = app.get(&list).await;
    assert_eq!(r.status, 200);
    assert!(r.header("opc-next-page").is_none());
    let all: Vec<Value> = r.json();
    assert_eq!(
        names(&all),
        ["DSA-5900-1", "DSA-5901-1", "DSA-5902-1", "DLA-9-1"]
    );
    let dsa = &all[0];
    assert!(
        dsa["id"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.osmserratum.oc1..")
    );
    assert_eq!(dsa["compartmentId"], t.as_str());
    assert_eq!(dsa["advisoryType"], "SECURITY");
    assert_eq!(dsa["synopsis"], "openssl security update");
    assert_eq!(dsa["issued"], "2024-02-28T00:00:00.000Z");
    assert_eq!(dsa["updated"], "2024-03-01T00:00:00.000Z");
    assert_eq!(
        dsa["relatedCves"],
        json!(["CVE-2024-0001", "CVE-2024-0002"])
    );
    let by_name: Vec<Value> = get_json(&app, &format!("{list}&sortBy=ADVISORYNAME"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        names(&by_name),
        ["DLA-9-1", "DSA-5900-1", "DSA-5901-1", "DSA-5902-1"]
    );
    let oldest: Vec<Value> = get_json(&app, &format!("{list}&sortBy=ISSUEDATE&sortOrder=ASC"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        names(&oldest),
        ["DLA-9-1", "DSA-5902-1", "DSA-5901-1", "DSA-5900-1"]
    );
    // Paging: opc-next-page only while rows remain.
    let paged = app
        .list_all(&format!("{list}&sortBy=ADVISORYNAME&limit=3"))
        .await;
    assert_eq!(names(&paged), names(&by_name));
    let r = app
        .get(&format!("{list}&sortBy=ADVISORYNAME&limit=4"))
        .await;
    assert!(r.header("opc-next-page").is_none(), "exactly one full page");
    // Filters.
    let one: Vec<Value> = get_json(&app, &format!("{list}&advisoryName=DSA-5901-1"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(names(&one), ["DSA-5901-1"]);
    let id = one[0]["id"].as_str().unwrap().to_string();
    let by_id: Vec<Value> = get_json(&app, &format!("/20190801/errata?erratumId={id}"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(names(&by_id), ["DSA-5901-1"]);
    let window: Vec<Value> = get_json(
        &app,
        &format!("{list}&timeIssueDateStart=2024-01-10T00%3A00%3A00Z&timeIssueDateEnd=2024-02-28T00%3A00%3A00Z"),
    )
    .await
    .as_array()
    .unwrap()
    .clone();
    assert_eq!(names(&window), ["DSA-5900-1", "DSA-5901-1"]);

    // GetErratum: the full form, with the instances it applies to.
    let e = get_json(
        &app,
        &format!("/20190801/errata/{}", dsa["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(e["name"], "DSA-5900-1");
    assert_eq!(e["from"], "Debian");
    assert_eq!(e["description"], "Several flaws were found in openssl.");
    assert_eq!(e["references"], "https://security.example/DSA-5900-1");
    assert!(
        e["solution"]
            .as_str()
            .unwrap()
            .contains("openssl 3.0.11-1~deb12u2"),
        "{e}"
    );
    assert_eq!(
        e["affectedInstances"],
        json!([{"id": deb.instance_id, "displayName": "deb-01"}])
    );
    assert_eq!(e["softwareSources"], json!([]));
    assert_eq!(
        e["packages"],
        json!([
            {"displayName": "openssl", "name": "openssl", "type": "deb", "version": "3.0.11-1~deb12u2"},
            {"displayName": "openssl", "name": "openssl", "type": "deb", "version": "3.0.11-1~deb12u2", "architecture": "amd64"}
        ])
    );
    // The agent-reported advisory applies to both instances.
    let dla = all.iter().find(|e| e["name"] == "DLA-9-1").unwrap();
    let d = get_json(
        &app,
        &format!("/20190801/errata/{}", dla["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(d["affectedInstances"].as_array().unwrap().len(), 2);
    assert_eq!(d["advisoryType"], "BUG");

    // ListManagedInstanceErrata.
    let path = format!("/20190801/managedInstances/{}/errata", deb.instance_id);
    let mine: Vec<Value> = get_json(&app, &format!("{path}?sortBy=DISPLAYNAME"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(names(&mine), ["DLA-9-1", "DSA-5900-1", "DSA-5901-1"]);
    let paged = app
        .list_all(&format!("{path}?sortBy=DISPLAYNAME&sortOrder=DESC&limit=2"))
        .await;
    assert_eq!(names(&paged), ["DSA-5901-1", "DSA-5900-1", "DLA-9-1"]);
    let only: Vec<Value> = get_json(&app, &format!("{path}?displayName=DSA-5900-1"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(names(&only), ["DSA-5900-1"]);
    let elsewhere = app.compartment(&t, "elsewhere").await;
    let none: Vec<Value> = get_json(&app, &format!("{path}?compartmentId={elsewhere}"))
        .await
        .as_array()
        .unwrap()
        .clone();
    assert!(none.is_empty());
    let theirs: Vec<Value> = get_json(
        &app,
        &format!("/20190801/managedInstances/{}/errata", ubu.instance_id),
    )
    .await
    .as_array()
    .unwrap()
    .clone();
    assert_eq!(names(&theirs), ["DLA-9-1"]);

    // A re-import changes nothing; a later full upload keeps the OSV CVEs.
    let r = app.post(IMPORT, Some(&feed())).await;
    assert_eq!(r.json::<Value>()["unchanged"], 3);
    upload(&deb, &inventory()).await;
    assert_eq!(security_count(&app, &deb.instance_id).await, 2);

    // Unknown ids: a clear 404; bad parameters: 400.
    for path in [
        "/20190801/errata/ocid1.osmserratum.oc1..nothing".to_string(),
        "/20190801/errata/not-an-ocid".to_string(),
        "/20190801/managedInstances/ocid1.instance.oc1..nothing/errata".to_string(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        let body: Value = r.json();
        assert_eq!(body["code"], "NotAuthorizedOrNotFound");
        assert!(
            body["message"].as_str().unwrap().contains("does not exist"),
            "{body}"
        );
    }
    for (query, needle) in [
        ("sortBy=TIMECREATED", "ISSUEDATE, ADVISORYNAME"),
        ("timeIssueDateStart=yesterday", "timeIssueDateStart"),
        ("erratumId=nope", "erratumId"),
        (
            "timeIssueDateStart=2024-02-01T00%3A00%3A00Z&timeIssueDateEnd=2024-01-01T00%3A00%3A00Z",
            "after",
        ),
        ("limit=0", "limit"),
    ] {
        let r = app.get(&format!("{list}&{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.text().contains(needle), "{query}: {}", r.text());
    }
    let r = app
        .get("/20190801/errata?compartmentId=ocid1.compartment.oc1..nothing")
        .await;
    assert_eq!(r.status, 404);
}

async fn import_refuses_bad_records_and_changes_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let deb = enrol(&app, "deb-01", "Debian GNU/Linux", "12", None).await;
    upload(&deb, &inventory()).await;
    let updates_path = format!(
        "/20190801/managedInstances/{}/packages/updates",
        deb.instance_id
    );
    let before = get_json(&app, &updates_path).await;
    let errata_before = get_json(&app, "/20190801/errata").await;

    let mut bad_version = feed();
    bad_version["records"][1]["affected"][0]["ranges"][0]["events"][1]["fixed"] = json!("1.2 beta");
    let mut bad_type = feed();
    bad_type["records"][2]["modified"] = json!(12);
    let mut no_id = feed();
    no_id["records"][0]["id"] = json!("");
    let mut twice = feed();
    twice["records"][2]["id"] = json!("DSA-5900-1");
    let mut bad_alias = feed();
    bad_alias["records"][0]["aliases"] = json!(["CVE-24-1"]);
    let cases = [
        (json!({}), "records"),
        (json!({"records": []}), "records is empty"),
        (json!({"records": [1]}), "records[0]: "),
        (
            bad_version,
            "records[1] (DSA-5901-1): affected[0].ranges[0].events[1]: \"1.2 beta\" is not a valid Debian:12 version",
        ),
        (bad_type, "records[2] (DSA-5902-1): modified: "),
        (no_id, "records[0]: id: the advisory has an empty id"),
        (twice, "records[2]: the id \"DSA-5900-1\" is also record 0"),
        (bad_alias, "records[0] (DSA-5900-1): aliases[0]: "),
    ];
    for (body, needle) in cases {
        let r = app.post(IMPORT, Some(&body)).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let err: Value = r.json();
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{needle}: {err}"
        );
    }
    let r = app
        .client
        .post_raw(IMPORT, b"{\"records\": [".to_vec(), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json::<Value>()["code"], "CannotParseRequest");
    // Nothing was stored.
    assert_eq!(get_json(&app, &updates_path).await, before);
    assert_eq!(get_json(&app, "/20190801/errata").await, errata_before);
    assert_eq!(security_count(&app, &deb.instance_id).await, 0);
}

async fn errata_are_seen_only_within_reach(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let team = app.compartment(&t, "team").await;
    let other = app.compartment(&t, "other").await;
    let mine = enrol(&app, "team-01", "Debian GNU/Linux", "12", Some(&team)).await;
    let theirs = enrol(&app, "other-01", "Debian GNU/Linux", "12", Some(&other)).await;
    upload(&mine, &inventory()).await;
    let mut other_inventory = inventory();
    other_inventory["updates"]
        .as_array_mut()
        .unwrap()
        .retain(|u| u["name"] == "curl");
    other_inventory["updates"][0]["availableVersion"] = json!("7.88.1-10+deb12u9");
    upload(&theirs, &other_inventory).await;
    let r = app.post(IMPORT, Some(&feed())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bob = app.user_granted("bob", &[&team]).await;
    let get = async |path: &str| {
        let r = bob.get(path).await.unwrap();
        (
            r.status,
            serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null),
        )
    };

    // Bob reaches `team`: he sees the errata that apply to its instances, not the tenancy's
    // whole catalogue, and not DSA-5902-1 (it applies only in `other`).
    let (status, listed) = get("/20190801/errata").await;
    assert_eq!(status, 200);
    assert_eq!(
        names(listed.as_array().unwrap()),
        ["DSA-5900-1", "DSA-5901-1", "DLA-9-1"]
    );
    let (status, in_team) = get(&format!(
        "/20190801/errata?compartmentId={team}&sortBy=ADVISORYNAME"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        names(in_team.as_array().unwrap()),
        ["DLA-9-1", "DSA-5900-1", "DSA-5901-1"]
    );
    assert_eq!(
        get(&format!("/20190801/errata?compartmentId={t}")).await.0,
        404
    );
    assert_eq!(
        get(&format!("/20190801/errata?compartmentId={other}"))
            .await
            .0,
        404
    );
    let all = get_json(&app, "/20190801/errata?sortBy=ADVISORYNAME").await;
    let id_of = |name: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        get(&format!("/20190801/errata/{}", id_of("DSA-5902-1")))
            .await
            .0,
        404
    );
    let (status, e) = get(&format!("/20190801/errata/{}", id_of("DSA-5900-1"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        e["affectedInstances"],
        json!([{"id": mine.instance_id, "displayName": "team-01"}])
    );
    // The administrator sees both instances of an erratum that applies to both.
    let e = get_json(&app, &format!("/20190801/errata/{}", id_of("DSA-5902-1"))).await;
    assert_eq!(
        e["affectedInstances"],
        json!([{"id": theirs.instance_id, "displayName": "other-01"}])
    );
    assert_eq!(
        get(&format!(
            "/20190801/managedInstances/{}/errata",
            theirs.instance_id
        ))
        .await
        .0,
        404
    );
    assert_eq!(
        get(&format!(
            "/20190801/managedInstances/{}/errata",
            mine.instance_id
        ))
        .await
        .0,
        200
    );
    // Importing changes every instance: only for those who reach the tenancy.
    let r = bob.post_json(IMPORT, Some(&feed()), &[]).await.unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    // Decided before the body is read: a malformed body tells bob nothing more.
    for body in [
        &b"{\"records\": ["[..],
        b"{}",
        b"{\"records\": [{\"id\": 1e400}]}",
    ] {
        let r = bob.post_raw(IMPORT, body.to_vec(), &[]).await.unwrap();
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.json::<Value>()["code"], "NotAuthorizedOrNotFound");
    }
}

fn write_feed(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for r in feed()["records"].as_array().unwrap() {
        let name = format!("{}.json", r["id"].as_str().unwrap());
        std::fs::write(dir.join(name), serde_json::to_string_pretty(r).unwrap()).unwrap();
    }
    std::fs::write(dir.join("README.txt"), "not a record").unwrap();
}

async fn errata_dir_is_imported_at_start(b: Backend) {
    let feed_dir = tempfile::tempdir().unwrap();
    write_feed(feed_dir.path());
    let dir = feed_dir.path().to_path_buf();
    let app = try_spawn_app_with(b, |s| s.errata_dir = Some(dir))
        .await
        .unwrap();
    let listed = get_json(&app, "/20190801/errata?sortBy=ADVISORYNAME").await;
    assert_eq!(
        names(listed.as_array().unwrap()),
        ["DSA-5900-1", "DSA-5901-1", "DSA-5902-1"]
    );
    // Agents that report later are matched against them; the API import of the same records
    // finds them unchanged (both store the same compact JSON).
    let deb = enrol(&app, "deb-01", "Debian GNU/Linux", "12", None).await;
    upload(&deb, &inventory()).await;
    assert_eq!(security_count(&app, &deb.instance_id).await, 2);
    let r = app.post(IMPORT, Some(&feed())).await;
    assert_eq!(r.json::<Value>()["unchanged"], 3);
}

async fn a_bad_errata_dir_stops_the_start(b: Backend) {
    let feed_dir = tempfile::tempdir().unwrap();
    write_feed(feed_dir.path());
    let bad = feed_dir.path().join("DSA-5903-1.json");
    std::fs::write(
        &bad,
        "{\n  \"id\": \"DSA-5903-1\",\n  \"modified\": \"2024-03-01T00:00:00Z\",\n  \"affected\": [{\"package\": {\"ecosystem\": \"Debian:12\", \"name\": \"vim\"},\n    \"versions\": [\"9.0 beta\"]}]\n}\n",
    )
    .unwrap();
    let dir = feed_dir.path().to_path_buf();
    let e = match try_spawn_app_with(b, |s| s.errata_dir = Some(dir)).await {
        Ok(_) => panic!("osmd started with a bad OSV file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("errata_dir"), "{e}");
    assert!(
        e.contains(&format!(
            "{}:5:18: affected[0].versions[0]: \"9.0 beta\" is not a valid Debian:12 version",
            bad.display()
        )),
        "{e}"
    );
    let missing = feed_dir.path().join("nope");
    let e = match try_spawn_app_with(b, |s| s.errata_dir = Some(missing)).await {
        Ok(_) => panic!("osmd started without its errata_dir"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("cannot read the directory"), "{e}");
}

/// A feed larger than the API's body limit (64 KiB in these tests) fits the import's own
/// (`errata_max_body_bytes`); one larger than that gets 413 and changes nothing.
async fn imports_have_their_own_body_limit(b: Backend) {
    let app = spawn_app_with(b, |s| s.errata_max_body_bytes = 256 * 1024).await;
    let batch = |n: usize| {
        let records: Vec<Value> = (0..n)
            .map(|i| {
                let mut r = record(
                    &format!("DSA-{}-1", 7000 + i),
                    &format!("pkg{i}"),
                    "1.0-2",
                    &[],
                    "2024-01-01T00:00:00Z",
                );
                r["details"] = json!("x".repeat(1000));
                r
            })
            .collect();
        json!({ "records": records })
    };
    let small = batch(100);
    assert!(small.to_string().len() > 64 * 1024);
    let r = app.post(IMPORT, Some(&small)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>()["created"], 100);
    let big = batch(300);
    assert!(big.to_string().len() > 256 * 1024);
    let r = app.post(IMPORT, Some(&big)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let listed = get_json(&app, "/20190801/errata").await;
    assert_eq!(listed.as_array().unwrap().len(), 100);
    // Other calls keep the API's limit.
    let r = app
        .post(
            "/20190801/managedInstanceGroups",
            Some(&json!({"compartmentId": app.tenancy, "displayName": "x".repeat(70 * 1024)})),
        )
        .await;
    assert_eq!(r.status, 413);
}

/// `GET /osm/v1/reports/compliance` after an import: the Debian host's missing security
/// updates and CVEs come from the OSV records (its agent reported the updates as bug fixes and
/// enhancements); the Ubuntu host, which no Debian record applies to, has none.
async fn compliance_report_after_an_osv_import_shows_the_cves_of_a_debian_host(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let deb = enrol(&app, "deb-01", "Debian GNU/Linux", "12", None).await;
    let ubu = enrol(&app, "ubu-01", "Ubuntu", "22.04", None).await;
    upload(&deb, &inventory()).await;
    upload(&ubu, &inventory()).await;
    let report_path = format!(
        "/osm/v1/reports/compliance?compartmentId={t}&compartmentIdInSubtree=true&details=true"
    );
    let row = |r: &Value, id: &str| -> Value {
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {r:#}"))
            .clone()
    };
    let before = get_json(&app, &report_path).await;
    assert_eq!(row(&before, &deb.instance_id)["missingSecurityUpdates"], 0);
    assert_eq!(row(&before, &deb.instance_id)["relatedCves"], json!([]));
    assert_eq!(before["summary"]["distinctCves"], 0);

    let r = app.post(IMPORT, Some(&feed())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = get_json(&app, &report_path).await;
    let d = row(&after, &deb.instance_id);
    assert_eq!(d["missingSecurityUpdates"], 2, "{d:#}");
    assert_eq!(d["securityUpdates"], 2, "{d:#}");
    assert_eq!(
        d["relatedCves"],
        json!([
            "CVE-2023-9999",
            "CVE-2024-0001",
            "CVE-2024-0002",
            "CVE-2024-0100"
        ]),
        "{d:#}"
    );
    let updates = d["updates"].as_array().unwrap();
    let openssl = updates.iter().find(|u| u["name"] == "openssl").unwrap();
    assert_eq!(openssl["updateType"], "SECURITY");
    assert_eq!(openssl["advisories"], json!(["DLA-9-1", "DSA-5900-1"]));
    let u = row(&after, &ubu.instance_id);
    assert_eq!(u["missingSecurityUpdates"], 0, "{u:#}");
    assert_eq!(u["relatedCves"], json!([]));
    assert_eq!(after["summary"]["instancesMissingUpdates"], 1);
    assert_eq!(after["summary"]["distinctCves"], 4);
    // Filtering by an OSV-derived CVE finds the Debian host.
    let by_cve = get_json(
        &app,
        &format!("/osm/v1/reports/compliance?compartmentId={t}&compartmentIdInSubtree=true&cve=CVE-2024-0100"),
    )
    .await;
    assert_eq!(row(&by_cve, &deb.instance_id)["missingUpdates"], 1);
}

/// A document the JSON reader refuses anywhere in it (a number out of range in a field osm
/// ignores, broken syntax) refuses the whole import, with its position, through the API and
/// through `errata_dir`; nothing of the batch is kept and osmd does not panic.
async fn malformed_osv_is_refused_whole_with_its_position(b: Backend) {
    let app = spawn_app(b).await;
    let deb = enrol(&app, "deb-01", "Debian GNU/Linux", "12", None).await;
    upload(&deb, &inventory()).await;
    let updates_path = format!(
        "/20190801/managedInstances/{}/packages/updates",
        deb.instance_id
    );
    let before = get_json(&app, &updates_path).await;
    let errata_before = get_json(&app, "/20190801/errata").await;

    // The API: the first two records are good, the third carries 1e400 in an extra field.
    let good = feed()["records"].as_array().unwrap().clone();
    let body = format!(
        "{{\"records\": [{}, {},\n{{\"id\": \"DSA-5903-1\", \"modified\": \"2024-03-01T00:00:00Z\", \"database_specific\": {{\"score\": 1e400}}}}]}}",
        good[0], good[1]
    );
    let r = app
        .client
        .post_raw(IMPORT, body.into_bytes(), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let message = r.json::<Value>()["message"].as_str().unwrap().to_string();
    assert!(message.contains("number out of range"), "{message}");
    assert!(message.contains("line 2 column"), "{message}");

    // errata_dir: good files, then one the JSON reader refuses at line 4.
    let feed_dir = tempfile::tempdir().unwrap();
    write_feed(feed_dir.path());
    let bad = feed_dir.path().join("DSA-5903-1.json");
    std::fs::write(
        &bad,
        "{\n  \"id\": \"DSA-5903-1\",\n  \"modified\": \"2024-03-01T00:00:00Z\",\n  \"database_specific\": {\"score\": 1e400}\n}\n",
    )
    .unwrap();
    let settings = osmd::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: app.dir.path().to_path_buf(),
        errata_dir: Some(feed_dir.path().to_path_buf()),
        ..Default::default()
    };
    let e = match osmd::start_with_store(settings, app.store.clone()).await {
        Ok(_) => panic!("osmd started with a malformed OSV file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains(&format!("{}:4:", bad.display())) && e.contains("number out of range"),
        "{e}"
    );
    // Nothing of either batch was kept.
    assert_eq!(get_json(&app, &updates_path).await, before);
    assert_eq!(get_json(&app, "/20190801/errata").await, errata_before);
    assert_eq!(security_count(&app, &deb.instance_id).await, 0);
}

/// `id`, `aliases` and `upstream` follow one rule: an entry spelled as a CVE must be a CVE id
/// (else the import is refused, naming it), and only CVE ids become `relatedCves`.
async fn cves_are_only_what_looks_and_is_a_cve(b: Backend) {
    let app = spawn_app(b).await;
    for (field, value, needle) in [
        (
            "upstream",
            json!(["CVE-2024-1"]),
            "upstream[0]: \"CVE-2024-1\" is not a CVE id",
        ),
        (
            "aliases",
            json!(["GHSA-xxxx", "cve-2024-12"]),
            "aliases[1]: \"cve-2024-12\" is not a CVE id",
        ),
        (
            "id",
            json!("CVE-24-0001"),
            "id: \"CVE-24-0001\" is not a CVE id",
        ),
    ] {
        let mut body = feed();
        body["records"][0][field] = value;
        let r = app.post(IMPORT, Some(&body)).await;
        assert_eq!(r.status, 400, "{field}: {}", r.text());
        let m = r.json::<Value>()["message"].as_str().unwrap().to_string();
        assert!(m.contains(needle), "{needle}: {m}");
    }
    assert_eq!(get_json(&app, "/20190801/errata").await, json!([]));
    // Ids that are not CVEs (an advisory series, a GHSA) are kept out of relatedCves; CVE ids
    // from the id, the aliases and upstream go in.
    let mut body = feed();
    body["records"][0]["aliases"] = json!(["GHSA-abcd-efgh-ijkl", "CVE-2024-0001"]);
    body["records"][0]["upstream"] = json!(["DEBIAN-CVE-2024-7777", "CVE-2024-0009"]);
    body["records"][1]["id"] = json!("CVE-2024-4444");
    let r = app.post(IMPORT, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = get_json(&app, "/20190801/errata?advisoryName=DSA-5900-1").await;
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let e = get_json(&app, &format!("/20190801/errata/{id}")).await;
    assert_eq!(e["relatedCves"], json!(["CVE-2024-0001", "CVE-2024-0009"]));
    let listed = get_json(&app, "/20190801/errata?advisoryName=CVE-2024-4444").await;
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let e = get_json(&app, &format!("/20190801/errata/{id}")).await;
    assert_eq!(e["relatedCves"], json!(["CVE-2024-0100", "CVE-2024-4444"]));
}

/// Re-importing a newer version of a record that names fewer CVEs: the erratum keeps the CVEs
/// an agent reported for it and drops only the record's own.
async fn reimporting_keeps_the_cves_agents_reported(b: Backend) {
    let app = spawn_app(b).await;
    let deb = enrol(&app, "deb-01", "Debian GNU/Linux", "12", None).await;
    let mut inv = inventory();
    inv["updates"][0]["advisories"] =
        json!([{"name": "DSA-5900-1", "type": "SECURITY", "synopsis": "openssl"}]);
    upload(&deb, &inv).await;
    let r = app.post(IMPORT, Some(&feed())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cves = || async {
        let listed = get_json(&app, "/20190801/errata?advisoryName=DSA-5900-1").await;
        let id = listed[0]["id"].as_str().unwrap().to_string();
        get_json(&app, &format!("/20190801/errata/{id}")).await["relatedCves"].clone()
    };
    assert_eq!(
        cves().await,
        json!(["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"])
    );
    let mut newer = feed();
    newer["records"][0]["modified"] = json!("2024-04-01T00:00:00Z");
    newer["records"][0]["aliases"] = json!(["CVE-2024-0001"]);
    let r = app.post(IMPORT, Some(&newer)).await;
    assert_eq!(r.json::<Value>()["updated"], 1);
    assert_eq!(cves().await, json!(["CVE-2023-9999", "CVE-2024-0001"]));
}
