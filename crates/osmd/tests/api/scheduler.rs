//! The scheduler, driven with an injected clock: occurrences fire exactly once, create one
//! work request per reached instance (groups expanded at fire time), advance the job, and
//! occurrences missed longer ago than the catch-up window are recorded, not run.

use jiff::{SignedDuration, Timestamp};
use osm_core::{OccurrenceOutcome, OsFamily};
use serde_json::{Value, json};

use crate::{Backend, both_backends, instance, spawn_app};

both_backends!(
    occurrences_fire_once_and_advance,
    targets_reach_each_instance_once,
    run_now_and_skip_next
);

fn rfc(t: Timestamp) -> String {
    osm_core::time::format_rfc3339(t)
}

async fn occurrences_fire_once_and_advance(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let g = app.group(&t, "fleet").await;
    let hosts: Vec<_> = (0..2)
        .map(|i| instance(&t, &format!("h{i}"), OsFamily::Linux))
        .collect();
    let lone = instance(&t, "lone", OsFamily::Linux);
    let mut all = hosts.clone();
    all.push(lone.clone());
    app.store.managed_instance_insert_many(&all).await.unwrap();
    for h in &hosts {
        let r = app
            .post(&format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId={}", h.id), None)
            .await;
        assert_eq!(r.status, 204);
    }
    // Whole seconds in the future, so the store's microseconds compare exactly.
    let first = Timestamp::from_second(Timestamp::now().as_second() + 3600).unwrap();
    let recurring: Value = app
        .post(
            "/20190801/scheduledJobs",
            Some(&json!({"compartmentId": t, "displayName": "daily", "scheduleType": "RECURRING",
                "timeNextExecution": rfc(first), "intervalType": "DAY", "intervalValue": "1",
                "managedInstanceGroups": [{"id": g}], "operationType": "UPDATEALL", "updateType": "SECURITY"})),
        )
        .await
        .json();
    let once: Value = app
        .post(
            "/20190801/scheduledJobs",
            Some(
                &json!({"compartmentId": t, "displayName": "once", "scheduleType": "ONETIME",
                "timeNextExecution": rfc(first), "managedInstances": [{"id": lone.id}],
                "operationType": "INSTALL", "packageNames": [{"name": "bash"}, {"name": "curl"}]}),
            ),
        )
        .await
        .json();
    let rid = recurring["id"].as_str().unwrap();
    let oid = once["id"].as_str().unwrap();
    let hour = SignedDuration::from_hours(1);

    // Not due yet: nothing happens.
    assert!(
        osmd::scheduler::run_once(
            app.store.as_ref(),
            first - SignedDuration::from_secs(1),
            hour
        )
        .await
        .unwrap()
        .is_empty()
    );

    let fired = osmd::scheduler::run_once(
        app.store.as_ref(),
        first + SignedDuration::from_secs(2),
        hour,
    )
    .await
    .unwrap();
    assert_eq!(fired.len(), 2);
    assert!(
        fired
            .iter()
            .all(|o| o.outcome == OccurrenceOutcome::Fired && o.time == first)
    );
    // Exactly once: the same instant again fires nothing.
    assert!(
        osmd::scheduler::run_once(
            app.store.as_ref(),
            first + SignedDuration::from_secs(3),
            hour
        )
        .await
        .unwrap()
        .is_empty()
    );

    let job: Value = app
        .get(&format!("/20190801/scheduledJobs/{rid}"))
        .await
        .json();
    assert_eq!(job["timeLastExecution"], rfc(first));
    assert_eq!(
        job["timeNextExecution"],
        rfc(first + SignedDuration::from_hours(24))
    );
    let wrs = job["workRequests"].as_array().unwrap();
    assert_eq!(wrs.len(), 2, "one per group member");
    let wr: Value = app
        .get(&format!(
            "/20190801/workRequests/{}",
            wrs[0]["id"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(wr["operationType"], "UPDATEALL");
    assert_eq!(wr["status"], "ACCEPTED");
    let once_job: Value = app
        .get(&format!("/20190801/scheduledJobs/{oid}"))
        .await
        .json();
    assert!(
        once_job.get("timeNextExecution").is_none(),
        "a one-time job does not come back: {once_job}"
    );
    let once_wrs = once_job["workRequests"].as_array().unwrap();
    assert_eq!(once_wrs.len(), 1);
    assert_eq!(
        once_wrs[0]["displayName"],
        "Install packages bash, curl on lone"
    );

    // A member joins: the next occurrence reaches it (groups are expanded at fire time).
    let late = instance(&t, "late", OsFamily::Linux);
    app.store.managed_instance_insert(&late).await.unwrap();
    app.post(&format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId={}", late.id), None)
        .await;
    // osmd was down for two days: the occurrence of day 1 is older than the catch-up window
    // and is recorded as missed; day 2's, 30 minutes old, still runs.
    let now = first + SignedDuration::from_hours(48) + SignedDuration::from_mins(30);
    let handled = osmd::scheduler::run_once(app.store.as_ref(), now, hour)
        .await
        .unwrap();
    let outcomes: Vec<_> = handled.iter().map(|o| (o.outcome, o.time)).collect();
    assert_eq!(
        outcomes,
        [
            (
                OccurrenceOutcome::Missed,
                first + SignedDuration::from_hours(24)
            ),
            (
                OccurrenceOutcome::Fired,
                first + SignedDuration::from_hours(48)
            ),
        ]
    );
    assert_eq!(handled[1].work_request_ids.len(), 3);
    let job: Value = app
        .get(&format!("/20190801/scheduledJobs/{rid}"))
        .await
        .json();
    assert_eq!(job["workRequests"].as_array().unwrap().len(), 5);
    assert_eq!(
        job["timeNextExecution"],
        rfc(first + SignedDuration::from_hours(72))
    );

    // Deleted jobs never fire.
    app.delete(&format!("/20190801/scheduledJobs/{rid}"), None)
        .await;
    let later = first + SignedDuration::from_hours(72) + SignedDuration::from_secs(1);
    assert!(
        osmd::scheduler::run_once(app.store.as_ref(), later, hour)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The names of the instances the work requests `ids` act on, in their order.
async fn reached(app: &crate::TestApp, ids: impl IntoIterator<Item = &str>) -> Vec<String> {
    let mut names = vec![];
    for id in ids {
        let wr: Value = app
            .get(&format!("/20190801/workRequests/{id}"))
            .await
            .json();
        names.push(
            wr["managedInstanceId"]["displayName"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    names
}

/// Jobs fired in one pass (and run now) reach each instance once, however many of their
/// groups hold it, in name order; jobs sharing a group each reach its members.
async fn targets_reach_each_instance_once(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let web_b = instance(&t, "web-b", OsFamily::Linux);
    let web_a = instance(&t, "web-a", OsFamily::Linux);
    let db = instance(&t, "db", OsFamily::Linux);
    let idle = instance(&t, "idle", OsFamily::Linux);
    let all = [web_b.clone(), web_a.clone(), db.clone(), idle.clone()];
    app.store.managed_instance_insert_many(&all).await.unwrap();
    let webs = app.group(&t, "webs").await;
    let mixed = app.group(&t, "mixed").await;
    for (g, mi) in [
        (&webs, &web_a),
        (&webs, &web_b),
        (&mixed, &web_b),
        (&mixed, &db),
    ] {
        let r = app
            .post(&format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId={}", mi.id), None)
            .await;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let due = Timestamp::from_second(Timestamp::now().as_second() + 3600).unwrap();
    let create = |name: &str, body: Value| {
        let mut body = body;
        body["compartmentId"] = json!(t);
        body["displayName"] = json!(name);
        body["scheduleType"] = json!("ONETIME");
        body["timeNextExecution"] = json!(rfc(due));
        body["operationType"] = json!("UPDATEALL");
        body
    };
    let overlapping: Value = app
        .post(
            "/20190801/scheduledJobs",
            Some(&create(
                "overlapping",
                json!({"managedInstanceGroups": [{"id": webs}, {"id": mixed}]}),
            )),
        )
        .await
        .json();
    let mixed_only: Value = app
        .post(
            "/20190801/scheduledJobs",
            Some(&create(
                "mixed",
                json!({"managedInstanceGroups": [{"id": mixed}]}),
            )),
        )
        .await
        .json();
    let fired = osmd::scheduler::run_once(
        app.store.as_ref(),
        due + SignedDuration::from_secs(1),
        SignedDuration::from_hours(1),
    )
    .await
    .unwrap();
    assert_eq!(fired.len(), 2);
    let of = |job: &Value| {
        fired
            .iter()
            .find(|o| o.job_id == job["id"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        reached(
            &app,
            of(&overlapping).work_request_ids.iter().map(String::as_str)
        )
        .await,
        ["db", "web-a", "web-b"]
    );
    assert_eq!(
        reached(
            &app,
            of(&mixed_only).work_request_ids.iter().map(String::as_str)
        )
        .await,
        ["db", "web-b"]
    );

    // Run now expands the same way.
    let recurring: Value = app
        .post(
            "/20190801/scheduledJobs",
            Some(&json!({"compartmentId": t, "displayName": "daily", "scheduleType": "RECURRING",
                "timeNextExecution": rfc(due + SignedDuration::from_hours(24)), "intervalType": "DAY", "intervalValue": "1",
                "managedInstanceGroups": [{"id": mixed}, {"id": webs}],
                "operationType": "UPDATEALL"})),
        )
        .await
        .json();
    let r = app
        .post(
            &format!(
                "/20190801/scheduledJobs/{}/actions/runNow",
                recurring["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let job: Value = app
        .get(&format!(
            "/20190801/scheduledJobs/{}",
            recurring["id"].as_str().unwrap()
        ))
        .await
        .json();
    let ids = job["workRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|wr| wr["id"].as_str().unwrap());
    let mut names = reached(&app, ids).await;
    names.sort();
    assert_eq!(names, ["db", "web-a", "web-b"]);
}

async fn run_now_and_skip_next(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let mi = instance(&t, "host", OsFamily::Linux);
    app.store.managed_instance_insert(&mi).await.unwrap();
    let first = Timestamp::from_second(Timestamp::now().as_second() + 7200).unwrap();
    let mk = |name: &str, kind: &str| {
        let mut body = json!({"compartmentId": t, "displayName": name, "scheduleType": kind,
            "timeNextExecution": rfc(first), "managedInstances": [{"id": mi.id}], "operationType": "UPDATEALL"});
        if kind == "RECURRING" {
            body["intervalType"] = json!("WEEK");
            body["intervalValue"] = json!("1");
        }
        body
    };
    let weekly: Value = app
        .post("/20190801/scheduledJobs", Some(&mk("weekly", "RECURRING")))
        .await
        .json();
    let once: Value = app
        .post("/20190801/scheduledJobs", Some(&mk("once", "ONETIME")))
        .await
        .json();
    let wid = weekly["id"].as_str().unwrap();
    let oid = once["id"].as_str().unwrap();

    // Run now: an extra occurrence, the recurrence untouched.
    let r = app
        .post(
            &format!("/20190801/scheduledJobs/{wid}/actions/runNow"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.header("etag").is_some());
    let job: Value = app
        .get(&format!("/20190801/scheduledJobs/{wid}"))
        .await
        .json();
    assert_eq!(job["workRequests"].as_array().unwrap().len(), 1);
    assert_eq!(job["timeNextExecution"], rfc(first));
    assert!(job["timeLastExecution"].is_string());

    // Skip next: the next occurrence is recorded as skipped and the job moves a week on.
    let r = app
        .post(
            &format!("/20190801/scheduledJobs/{wid}/actions/skipNextExecution"),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let job: Value = app
        .get(&format!("/20190801/scheduledJobs/{wid}"))
        .await
        .json();
    assert_eq!(
        job["timeNextExecution"],
        rfc(first + SignedDuration::from_hours(24 * 7))
    );
    // Nothing fires at the skipped time.
    let at_skipped = first + SignedDuration::from_secs(1);
    let fired = osmd::scheduler::run_once(
        app.store.as_ref(),
        at_skipped,
        SignedDuration::from_hours(1),
    )
    .await
    .unwrap();
    assert!(fired.iter().all(|o| o.job_id != wid), "{fired:?}");

    // A one-time job cannot skip (409 Conflict: the oci SDK's and CLI's retry strategy retries
    // IncorrectState for about 90 s, and waiting never makes this job skippable); a stale etag
    // is refused (412).
    let before: Value = app
        .get(&format!("/20190801/scheduledJobs/{oid}"))
        .await
        .json();
    let r = app
        .post(
            &format!("/20190801/scheduledJobs/{oid}/actions/skipNextExecution"),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json::<Value>()["code"], "Conflict");
    assert!(r.text().contains("runs once"), "{}", r.text());
    let job: Value = app
        .get(&format!("/20190801/scheduledJobs/{oid}"))
        .await
        .json();
    assert_eq!(job, before, "nothing changed");
    let r = app
        .post_with(
            &format!("/20190801/scheduledJobs/{wid}/actions/runNow"),
            None,
            &[("if-match", "\"stale\"")],
        )
        .await;
    assert_eq!(r.status, 412);
    // Deleted jobs cannot run.
    app.delete(&format!("/20190801/scheduledJobs/{wid}"), None)
        .await;
    let r = app
        .post(
            &format!("/20190801/scheduledJobs/{wid}/actions/runNow"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}
