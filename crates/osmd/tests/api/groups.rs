use osm_core::OsFamily;
use serde_json::{Value, json};

use crate::{Backend, both_backends, instance, spawn_app};

both_backends!(
    group_crud,
    group_membership,
    group_pagination,
    group_retry_token
);

async fn group_crud(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let r = app
        .post(
            "/20190801/managedInstanceGroups",
            Some(
                &json!({"compartmentId": t, "displayName": "web", "description": "front ends",
                         "osFamily": "LINUX", "freeformTags": {"team": "a"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let etag = r.header("etag").unwrap().to_string();
    let g: Value = r.json();
    let id = g["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ocid1.osmsmanagedinstancegroup.oc1.."));
    assert_eq!(g["lifecycleState"], "ACTIVE");
    assert_eq!(g["managedInstances"], json!([]));
    assert_eq!(g["freeformTags"], json!({"team": "a"}));

    let r = app
        .get(&format!("/20190801/managedInstanceGroups/{id}"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = app
        .put(
            &format!("/20190801/managedInstanceGroups/{id}"),
            &json!({"displayName": "web-2"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>()["displayName"], "web-2");
    let r = app
        .put(
            &format!("/20190801/managedInstanceGroups/{id}"),
            &json!({"displayName": "web-3"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 412, "stale etag");
    assert_eq!(
        app.get(&format!("/20190801/managedInstanceGroups/{id}"))
            .await
            .json::<Value>()["displayName"],
        "web-2",
        "a refused update changes nothing"
    );

    let list = app
        .list_all(&format!(
            "/20190801/managedInstanceGroups?compartmentId={t}"
        ))
        .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["managedInstanceCount"], 0);
    let list = app
        .list_all(&format!(
            "/20190801/managedInstanceGroups?compartmentId={t}&displayName=nope"
        ))
        .await;
    assert!(list.is_empty());

    // Move it to another compartment.
    let c = app.compartment(&t, "moved").await;
    let r = app
        .post(
            &format!("/20190801/managedInstanceGroups/{id}/actions/changeCompartment"),
            Some(&json!({"compartmentId": c})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        app.get(&format!("/20190801/managedInstanceGroups/{id}"))
            .await
            .json::<Value>()["compartmentId"],
        c.as_str()
    );

    let r = app
        .delete(&format!("/20190801/managedInstanceGroups/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    let list = app
        .list_all(&format!(
            "/20190801/managedInstanceGroups?compartmentId={c}"
        ))
        .await;
    assert!(list.is_empty(), "deleted groups are not listed");
    let r = app
        .delete(&format!("/20190801/managedInstanceGroups/{id}"), None)
        .await;
    assert_eq!(r.status, 404);
}

async fn group_membership(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let g = app.group(&t, "linux").await;
    let linux = instance(&t, "host-1", OsFamily::Linux);
    let windows = instance(&t, "win-1", OsFamily::Windows);
    app.store.managed_instance_insert(&linux).await.unwrap();
    app.store.managed_instance_insert(&windows).await.unwrap();
    let attach = format!(
        "/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId="
    );
    let detach = format!(
        "/20190801/managedInstanceGroups/{g}/actions/detachManagedInstance?managedInstanceId="
    );

    let r = app.post(&format!("{attach}{}", linux.id), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let group: Value = app
        .get(&format!("/20190801/managedInstanceGroups/{g}"))
        .await
        .json();
    assert_eq!(
        group["managedInstances"],
        json!([{"id": linux.id, "displayName": "host-1"}])
    );
    let mi: Value = app
        .get(&format!("/20190801/managedInstances/{}", linux.id))
        .await
        .json();
    assert_eq!(mi["managedInstanceGroups"][0]["id"], g.as_str());

    let r = app.post(&format!("{attach}{}", linux.id), None).await;
    assert_eq!(r.status, 409, "already a member: {}", r.text());
    let r = app.post(&format!("{attach}{}", windows.id), None).await;
    assert_eq!(r.status, 409, "OS family differs: {}", r.text());
    let r = app
        .post(&format!("{attach}ocid1.instance.oc1..nothere"), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json::<Value>()["code"],
        "RelatedResourceNotAuthorizedOrNotFound"
    );
    let r = app
        .post(
            &format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance"),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "managedInstanceId is required");

    let r = app.post(&format!("{detach}{}", linux.id), None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = app.post(&format!("{detach}{}", linux.id), None).await;
    assert_eq!(r.status, 409, "not a member any more");
    let group: Value = app
        .get(&format!("/20190801/managedInstanceGroups/{g}"))
        .await
        .json();
    assert_eq!(group["managedInstances"], json!([]));
}

async fn group_pagination(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    for i in 0..25 {
        app.group(&t, &format!("g-{i:02}")).await;
    }
    let base = format!("/20190801/managedInstanceGroups?compartmentId={t}");
    // No limit: every row at once, no next page.
    let r = app.get(&base).await;
    assert_eq!(r.json::<Vec<Value>>().len(), 25);
    assert!(r.header("opc-next-page").is_none());
    // Pages of 10, in every order.
    for (sort, order) in [
        ("TIMECREATED", "DESC"),
        ("TIMECREATED", "ASC"),
        ("DISPLAYNAME", "ASC"),
        ("DISPLAYNAME", "DESC"),
    ] {
        let items = app
            .list_all(&format!("{base}&limit=10&sortBy={sort}&sortOrder={order}"))
            .await;
        let names: Vec<String> = items
            .iter()
            .map(|g| g["displayName"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names.len(), 25, "{sort} {order}");
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 25, "no row twice ({sort} {order})");
        if sort == "DISPLAYNAME" {
            let mut expected = unique.clone();
            if order == "DESC" {
                expected.reverse();
            }
            assert_eq!(names, expected);
        }
    }
    // Exactly one full page: no next-page header on it.
    let r = app.get(&format!("{base}&limit=25")).await;
    assert!(r.header("opc-next-page").is_none());
    // A page token is bound to its ordering.
    let r = app
        .get(&format!("{base}&limit=10&sortBy=DISPLAYNAME"))
        .await;
    let token = r.header("opc-next-page").unwrap().to_string();
    let r = app
        .get(&format!("{base}&limit=10&sortBy=TIMECREATED&page={token}"))
        .await;
    assert_eq!(r.status, 400);
}

async fn group_retry_token(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let body = json!({"compartmentId": t, "displayName": "once"});
    let headers = [("opc-retry-token", "token-123")];
    let first = app
        .post_with("/20190801/managedInstanceGroups", Some(&body), &headers)
        .await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = app
        .post_with("/20190801/managedInstanceGroups", Some(&body), &headers)
        .await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(first.json::<Value>()["id"], second.json::<Value>()["id"]);
    let other = json!({"compartmentId": t, "displayName": "different"});
    let third = app
        .post_with("/20190801/managedInstanceGroups", Some(&other), &headers)
        .await;
    assert_eq!(third.status, 409, "{}", third.text());
    assert_eq!(third.json::<Value>()["code"], "InvalidatedRetryToken");
    let list = app
        .list_all(&format!(
            "/20190801/managedInstanceGroups?compartmentId={t}"
        ))
        .await;
    assert_eq!(list.len(), 1, "the retried create made one group");
}
