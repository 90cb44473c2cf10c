use osm_core::OsFamily;
use serde_json::{Value, json};

use crate::{Backend, both_backends, instance, spawn_app};

both_backends!(instance_read_and_update);

async fn instance_read_and_update(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let other = app.compartment(&t, "other").await;
    let a = instance(&t, "alpha", OsFamily::Linux);
    let w = instance(&t, "win", OsFamily::Windows);
    let elsewhere = instance(&other, "beta", OsFamily::Linux);
    app.store
        .managed_instance_insert_many(&[a.clone(), w.clone(), elsewhere.clone()])
        .await
        .unwrap();

    let list = app
        .list_all(&format!(
            "/20190801/managedInstances?compartmentId={t}&sortBy=DISPLAYNAME"
        ))
        .await;
    let names: Vec<&str> = list
        .iter()
        .map(|i| i["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "win"], "only this compartment, by name");
    assert_eq!(list[0]["updatesAvailable"], 3);
    assert_eq!(list[0]["osFamily"], "LINUX");
    assert_eq!(list[0]["status"], "NORMAL");
    assert_eq!(list[0]["isRebootRequired"], false);
    let linux = app
        .list_all(&format!(
            "/20190801/managedInstances?compartmentId={t}&osFamily=LINUX"
        ))
        .await;
    assert_eq!(linux.len(), 1);
    let all = app
        .list_all(&format!(
            "/20190801/managedInstances?compartmentId={t}&osFamily=ALL"
        ))
        .await;
    assert_eq!(all.len(), 2);
    let named = app
        .list_all(&format!(
            "/20190801/managedInstances?compartmentId={t}&displayName=win"
        ))
        .await;
    assert_eq!(named.len(), 1);

    let r = app
        .get(&format!("/20190801/managedInstances/{}", a.id))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let etag = r.header("etag").unwrap().to_string();
    let mi: Value = r.json();
    assert_eq!(mi["securityUpdatesAvailable"], 2);
    assert_eq!(mi["bugUpdatesAvailable"], 1);
    assert_eq!(mi["osKernelVersion"], "6.1.0-18-amd64");
    assert_eq!(mi["scheduledJobCount"], 0);
    assert_eq!(mi["workRequestCount"], 0);
    assert_eq!(mi["managedInstanceGroups"], json!([]));

    let r = app
        .put(
            &format!("/20190801/managedInstances/{}", a.id),
            &json!({"isDataCollectionAuthorized": true, "notificationTopicId": "ocid1.onstopic.oc1..topic"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mi: Value = r.json();
    assert_eq!(mi["isDataCollectionAuthorized"], true);
    assert_eq!(mi["notificationTopicId"], "ocid1.onstopic.oc1..topic");
    let r = app
        .put(
            &format!("/20190801/managedInstances/{}", a.id),
            &json!({"isDataCollectionAuthorized": false}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 412);
    let r = app
        .put(
            &format!("/20190801/managedInstances/{}", a.id),
            &json!({"isDataCollectionAuthorized": "yes"}),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());

    let r = app
        .get("/20190801/managedInstances/ocid1.instance.oc1..nothere")
        .await;
    assert_eq!(r.status, 404);
}
