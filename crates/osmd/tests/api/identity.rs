use serde_json::{Value, json};

use crate::{Backend, both_backends, spawn_app};

both_backends!(compartment_tree, compartment_update_and_delete, tenancy);

async fn tenancy(b: Backend) {
    let app = spawn_app(b).await;
    let r = app
        .get(&format!("/20160918/tenancies/{}", app.tenancy))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t: Value = r.json();
    assert_eq!(t["id"], app.tenancy.as_str());
    assert!(app.tenancy.starts_with("ocid1.tenancy."));
    assert_eq!(t["homeRegionKey"], "LCL");
    // The root compartment answers GetCompartment too.
    let r = app
        .get(&format!("/20160918/compartments/{}", app.tenancy))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json::<Value>()["lifecycleState"], "ACTIVE");
    let r = app
        .get("/20160918/tenancies/ocid1.tenancy.oc1..nothere")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json::<Value>()["code"], "NotAuthorizedOrNotFound");
}

async fn compartment_tree(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let prod = app.compartment(&t, "prod").await;
    let dev = app.compartment(&t, "dev").await;
    let web = app.compartment(&prod, "web").await;
    let db = app.compartment(&web, "db").await;

    let direct = app
        .list_all(&format!("/20160918/compartments?compartmentId={t}"))
        .await;
    let mut names: Vec<&str> = direct.iter().map(|c| c["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["dev", "prod"]);

    let all = app
        .list_all(&format!(
            "/20160918/compartments?compartmentId={t}&compartmentIdInSubtree=true&accessLevel=ANY&lifecycleState=ACTIVE"
        ))
        .await;
    let mut ids: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![prod.as_str(), dev.as_str(), web.as_str(), db.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "the whole tree, without the tenancy");
    let web_row = all.iter().find(|c| c["id"] == web.as_str()).unwrap();
    assert_eq!(web_row["compartmentId"], prod.as_str());
    assert!(web_row["timeCreated"].as_str().unwrap().ends_with('Z'));

    // Sorted by name, paged one at a time.
    let paged = app
        .list_all(&format!("/20160918/compartments?compartmentId={t}&compartmentIdInSubtree=true&sortBy=NAME&limit=1"))
        .await;
    let names: Vec<&str> = paged.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db", "dev", "prod", "web"]);

    // Name filter, and subtree only from the tenancy.
    let r = app
        .list_all(&format!(
            "/20160918/compartments?compartmentId={t}&compartmentIdInSubtree=true&name=web"
        ))
        .await;
    assert_eq!(r.len(), 1);
    let r = app
        .get(&format!(
            "/20160918/compartments?compartmentId={prod}&compartmentIdInSubtree=true"
        ))
        .await;
    assert_eq!(r.status, 400);

    // Siblings may not share a name.
    let r = app
        .post(
            "/20160918/compartments",
            Some(&json!({"compartmentId": t, "name": "prod", "description": "again"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // Unknown parent.
    let r = app
        .post(
            "/20160918/compartments",
            Some(&json!({"compartmentId": "ocid1.compartment.oc1..nothere", "name": "x", "description": "x"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

async fn compartment_update_and_delete(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let c = app.compartment(&t, "team").await;
    let r = app.get(&format!("/20160918/compartments/{c}")).await;
    let etag = r.header("etag").unwrap().to_string();

    let r = app
        .put(
            &format!("/20160918/compartments/{c}"),
            &json!({"description": "new words"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>()["description"], "new words");
    let new_etag = r.header("etag").unwrap().to_string();
    assert_ne!(new_etag, etag);
    // The old etag is stale now.
    let r = app
        .put(
            &format!("/20160918/compartments/{c}"),
            &json!({"description": "lost"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 412);
    assert_eq!(r.json::<Value>()["code"], "NoEtagMatch");

    // A compartment that holds a group cannot be deleted.
    let g = app.group(&c, "web").await;
    let r = app
        .delete(&format!("/20160918/compartments/{c}"), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.json::<Value>()["message"]
            .as_str()
            .unwrap()
            .contains("group"),
        "{}",
        r.text()
    );
    let r = app
        .delete(&format!("/20190801/managedInstanceGroups/{g}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = app
        .delete(&format!("/20160918/compartments/{c}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = app.get(&format!("/20160918/compartments/{c}")).await;
    assert_eq!(r.json::<Value>()["lifecycleState"], "DELETED");
    // Nothing new can be created in a deleted compartment.
    let r = app
        .post(
            "/20190801/managedInstanceGroups",
            Some(&json!({"compartmentId": c, "displayName": "late"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // The tenancy itself cannot be deleted.
    let r = app
        .delete(&format!("/20160918/compartments/{t}"), None)
        .await;
    assert_eq!(r.status, 409);
}
