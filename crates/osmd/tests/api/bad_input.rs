//! Bad input gets a clear 4xx and changes nothing.

use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, spawn_app};

both_backends!(bad_bodies_change_nothing, bad_query_parameters);

async fn group_count(app: &TestApp) -> usize {
    app.list_all(&format!(
        "/20190801/managedInstanceGroups?compartmentId={}",
        app.tenancy
    ))
    .await
    .len()
}

async fn raw_post(app: &TestApp, path: &str, body: &[u8]) -> osm_client::ApiResponse {
    app.client
        .post_raw(path, body.to_vec(), &[])
        .await
        .expect("request sent")
}

async fn bad_bodies_change_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let g = app.group(&t, "keep").await;
    let path = "/20190801/managedInstanceGroups";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            b"{\"compartmentId\": ".to_vec(),
            400,
            "CannotParseRequest",
        ),
        ("not an object", b"[1,2]".to_vec(), 400, "InvalidParameter"),
        ("empty body", b"".to_vec(), 400, "MissingParameter"),
        (
            "wrong type",
            json!({"compartmentId": t, "displayName": ["a"]})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameter",
        ),
        (
            "unknown enum",
            json!({"compartmentId": t, "displayName": "a", "osFamily": "SOLARIS"})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameter",
        ),
        (
            "missing name",
            json!({"compartmentId": t}).to_string().into_bytes(),
            400,
            "MissingParameter",
        ),
        (
            "invalid OCID",
            json!({"compartmentId": "nope", "displayName": "a"})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameter",
        ),
        (
            "control characters",
            json!({"compartmentId": t, "displayName": "a\u{7}b"})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameter",
        ),
        (
            "name too long",
            json!({"compartmentId": t, "displayName": "x".repeat(300)})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameter",
        ),
        (
            "oversize body",
            json!({"compartmentId": t, "displayName": "a", "description": "x".repeat(100_000)})
                .to_string()
                .into_bytes(),
            413,
            "RequestEntityTooLarge",
        ),
        (
            "tags of the wrong shape",
            json!({"compartmentId": t, "displayName": "a", "freeformTags": {"k": 1}})
                .to_string()
                .into_bytes(),
            400,
            "InvalidParameter",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = raw_post(&app, path, &body).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let err: Value = r.json();
        assert_eq!(err["code"], code, "{what}: {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
        assert!(r.header("opc-request-id").is_some());
    }
    assert_eq!(group_count(&app).await, 1, "nothing was created");
    // Bad updates leave the group as it was.
    let before: Value = app.get(&format!("{path}/{g}")).await.json();
    let r = app
        .put(&format!("{path}/{g}"), &json!({"displayName": ""}), None)
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .put(&format!("{path}/{g}"), &json!({"freeformTags": "x"}), None)
        .await;
    assert_eq!(r.status, 400);
    let after: Value = app.get(&format!("{path}/{g}")).await.json();
    assert_eq!(before, after);
    // Wrong method and unknown route.
    let r = app.put(path, &json!({}), None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json::<Value>()["code"], "MethodNotAllowed");
    let r = app.get("/20190801/doesNotExist").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json::<Value>()["code"], "NotFound");
}

async fn bad_query_parameters(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let base = "/20190801/managedInstanceGroups";
    for (query, needle) in [
        ("", "compartmentId"),
        ("compartmentId=not-an-ocid", "OCID"),
        (&format!("compartmentId={t}&limit=-1") as &str, "limit"),
        (&format!("compartmentId={t}&limit=0"), "limit"),
        (
            &format!("compartmentId={t}&limit=100000000000000000000"),
            "limit",
        ),
        (&format!("compartmentId={t}&limit=ten"), "limit"),
        (&format!("compartmentId={t}&page=bogus"), "page token"),
        (
            &format!("compartmentId={t}&page=eyJzIjoidCJ9"),
            "page token",
        ),
        (&format!("compartmentId={t}&sortBy=NAME"), "sortBy"),
        (&format!("compartmentId={t}&sortOrder=UP"), "sortOrder"),
        (&format!("compartmentId={t}&osFamily=linux"), "osFamily"),
        (
            &format!("compartmentId={t}&compartmentId={t}"),
            "more than once",
        ),
    ] {
        let r = app.get(&format!("{base}?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let err: Value = r.json();
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{query}: {err}"
        );
    }
    let r = app
        .get(&format!(
            "/20160918/compartments?compartmentId={t}&compartmentIdInSubtree=maybe"
        ))
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .get(&format!(
            "/20160918/compartments?compartmentId={t}&lifecycleState=active"
        ))
        .await;
    assert_eq!(
        r.status, 200,
        "identity matches lifecycleState case-insensitively"
    );
    let r = app.get("/20190801/managedInstanceGroups/not-an-ocid").await;
    assert_eq!(r.status, 404);
}
