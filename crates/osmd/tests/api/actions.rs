//! Asynchronous actions create ACCEPTED work requests; cancel and state changes follow the
//! state machine, with parents derived from their children.

use jiff::Timestamp;
use osm_core::{OsFamily, WorkRequestStatus};
use serde_json::Value;

use crate::{Backend, both_backends, instance, spawn_app};

both_backends!(
    instance_actions_create_work_requests,
    group_action_fans_out_and_cancels
);

async fn instance_actions_create_work_requests(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let mi = instance(&t, "web-01", OsFamily::Linux);
    let win = instance(&t, "win-01", OsFamily::Windows);
    app.store
        .managed_instance_insert_many(&[mi.clone(), win.clone()])
        .await
        .unwrap();
    let base = format!("/20190801/managedInstances/{}/actions", mi.id);

    let r = app
        .post(
            &format!("{base}/packages/install?softwarePackageName=bash"),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.body.is_empty());
    let wr_id = r.header("opc-work-request-id").unwrap().to_string();
    let wr: Value = app
        .get(&format!("/20190801/workRequests/{wr_id}"))
        .await
        .json();
    assert_eq!(wr["status"], "ACCEPTED");
    assert_eq!(wr["operationType"], "INSTALL");
    assert_eq!(wr["managedInstanceId"]["id"], mi.id.as_str());
    assert_eq!(wr["description"], "Install package bash on web-01");
    assert_eq!(wr["resources"][0]["identifier"], mi.id.as_str());
    let logs = app
        .list_all(&format!("/20190801/workRequests/{wr_id}/logs?limit=10"))
        .await;
    assert_eq!(
        logs[0]["message"],
        "Accepted: Install package bash on web-01"
    );

    for (path, op) in [
        ("packages/remove?softwarePackageName=nano", "REMOVE"),
        ("packages/update?softwarePackageName=openssl", "UPDATE"),
        ("packages/updateAll?updateType=SECURITY", "UPDATEALL"),
        ("packages/updateAll", "UPDATEALL"),
    ] {
        let r = app.post(&format!("{base}/{path}"), None).await;
        assert_eq!(r.status, 202, "{path}: {}", r.text());
        let wr: Value = app
            .get(&format!(
                "/20190801/workRequests/{}",
                r.header("opc-work-request-id").unwrap()
            ))
            .await
            .json();
        assert_eq!(wr["operationType"], op);
    }
    let r = app
        .post(
            &format!(
                "/20190801/managedInstances/{}/actions/updates/install?windowsUpdateName=KB5034441",
                win.id
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());

    // Bad requests create nothing.
    for (path, status) in [
        (format!("{base}/packages/install"), 400),
        (format!("{base}/packages/install?softwarePackageName=-rf"), 400),
        (format!("{base}/packages/install?softwarePackageName=a%20b"), 400),
        (format!("{base}/packages/updateAll?updateType=SOME"), 400),
        (format!("{base}/updates/install?windowsUpdateName=KB1"), 400),
        (format!("/20190801/managedInstances/{}/actions/packages/install?softwarePackageName=bash", win.id), 400),
        ("/20190801/managedInstances/ocid1.instance.oc1..nothere/actions/packages/install?softwarePackageName=bash".to_string(), 404),
    ] {
        let r = app.post(&path, None).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    let all = app
        .list_all(&format!("/20190801/workRequests?compartmentId={t}"))
        .await;
    assert_eq!(all.len(), 6);
    let metrics = app.get("/metrics").await.text();
    assert!(
        metrics.contains("osm_work_request_queue_depth 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("osm_work_requests{status=\"ACCEPTED\",operation=\"UPDATEALL\"} 2"),
        "{metrics}"
    );
    let view: Value = app
        .get(&format!("/20190801/managedInstances/{}", mi.id))
        .await
        .json();
    assert_eq!(view["workRequestCount"], 5);

    // The same retry token gives the same work request.
    let headers = [("opc-retry-token", "install-once")];
    let a = app
        .post_with(
            &format!("{base}/packages/install?softwarePackageName=vim"),
            None,
            &headers,
        )
        .await;
    let c = app
        .post_with(
            &format!("{base}/packages/install?softwarePackageName=vim"),
            None,
            &headers,
        )
        .await;
    assert_eq!(
        a.header("opc-work-request-id"),
        c.header("opc-work-request-id")
    );
    let other = app
        .post_with(
            &format!("{base}/packages/install?softwarePackageName=emacs"),
            None,
            &headers,
        )
        .await;
    assert_eq!(other.status, 409);

    // Cancel: ACCEPTED ends CANCELED at once; a terminal request cannot be canceled again.
    let r = app
        .delete(&format!("/20190801/workRequests/{wr_id}"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let wr: Value = app
        .get(&format!("/20190801/workRequests/{wr_id}"))
        .await
        .json();
    assert_eq!(wr["status"], "CANCELED");
    assert!(wr["timeFinished"].is_string());
    let r = app
        .delete(&format!("/20190801/workRequests/{wr_id}"), None)
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json::<Value>()["code"], "IncorrectState");
}

async fn group_action_fans_out_and_cancels(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let g = app.group(&t, "fleet").await;
    let r = app
        .post(
            &format!(
                "/20190801/managedInstanceGroups/{g}/actions/updates/installAll?updateType=SECURITY"
            ),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        409,
        "an empty group has nothing to update: {}",
        r.text()
    );
    // Conflict, which clients do not retry (the oci CLI retries IncorrectState for ~90 s).
    assert_eq!(r.json::<Value>()["code"], "Conflict");
    let hosts: Vec<_> = (0..3)
        .map(|i| instance(&t, &format!("h{i}"), OsFamily::Linux))
        .collect();
    app.store
        .managed_instance_insert_many(&hosts)
        .await
        .unwrap();
    for h in &hosts {
        let r = app
            .post(&format!("/20190801/managedInstanceGroups/{g}/actions/attachManagedInstance?managedInstanceId={}", h.id), None)
            .await;
        assert_eq!(r.status, 204);
    }
    let r = app
        .post(
            &format!(
                "/20190801/managedInstanceGroups/{g}/actions/updates/installAll?updateType=SECURITY"
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let parent_id = r.header("opc-work-request-id").unwrap().to_string();
    let parent: Value = app
        .get(&format!("/20190801/workRequests/{parent_id}"))
        .await
        .json();
    assert_eq!(parent["status"], "ACCEPTED");
    let children: Vec<String> = parent["childrenIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(children.len(), 3);
    for c in &children {
        let child: Value = app.get(&format!("/20190801/workRequests/{c}")).await.json();
        assert_eq!(child["parentId"], parent_id.as_str());
        let description = child["description"].as_str().unwrap();
        assert!(
            description.starts_with("Install all security package updates on h"),
            "{description}"
        );
    }

    // An agent takes the first child: the parent follows.
    let now = Timestamp::now();
    app.store
        .work_request_transition(
            &children[0],
            &[WorkRequestStatus::Accepted],
            WorkRequestStatus::InProgress,
            now,
            Some("claimed"),
        )
        .await
        .unwrap();
    let parent: Value = app
        .get(&format!("/20190801/workRequests/{parent_id}"))
        .await
        .json();
    assert_eq!(parent["status"], "IN_PROGRESS");
    // Illegal transitions are refused by the compare-and-set.
    let err = app
        .store
        .work_request_transition(
            &children[1],
            &[WorkRequestStatus::InProgress],
            WorkRequestStatus::Succeeded,
            now,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ACCEPTED"), "{err}");

    // Cancel the parent: queued children end CANCELED, the running one becomes CANCELLING.
    let r = app
        .delete(&format!("/20190801/workRequests/{parent_id}"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let states: Vec<String> = {
        let mut v = vec![];
        for c in &children {
            v.push(
                app.get(&format!("/20190801/workRequests/{c}"))
                    .await
                    .json::<Value>()["status"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        v
    };
    assert_eq!(states, ["CANCELLING", "CANCELED", "CANCELED"]);
    let parent: Value = app
        .get(&format!("/20190801/workRequests/{parent_id}"))
        .await
        .json();
    assert_eq!(parent["status"], "CANCELLING");
    assert!((parent["percentComplete"].as_f64().unwrap() - 200.0 / 3.0).abs() < 0.01);
    // The agent stops at a safe point: everything is canceled.
    app.store
        .work_request_transition(
            &children[0],
            &[WorkRequestStatus::Cancelling],
            WorkRequestStatus::Canceled,
            Timestamp::now(),
            Some("stopped"),
        )
        .await
        .unwrap();
    let parent: Value = app
        .get(&format!("/20190801/workRequests/{parent_id}"))
        .await
        .json();
    assert_eq!(parent["status"], "CANCELED");
    assert_eq!(parent["percentComplete"], 100.0);
    assert!(parent["timeFinished"].is_string());
}
