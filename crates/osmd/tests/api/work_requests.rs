use jiff::{SignedDuration, Timestamp};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::{
    IdName, OperationType, OsFamily, WorkRequest, WorkRequestActionType, WorkRequestLogEntry,
    WorkRequestResource, WorkRequestStatus,
};
use serde_json::{Value, json};

use crate::{Backend, both_backends, instance, spawn_app};

both_backends!(work_request_reads);

fn work_request(
    compartment: &str,
    mi: &IdName,
    at: Timestamp,
    parent: Option<&str>,
) -> WorkRequest {
    WorkRequest {
        id: new_ocid(ResourceKind::WorkRequest),
        compartment_id: compartment.to_string(),
        operation_type: OperationType::Install,
        status: WorkRequestStatus::Accepted,
        description: Some(format!("Install bash on {}", mi.display_name)),
        message: None,
        managed_instance: Some(mi.clone()),
        os_family: OsFamily::Linux,
        percent_complete: 0.0,
        time_accepted: at,
        time_started: None,
        time_finished: None,
        parent_id: parent.map(str::to_string),
        scheduled_job_id: None,
        resources: vec![WorkRequestResource {
            entity_type: "MANAGED_INSTANCE".into(),
            action_type: WorkRequestActionType::InProgress,
            identifier: mi.id.clone(),
            name: Some(mi.display_name.clone()),
            entity_uri: format!("/20190801/managedInstances/{}", mi.id),
        }],
        children_ids: vec![],
        action: None,
    }
}

async fn work_request_reads(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let a = instance(&t, "a", OsFamily::Linux);
    let c = instance(&t, "c", OsFamily::Linux);
    app.store
        .managed_instance_insert_many(&[a.clone(), c.clone()])
        .await
        .unwrap();
    let a_ref = IdName {
        id: a.id.clone(),
        display_name: "a".into(),
    };
    let c_ref = IdName {
        id: c.id.clone(),
        display_name: "c".into(),
    };
    let t0 = Timestamp::now() - SignedDuration::from_mins(30);
    let parent = work_request(&t, &a_ref, t0, None);
    let mut wrs = vec![parent.clone()];
    for i in 0..12 {
        let mi = if i % 3 == 0 { &c_ref } else { &a_ref };
        wrs.push(work_request(
            &t,
            mi,
            t0 + SignedDuration::from_secs(i + 1),
            Some(&parent.id),
        ));
    }
    let logs: Vec<(String, WorkRequestLogEntry)> = (0..7)
        .map(|i| {
            (
                parent.id.clone(),
                WorkRequestLogEntry {
                    message: format!("step {i}"),
                    timestamp: t0 + SignedDuration::from_secs(i),
                },
            )
        })
        .collect();
    app.store
        .work_request_insert_many(&wrs, &logs)
        .await
        .unwrap();

    let all = app
        .list_all(&format!("/20190801/workRequests?compartmentId={t}&limit=5"))
        .await;
    assert_eq!(all.len(), 13);
    assert_eq!(all[0]["status"], "ACCEPTED");
    assert!(all[0].get("percentComplete").unwrap().is_number());
    let times: Vec<&str> = all
        .iter()
        .map(|w| w["timeAccepted"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted, "newest first by default");
    let on_c = app
        .list_all(&format!(
            "/20190801/workRequests?compartmentId={t}&managedInstanceId={}",
            c.id
        ))
        .await;
    assert_eq!(on_c.len(), 4);
    let windows = app
        .list_all(&format!(
            "/20190801/workRequests?compartmentId={t}&osFamily=WINDOWS"
        ))
        .await;
    assert!(windows.is_empty());

    let r = app
        .get(&format!("/20190801/workRequests/{}", parent.id))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let wr: Value = r.json();
    assert_eq!(
        wr["managedInstanceId"],
        json!({"id": a.id, "displayName": "a"})
    );
    assert_eq!(wr["childrenIds"].as_array().unwrap().len(), 12);
    assert_eq!(wr["resources"][0]["entityType"], "MANAGED_INSTANCE");
    let child: Value = app
        .get(&format!("/20190801/workRequests/{}", wrs[1].id))
        .await
        .json();
    assert_eq!(child["parentId"], parent.id.as_str());

    let logs = app
        .list_all(&format!(
            "/20190801/workRequests/{}/logs?limit=3&sortOrder=ASC",
            parent.id
        ))
        .await;
    let messages: Vec<&str> = logs
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "step 0", "step 1", "step 2", "step 3", "step 4", "step 5", "step 6"
        ]
    );
    let errors = app
        .list_all(&format!(
            "/20190801/workRequests/{}/errors?limit=3",
            parent.id
        ))
        .await;
    assert!(errors.is_empty());

    let mi: Value = app
        .get(&format!("/20190801/managedInstances/{}", c.id))
        .await
        .json();
    assert_eq!(mi["workRequestCount"], 4);
    let r = app
        .get("/20190801/workRequests/ocid1.osmsworkrequest.oc1..nothere/logs")
        .await;
    assert_eq!(r.status, 404);
}
