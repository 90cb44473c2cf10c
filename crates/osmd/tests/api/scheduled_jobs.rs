use jiff::{SignedDuration, Timestamp};
use osm_core::OsFamily;
use serde_json::{Value, json};

use crate::{Backend, both_backends, instance, spawn_app};

both_backends!(job_crud, job_validation, job_upcoming_and_filters);

fn at(hours: i64) -> String {
    osm_core::time::format_rfc3339(Timestamp::now() + SignedDuration::from_hours(hours))
}

async fn job_crud(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let g = app.group(&t, "web").await;
    let body = json!({
        "compartmentId": t, "displayName": "nightly security", "scheduleType": "RECURRING",
        "timeNextExecution": at(2), "intervalType": "DAY", "intervalValue": "1",
        "managedInstanceGroups": [{"id": g, "displayName": "ignored"}],
        "operationType": "UPDATEALL", "updateType": "SECURITY", "timeZone": "Europe/Paris",
        "freeformTags": {"env": "prod"}
    });
    let r = app.post("/20190801/scheduledJobs", Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let etag = r.header("etag").unwrap().to_string();
    let job: Value = r.json();
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ocid1.osmsscheduledjob.oc1.."));
    assert_eq!(job["lifecycleState"], "ACTIVE");
    assert_eq!(job["intervalValue"], "1");
    assert_eq!(job["timeZone"], "Europe/Paris");
    assert_eq!(
        job["managedInstanceGroups"],
        json!([{"id": g, "displayName": "web"}]),
        "names come from the store"
    );
    assert_eq!(job["workRequests"], json!([]));

    let r = app
        .put(
            &format!("/20190801/scheduledJobs/{id}"),
            &json!({"intervalType": "WEEK", "intervalValue": "2", "displayName": "fortnightly"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let job: Value = r.json();
    assert_eq!(job["intervalType"], "WEEK");
    assert_eq!(job["intervalValue"], "2");
    assert_eq!(job["updateType"], "SECURITY", "unchanged fields stay");
    let r = app
        .put(
            &format!("/20190801/scheduledJobs/{id}"),
            &json!({"displayName": "x"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 412);
    let r = app
        .put(
            &format!("/20190801/scheduledJobs/{id}"),
            &json!({"intervalValue": "0"}),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // The group cannot go while the job targets it.
    let r = app
        .delete(&format!("/20190801/managedInstanceGroups/{g}"), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    let c = app.compartment(&t, "ops").await;
    let r = app
        .post(
            &format!("/20190801/scheduledJobs/{id}/actions/changeCompartment"),
            Some(&json!({"compartmentId": c})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let list = app
        .list_all(&format!("/20190801/scheduledJobs?compartmentId={c}"))
        .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["scheduleType"], "RECURRING");

    let r = app
        .delete(&format!("/20190801/scheduledJobs/{id}"), None)
        .await;
    assert_eq!(r.status, 204);
    let r = app.get(&format!("/20190801/scheduledJobs/{id}")).await;
    assert_eq!(r.status, 200, "history stays readable");
    assert_eq!(r.json::<Value>()["lifecycleState"], "DELETED");
    assert!(
        app.list_all(&format!("/20190801/scheduledJobs?compartmentId={c}"))
            .await
            .is_empty()
    );
    let deleted = app
        .list_all(&format!(
            "/20190801/scheduledJobs?compartmentId={c}&lifecycleState=DELETED"
        ))
        .await;
    assert_eq!(deleted.len(), 1);
    let r = app
        .delete(&format!("/20190801/managedInstanceGroups/{g}"), None)
        .await;
    assert_eq!(r.status, 204, "a deleted job no longer holds the group");
}

async fn job_validation(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let mi = instance(&t, "host", OsFamily::Linux);
    app.store.managed_instance_insert(&mi).await.unwrap();
    let good = json!({
        "compartmentId": t, "displayName": "install bash", "scheduleType": "ONETIME",
        "timeNextExecution": at(1), "managedInstances": [{"id": mi.id, "displayName": "host"}],
        "operationType": "INSTALL", "packageNames": [{"name": "bash"}]
    });
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "recurring without interval",
            json!({"scheduleType": "RECURRING"}),
            400,
            "intervalType",
        ),
        (
            "interval not a number",
            json!({"scheduleType": "RECURRING", "intervalType": "DAY", "intervalValue": "often"}),
            400,
            "intervalValue",
        ),
        (
            "negative interval",
            json!({"scheduleType": "RECURRING", "intervalType": "DAY", "intervalValue": "-3"}),
            400,
            "intervalValue",
        ),
        (
            "time in the past",
            json!({"timeNextExecution": at(-2)}),
            400,
            "past",
        ),
        (
            "malformed time",
            json!({"timeNextExecution": "next tuesday"}),
            400,
            "timeNextExecution",
        ),
        (
            "install without packages",
            json!({"packageNames": []}),
            400,
            "packageNames",
        ),
        (
            "unknown enum",
            json!({"operationType": "EXPLODE"}),
            400,
            "operationType",
        ),
        (
            "no targets",
            json!({"managedInstances": []}),
            400,
            "targets",
        ),
        (
            "unknown instance",
            json!({"managedInstances": [{"id": "ocid1.instance.oc1..nothere"}]}),
            400,
            "does not exist",
        ),
        (
            "bad target id",
            json!({"managedInstances": [{"id": "not-an-ocid"}]}),
            400,
            "OCID",
        ),
        (
            "unknown time zone",
            json!({"timeZone": "Mars/Base"}),
            400,
            "timeZone",
        ),
        (
            "missing compartment",
            json!({"compartmentId": null}),
            400,
            "compartmentId",
        ),
        (
            "compartment out of reach",
            json!({"compartmentId": "ocid1.compartment.oc1..nothere"}),
            404,
            "compartment",
        ),
        (
            "unsupported operation",
            json!({"operationType": "SWITCHMODULESTREAM"}),
            400,
            "not supported",
        ),
        ("wrong type", json!({"displayName": 12}), 400, "displayName"),
    ];
    for (what, patch, status, needle) in cases {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let r = app.post("/20190801/scheduledJobs", Some(&body)).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let err: Value = r.json();
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{what}: {:?} should mention {needle:?}",
            err["message"]
        );
    }
    assert!(
        app.list_all(&format!("/20190801/scheduledJobs?compartmentId={t}"))
            .await
            .is_empty(),
        "nothing was created"
    );
    let r = app.post("/20190801/scheduledJobs", Some(&good)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let job: Value = r.json();
    assert!(job.get("intervalType").is_none());
    let mi_view: Value = app
        .get(&format!("/20190801/managedInstances/{}", mi.id))
        .await
        .json();
    assert_eq!(mi_view["scheduledJobCount"], 1);
}

async fn job_upcoming_and_filters(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let g = app.group(&t, "fleet").await;
    let mi = instance(&t, "host", OsFamily::Linux);
    app.store.managed_instance_insert(&mi).await.unwrap();
    let mk = |name: &str, hours: i64, target: Value| {
        let mut body = json!({
            "compartmentId": t, "displayName": name, "scheduleType": "ONETIME",
            "timeNextExecution": at(hours), "operationType": "UPDATEALL"
        });
        for (k, v) in target.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for body in [
        mk("soon", 1, json!({"managedInstanceGroups": [{"id": g}]})),
        mk("later", 48, json!({"managedInstanceGroups": [{"id": g}]})),
        mk("direct", 2, json!({"managedInstances": [{"id": mi.id}]})),
    ] {
        let r = app.post("/20190801/scheduledJobs", Some(&body)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let end = osm_core::time::format_rfc3339(Timestamp::now() + SignedDuration::from_hours(24));
    let end = form_urlencoded::byte_serialize(end.as_bytes()).collect::<String>();
    let upcoming = app
        .list_all(&format!("/20190801/scheduledJobs/upcomingSchedules?compartmentId={t}&timeEnd={end}&sortBy=DISPLAYNAME"))
        .await;
    let names: Vec<&str> = upcoming
        .iter()
        .map(|j| j["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["direct", "soon"]);
    let r = app
        .get(&format!(
            "/20190801/scheduledJobs/upcomingSchedules?compartmentId={t}"
        ))
        .await;
    assert_eq!(r.status, 400, "timeEnd is required");

    let by_group = app
        .list_all(&format!(
            "/20190801/scheduledJobs?compartmentId={t}&managedInstanceGroupId={g}"
        ))
        .await;
    assert_eq!(by_group.len(), 2);
    let by_instance = app
        .list_all(&format!(
            "/20190801/scheduledJobs?compartmentId={t}&managedInstanceId={}",
            mi.id
        ))
        .await;
    assert_eq!(by_instance.len(), 1);
    let by_op = app
        .list_all(&format!(
            "/20190801/scheduledJobs?compartmentId={t}&operationType=INSTALL"
        ))
        .await;
    assert!(by_op.is_empty());
    let r = app
        .get(&format!(
            "/20190801/scheduledJobs?compartmentId={t}&operationType=install"
        ))
        .await;
    assert_eq!(r.status, 400, "enum values are case-sensitive");
}
