//! Authentication and authorisation: unsigned, tampered, stale and unknown-key requests get
//! 401 on every route; a user limited to one compartment sees nothing else (404).

use jiff::{SignedDuration, Timestamp};
use osm_core::httpsig;
use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, spawn_app};

both_backends!(
    every_route_rejects_unsigned_requests,
    signatures_are_checked,
    reach_is_limited_to_grants
);

fn raw_client(app: &TestApp) -> reqwest::Client {
    let ca = std::fs::read(app.ca_file()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

fn concrete(path: &str) -> String {
    path.replace("{compartmentId}", "ocid1.compartment.oc1..x")
        .replace("{tenancyId}", "ocid1.tenancy.oc1..x")
        .replace(
            "{managedInstanceGroupId}",
            "ocid1.osmsmanagedinstancegroup.oc1..x",
        )
        .replace("{managedInstanceId}", "ocid1.instance.oc1..x")
        .replace("{scheduledJobId}", "ocid1.osmsscheduledjob.oc1..x")
        .replace("{workRequestId}", "ocid1.osmsworkrequest.oc1..x")
}

async fn every_route_rejects_unsigned_requests(b: Backend) {
    let app = spawn_app(b).await;
    let http = raw_client(&app);
    let mut checked = 0;
    for op in osmd::http::openapi::OPERATIONS {
        let url = format!("{}{}", app.base, concrete(op.path));
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let r = http
            .request(method, &url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        if op.path == "/healthz" {
            assert_eq!(r.status(), 200);
            continue;
        }
        assert_eq!(r.status(), 401, "{} {}", op.method, op.path);
        assert!(r.headers().get("opc-request-id").is_some());
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["code"], "NotAuthenticated",
            "{} {}",
            op.method, op.path
        );
        checked += 1;
    }
    assert!(checked >= 30, "{checked} routes checked");
    // Unknown paths are refused before anything else too.
    let r = http
        .get(format!("{}/20190801/nothing", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Signs a GET the way the SDK does, with the given date, and sends it.
async fn signed_get(
    app: &TestApp,
    path: &str,
    date: Timestamp,
    key_pem: &str,
    key_id: &str,
    host: Option<&str>,
) -> reqwest::Response {
    let host_value = host
        .map(str::to_string)
        .unwrap_or_else(|| app.base.trim_start_matches("https://").to_string());
    let date_value = httpsig::imf_fixdate(date);
    let auth = httpsig::sign(
        "GET",
        path,
        &[("date", &date_value), ("host", &host_value)],
        key_id,
        key_pem,
    )
    .unwrap();
    raw_client(app)
        .get(format!("{}{}", app.base, path))
        .header("date", date_value)
        .header("host", host_value)
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
}

async fn signatures_are_checked(b: Backend) {
    let app = spawn_app(b).await;
    let key_pem = std::fs::read_to_string(app.dir.path().join("admin/api_key.pem")).unwrap();
    let key_id = format!(
        "{}/{}/{}",
        app.tenancy, app.config.user, app.config.fingerprint
    );
    let path = format!(
        "/20190801/managedInstanceGroups?compartmentId={}",
        app.tenancy
    );

    let ok = signed_get(&app, &path, Timestamp::now(), &key_pem, &key_id, None).await;
    assert_eq!(ok.status(), 200);
    // The URL-userinfo host an unmodified SDK sends verifies as well.
    let odd_host = format!("osms.@{}", app.base.trim_start_matches("https://"));
    let ok = signed_get(
        &app,
        &path,
        Timestamp::now(),
        &key_pem,
        &key_id,
        Some(&odd_host),
    )
    .await;
    assert_eq!(ok.status(), 200);

    let stale = signed_get(
        &app,
        &path,
        Timestamp::now() - SignedDuration::from_mins(6),
        &key_pem,
        &key_id,
        None,
    )
    .await;
    assert_eq!(stale.status(), 401);
    let msg: Value = stale.json().await.unwrap();
    assert!(msg["message"].as_str().unwrap().contains("minute"), "{msg}");
    let future = signed_get(
        &app,
        &path,
        Timestamp::now() + SignedDuration::from_mins(6),
        &key_pem,
        &key_id,
        None,
    )
    .await;
    assert_eq!(future.status(), 401);

    let (other_key, other_pub) = httpsig::generate_rsa_key().unwrap();
    let wrong_key = signed_get(&app, &path, Timestamp::now(), &other_key, &key_id, None).await;
    assert_eq!(
        wrong_key.status(),
        401,
        "signed with a key that is not the registered one"
    );
    let unknown_fp = format!(
        "{}/{}/{}",
        app.tenancy,
        app.config.user,
        httpsig::fingerprint(&other_pub).unwrap()
    );
    let unknown = signed_get(&app, &path, Timestamp::now(), &other_key, &unknown_fp, None).await;
    assert_eq!(unknown.status(), 401);
    let foreign = format!(
        "ocid1.tenancy.oc1..other/{}/{}",
        app.config.user, app.config.fingerprint
    );
    let r = signed_get(&app, &path, Timestamp::now(), &key_pem, &foreign, None).await;
    assert_eq!(r.status(), 401);

    // Tampering with the query after signing breaks the signature.
    let date = httpsig::imf_fixdate(Timestamp::now());
    let host = app.base.trim_start_matches("https://").to_string();
    let auth = httpsig::sign(
        "GET",
        &path,
        &[("date", &date), ("host", &host)],
        &key_id,
        &key_pem,
    )
    .unwrap();
    let r = raw_client(&app)
        .get(format!("{}{}&displayName=x", app.base, path))
        .header("date", &date)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A body that differs from its signed digest is refused, and nothing is created.
    let body = json!({"compartmentId": app.tenancy, "displayName": "sneaky"}).to_string();
    let digest = httpsig_digest(b"{}");
    let len = body.len().to_string();
    let auth = httpsig::sign(
        "POST",
        "/20190801/managedInstanceGroups",
        &[
            ("date", &date),
            ("host", &host),
            ("content-length", &len),
            ("content-type", "application/json"),
            ("x-content-sha256", &digest),
        ],
        &key_id,
        &key_pem,
    )
    .unwrap();
    let r = raw_client(&app)
        .post(format!("{}/20190801/managedInstanceGroups", app.base))
        .header("date", &date)
        .header("content-type", "application/json")
        .header("x-content-sha256", &digest)
        .header("authorization", &auth)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        app.list_all(&format!(
            "/20190801/managedInstanceGroups?compartmentId={}",
            app.tenancy
        ))
        .await
        .is_empty()
    );
    // Malformed Authorization headers.
    for header in [
        "Signature",
        "Basic abc",
        "Signature keyId=\"a/b/c\",signature=\"!!\"",
        "",
    ] {
        let r = raw_client(&app)
            .get(format!("{}{}", app.base, path))
            .header("date", &date)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header:?}");
    }
}

fn httpsig_digest(body: &[u8]) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    base64::engine::general_purpose::STANDARD.encode(d.as_ref())
}

async fn reach_is_limited_to_grants(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let team = app.compartment(&t, "team").await;
    let inner = app.compartment(&team, "inner").await;
    let secret = app.compartment(&t, "secret").await;
    let team_group = app.group(&inner, "team-web").await;
    let secret_group = app.group(&secret, "secret-web").await;

    // A user whose group is granted `team` (and so `inner`).
    let alice = app.user_granted("alice", &[&team]).await;

    let r = alice
        .get(&format!("/20190801/managedInstanceGroups/{team_group}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = alice
        .get(&format!("/20190801/managedInstanceGroups/{secret_group}"))
        .await
        .unwrap();
    assert_eq!(r.status, 404, "out of reach looks like not found");
    let r = alice
        .get(&format!(
            "/20190801/managedInstanceGroups?compartmentId={secret}"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = alice
        .post_json(
            "/20190801/managedInstanceGroups",
            Some(&json!({"compartmentId": secret, "displayName": "x"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = alice
        .delete(
            &format!("/20190801/managedInstanceGroups/{secret_group}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        app.get(&format!("/20190801/managedInstanceGroups/{secret_group}"))
            .await
            .status,
        200,
        "untouched"
    );
    // The tree: alice sees the path to her compartments, not their siblings.
    let r = alice
        .get(&format!(
            "/20160918/compartments?compartmentId={t}&compartmentIdInSubtree=true"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let mut names: Vec<String> = r
        .json::<Vec<Value>>()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["inner", "team"]);
}
