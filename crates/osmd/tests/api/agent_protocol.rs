//! The agent protocol end to end against a real osmd: enrolment with the install key first
//! start wrote, claiming work under a lease, logs and outcomes, cancel at every stage, lease
//! expiry and retention.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use osm_client::AgentClient;
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::{IdName, OperationType, OsFamily, WorkRequest, WorkRequestStatus};
use serde_json::{Value, json};

use crate::{Backend, TestApp, both_backends, spawn_app};

both_backends!(
    enrol_claim_log_complete,
    batched_completion,
    exchange_reports_and_claims_in_one_call,
    concurrent_agents_share_transactions,
    cancel_and_lease_expiry,
    retention_boundaries,
    install_keys
);

async fn enrol(app: &TestApp, hostname: &str) -> AgentClient {
    let key = std::fs::read_to_string(app.dir.path().join("admin/install-key")).unwrap();
    let ca = std::fs::read(app.ca_file()).unwrap();
    let body = json!({"hostname": hostname, "osFamily": "LINUX",
        "facts": {"osName": "Debian GNU/Linux", "osVersion": "12", "osKernelVersion": "6.1.0", "isRebootRequired": false,
                  "updates": {"security": 3, "bug": 1, "enhancement": 0, "other": 0}}});
    let (agent, answer) = AgentClient::enroll(&app.base, Some(&ca), key.trim(), &body)
        .await
        .expect("enrols");
    assert_eq!(answer["compartmentId"], app.tenancy.as_str());
    agent
}

async fn poll(agent: &AgentClient, wait: u64) -> Vec<Value> {
    let r = agent
        .post("/agent/v1/work/poll", &json!({"waitSeconds": wait}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn wr(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/20190801/workRequests/{id}"))
        .await
        .json()
}

async fn install(app: &TestApp, instance: &str, package: &str) -> String {
    let r = app
        .post(&format!("/20190801/managedInstances/{instance}/actions/packages/install?softwarePackageName={package}"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.header("opc-work-request-id").unwrap().to_string()
}

async fn enrol_claim_log_complete(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "web-01").await;
    let mi: Value = app
        .get(&format!("/20190801/managedInstances/{}", agent.instance_id))
        .await
        .json();
    assert_eq!(mi["displayName"], "web-01");
    assert_eq!(mi["securityUpdatesAvailable"], 3);
    assert_eq!(mi["status"], "NORMAL");

    // Wrong credentials are refused.
    let ca = std::fs::read(app.ca_file()).unwrap();
    assert!(
        AgentClient::enroll(
            &app.base,
            Some(&ca),
            "osmik_wrong",
            &json!({"hostname": "x", "osFamily": "LINUX"})
        )
        .await
        .is_err()
    );
    let impostor =
        AgentClient::resume(&app.base, Some(&ca), &agent.instance_id, "not-the-secret").unwrap();
    assert_eq!(
        impostor
            .post("/agent/v1/heartbeat", &json!({}))
            .await
            .unwrap()
            .status,
        401
    );

    // Nothing queued: a short poll returns empty after waiting.
    let started = Instant::now();
    assert!(poll(&agent, 1).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A long poll wakes as soon as work is queued.
    let waiting = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (poll(&agent, 20).await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = install(&app, &agent.instance_id, "bash").await;
    let (work, waited) = waiting.await.unwrap();
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
    assert_eq!(work.len(), 1);
    assert_eq!(work[0]["id"], id.as_str());
    assert_eq!(
        work[0]["action"],
        json!({"kind": "install_package", "names": ["bash"]})
    );
    assert_eq!(wr(&app, &id).await["status"], "IN_PROGRESS");
    assert!(
        poll(&agent, 0).await.is_empty(),
        "claimed work is not handed out twice"
    );

    // Another agent cannot touch it.
    let other = enrol(&app, "db-01").await;
    let r = other
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "SUCCEEDED"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    let r = agent
        .post(
            &format!("/agent/v1/work/{id}/log"),
            &json!({"lines": ["Reading package lists...", "Setting up bash (5.2-1)"]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let r = agent
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "FAILED"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "a failure must say why");
    let r = agent
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "SUCCEEDED"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let done = wr(&app, &id).await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["percentComplete"], 100.0);
    assert!(done["timeFinished"].is_string());
    let logs: Vec<String> = app
        .list_all(&format!(
            "/20190801/workRequests/{id}/logs?sortOrder=ASC&limit=50"
        ))
        .await
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        logs,
        [
            "Accepted: Install package bash on web-01",
            "Started by the agent",
            "Reading package lists...",
            "Setting up bash (5.2-1)",
            "Succeeded"
        ]
    );
    let r = agent
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "FAILED", "errors": [{"code": "x", "message": "y"}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "a finished request stays finished");

    // A failure carries errors a person can act on.
    let id = install(&app, &agent.instance_id, "nosuchpackage").await;
    assert_eq!(poll(&agent, 5).await.len(), 1);
    let r = agent
        .post(&format!("/agent/v1/work/{id}/complete"), &json!({"outcome": "FAILED", "errors": [{"code": "PackageNotFound", "message": "apt cannot find package nosuchpackage; check the name and the host's sources"}]}))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(wr(&app, &id).await["status"], "FAILED");
    let errors = app
        .list_all(&format!("/20190801/workRequests/{id}/errors?limit=5"))
        .await;
    assert_eq!(errors[0]["code"], "PackageNotFound");
}

async fn complete_batch(agent: &AgentClient, items: Value) -> (u16, Value) {
    let r = agent
        .post("/agent/v1/work/complete", &json!({ "items": items }))
        .await
        .unwrap();
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

async fn batched_completion(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "web-01").await;
    let other = enrol(&app, "web-02").await;
    let ids: Vec<String> = {
        let mut ids = vec![];
        for p in ["a", "b", "c", "d"] {
            ids.push(install(&app, &agent.instance_id, p).await);
        }
        ids
    };
    let foreign = install(&app, &other.instance_id, "e").await;
    assert_eq!(poll(&agent, 5).await.len(), 4);
    assert_eq!(poll(&other, 5).await.len(), 1);

    // Bad batches are refused whole: nothing changes.
    for bad in [
        json!([]),
        json!([{"id": ids[0], "outcome": "SUCCEEDED"}, {"id": ids[1], "outcome": "FAILED"}]),
        json!([{"outcome": "SUCCEEDED"}]),
        json!([{"id": ids[0], "outcome": "DONE"}]),
        json!([{"id": ids[0], "outcome": "SUCCEEDED", "log": ["x".repeat(9000)]}]),
        Value::Array(vec![json!({"id": ids[0], "outcome": "SUCCEEDED"}); 1001]),
    ] {
        let (status, body) = complete_batch(&agent, bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    for id in &ids {
        assert_eq!(wr(&app, id).await["status"], "IN_PROGRESS");
    }

    // One call, one transaction; each item answers on its own.
    let (status, answers) = complete_batch(
        &agent,
        json!([
            {"id": ids[0], "outcome": "SUCCEEDED", "log": ["Setting up a (1.0)", "odd\u{0}output"]},
            {"id": ids[1], "outcome": "FAILED", "errors": [{"code": "PackageNotFound", "message": "no package b"}]},
            {"id": foreign, "outcome": "SUCCEEDED"},
            {"id": "ocid1.osmsworkrequest.oc1..aaaaaaaanosuchthing", "outcome": "SUCCEEDED"},
            {"id": ids[0], "outcome": "FAILED", "errors": [{"code": "x", "message": "y"}]},
            {"id": ids[2], "outcome": "CANCELED"},
            {"id": ids[3], "outcome": "SUCCEEDED"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{answers}");
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 7);
    assert_eq!(answers[0], json!({"id": ids[0], "status": "SUCCEEDED"}));
    assert_eq!(answers[1], json!({"id": ids[1], "status": "FAILED"}));
    assert_eq!(answers[2]["error"]["code"], "NotAuthorizedOrNotFound");
    assert_eq!(answers[3]["error"]["code"], "NotAuthorizedOrNotFound");
    assert_eq!(
        answers[4]["error"]["code"], "IncorrectState",
        "a request already ended in this batch stays ended"
    );
    assert_eq!(answers[5]["error"]["code"], "IncorrectState");
    assert_eq!(answers[6], json!({"id": ids[3], "status": "SUCCEEDED"}));

    assert_eq!(wr(&app, &ids[0]).await["status"], "SUCCEEDED");
    assert_eq!(wr(&app, &ids[1]).await["status"], "FAILED");
    assert_eq!(wr(&app, &ids[2]).await["status"], "IN_PROGRESS");
    assert_eq!(wr(&app, &foreign).await["status"], "IN_PROGRESS");
    let logs: Vec<String> = app
        .list_all(&format!(
            "/20190801/workRequests/{}/logs?sortOrder=ASC&limit=50",
            ids[0]
        ))
        .await
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    // A NUL (which PostgreSQL text cannot hold) is kept as U+FFFD.
    assert_eq!(
        &logs[1..],
        [
            "Started by the agent",
            "Setting up a (1.0)",
            "odd\u{FFFD}output",
            "Succeeded"
        ]
    );
    let errors = app
        .list_all(&format!("/20190801/workRequests/{}/errors", ids[1]))
        .await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "PackageNotFound");

    // A cancel in flight: the batch ends it CANCELED as the agent stopped.
    let r = app
        .delete(&format!("/20190801/workRequests/{}", ids[2]), None)
        .await;
    assert!(r.status < 300, "{}", r.text());
    let (_, answers) = complete_batch(&agent, json!([{"id": ids[2], "outcome": "CANCELED"}])).await;
    assert_eq!(answers[0], json!({"id": ids[2], "status": "CANCELED"}));
}

async fn exchange(agent: &AgentClient, body: Value) -> (u16, Value) {
    let r = agent.post("/agent/v1/work/exchange", &body).await.unwrap();
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

async fn exchange_reports_and_claims_in_one_call(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "web-01").await;
    let other = enrol(&app, "web-02").await;
    let first: Vec<String> = {
        let mut ids = vec![];
        for p in ["a", "b"] {
            ids.push(install(&app, &agent.instance_id, p).await);
        }
        ids
    };
    let foreign = install(&app, &other.instance_id, "z").await;

    // Nothing to report yet: a plain claim.
    let (status, answer) = exchange(&agent, json!({"max": 10})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reported"], json!([]));
    let work: Vec<&str> = answer["work"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(work, [first[0].as_str(), first[1].as_str()]);
    assert_eq!(
        answer["work"][0]["action"],
        json!({"kind": "install_package", "names": ["a"]}),
        "{answer}"
    );

    // Bad reports are refused whole: nothing is recorded and nothing claimed.
    let second = install(&app, &agent.instance_id, "c").await;
    for bad in [
        json!({"report": [{"id": first[0], "outcome": "FAILED"}]}),
        json!({"report": [{"outcome": "SUCCEEDED"}]}),
        json!({"report": [{"id": first[0], "outcome": "SUCCEEDED"}], "unknown": 1}),
        json!({"report": Value::Array(vec![json!({"id": first[0], "outcome": "SUCCEEDED"}); 1001])}),
    ] {
        let (status, body) = exchange(&agent, bad).await;
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(wr(&app, &first[0]).await["status"], "IN_PROGRESS");
    assert_eq!(wr(&app, &second).await["status"], "ACCEPTED");

    // Outcomes of the first batch and the claim of the next in one call; each report answers
    // on its own, another instance's work request is not this agent's.
    let (status, answer) = exchange(
        &agent,
        json!({"max": 10, "waitSeconds": 5, "report": [
            {"id": first[0], "outcome": "SUCCEEDED", "log": ["Setting up a (1.0)"]},
            {"id": first[1], "outcome": "FAILED", "errors": [{"code": "PackageNotFound", "message": "no package b"}]},
            {"id": foreign, "outcome": "SUCCEEDED"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["reported"][0],
        json!({"id": first[0], "status": "SUCCEEDED"})
    );
    assert_eq!(
        answer["reported"][1],
        json!({"id": first[1], "status": "FAILED"})
    );
    assert_eq!(
        answer["reported"][2]["error"]["code"],
        "NotAuthorizedOrNotFound"
    );
    assert_eq!(answer["work"].as_array().unwrap().len(), 1);
    assert_eq!(answer["work"][0]["id"], second.as_str());
    assert_eq!(wr(&app, &first[0]).await["status"], "SUCCEEDED");
    assert_eq!(wr(&app, &first[1]).await["status"], "FAILED");
    assert_eq!(wr(&app, &foreign).await["status"], "ACCEPTED");
    assert_eq!(wr(&app, &second).await["status"], "IN_PROGRESS");

    // With nothing queued the outcomes are recorded at once and the call waits for new work.
    let started = Instant::now();
    let waiter = {
        let agent = agent.clone();
        let second = second.clone();
        tokio::spawn(async move {
            exchange(&agent, json!({"max": 10, "waitSeconds": 20, "report": [{"id": second, "outcome": "SUCCEEDED"}]})).await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while wr(&app, &second).await["status"] != "SUCCEEDED" {
        assert!(Instant::now() < deadline, "the report waited for work");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = install(&app, &agent.instance_id, "d").await;
    let (status, answer) = waiter.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reported"][0]["status"], "SUCCEEDED");
    assert_eq!(
        answer["work"][0]["id"],
        third.as_str(),
        "woken by the new work"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// Many agents polling and reporting at once: every work request is handed out exactly once
/// and ends as its agent said, whatever batches the calls were gathered in.
async fn concurrent_agents_share_transactions(b: Backend) {
    let app = spawn_app(b).await;
    let mut agents = vec![];
    for i in 0..8 {
        agents.push(enrol(&app, &format!("host-{i}")).await);
    }
    let mut queued = std::collections::HashMap::new();
    for a in &agents {
        for p in 0..15 {
            queued.insert(
                install(&app, &a.instance_id, &format!("p{p}")).await,
                a.instance_id.clone(),
            );
        }
    }
    let tasks: Vec<_> = agents
        .into_iter()
        .map(|agent| {
            tokio::spawn(async move {
                let mut seen = vec![];
                let mut report: Vec<Value> = vec![];
                loop {
                    let (status, answer) =
                        exchange(&agent, json!({"max": 4, "report": report})).await;
                    assert_eq!(status, 200, "{answer}");
                    for a in answer["reported"].as_array().unwrap() {
                        assert!(a.get("status").is_some(), "{a}");
                    }
                    let work = answer["work"].as_array().unwrap().clone();
                    if work.is_empty() && report.is_empty() {
                        return (agent.instance_id.clone(), seen);
                    }
                    report = work
                        .iter()
                        .map(|w| json!({"id": w["id"], "outcome": "SUCCEEDED"}))
                        .collect();
                    seen.extend(work.iter().map(|w| w["id"].as_str().unwrap().to_string()));
                }
            })
        })
        .collect();
    let mut handed_out = std::collections::HashSet::new();
    for t in tasks {
        let (instance, seen) = t.await.unwrap();
        assert_eq!(seen.len(), 15, "each agent got its own work, all of it");
        for id in seen {
            assert_eq!(queued[&id], instance, "work went to its own instance");
            assert!(handed_out.insert(id), "handed out once");
        }
    }
    for id in queued.keys() {
        assert_eq!(wr(&app, id).await["status"], "SUCCEEDED");
    }
}

async fn cancel_and_lease_expiry(b: Backend) {
    let app = spawn_app(b).await;
    let agent = enrol(&app, "web-01").await;

    // Cancel while running: the agent hears it in its heartbeat and stops.
    let id = install(&app, &agent.instance_id, "bash").await;
    assert_eq!(poll(&agent, 5).await.len(), 1);
    assert_eq!(
        app.delete(&format!("/20190801/workRequests/{id}"), None)
            .await
            .status,
        202
    );
    assert_eq!(wr(&app, &id).await["status"], "CANCELLING");
    let hb: Value = agent
        .post("/agent/v1/heartbeat", &json!({"isRebootRequired": true}))
        .await
        .unwrap()
        .json();
    assert_eq!(hb["inFlight"], json!([{"id": id, "status": "CANCELLING"}]));
    let r = agent
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "CANCELED"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wr(&app, &id).await["status"], "CANCELED");
    let mi: Value = app
        .get(&format!("/20190801/managedInstances/{}", agent.instance_id))
        .await
        .json();
    assert_eq!(mi["isRebootRequired"], true);

    // A cancel that comes too late: the work finished anyway, and the log says so.
    let id = install(&app, &agent.instance_id, "curl").await;
    assert_eq!(poll(&agent, 5).await.len(), 1);
    app.delete(&format!("/20190801/workRequests/{id}"), None)
        .await;
    agent
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "SUCCEEDED"}),
        )
        .await
        .unwrap();
    assert_eq!(wr(&app, &id).await["status"], "SUCCEEDED");
    let logs = app
        .list_all(&format!("/20190801/workRequests/{id}/logs?limit=50"))
        .await;
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .contains("cancel came too late")),
        "{logs:?}"
    );
    // CANCELED is only for requests being cancelled.
    let id = install(&app, &agent.instance_id, "vim").await;
    assert_eq!(poll(&agent, 5).await.len(), 1);
    let r = agent
        .post(
            &format!("/agent/v1/work/{id}/complete"),
            &json!({"outcome": "CANCELED"}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);

    // The agent goes silent: once the lease runs out the work fails, saying why.
    let later = Timestamp::now() + SignedDuration::from_mins(3);
    let expired = app
        .store
        .work_request_expire_leases(later, 100)
        .await
        .unwrap();
    assert_eq!(expired, vec![id.clone()]);
    let failed = wr(&app, &id).await;
    assert_eq!(failed["status"], "FAILED");
    let errors = app
        .list_all(&format!("/20190801/workRequests/{id}/errors?limit=5"))
        .await;
    assert_eq!(errors[0]["code"], "LeaseExpired");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("web-01 stopped reporting"),
        "{errors:?}"
    );
    assert!(
        app.store
            .work_request_expire_leases(later, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

fn finished(
    compartment: &str,
    status: WorkRequestStatus,
    finished: Option<Timestamp>,
) -> WorkRequest {
    WorkRequest {
        id: new_ocid(ResourceKind::WorkRequest),
        compartment_id: compartment.into(),
        operation_type: OperationType::UpdateAll,
        status,
        description: Some("old".into()),
        message: None,
        managed_instance: Some(IdName {
            id: "ocid1.instance.oc1..gone".into(),
            display_name: "gone".into(),
        }),
        os_family: OsFamily::Linux,
        percent_complete: 100.0,
        time_accepted: finished.unwrap_or_else(Timestamp::now) - SignedDuration::from_hours(1),
        time_started: None,
        time_finished: finished,
        parent_id: None,
        scheduled_job_id: None,
        resources: vec![],
        children_ids: vec![],
        action: None,
    }
}

async fn retention_boundaries(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.tenancy.clone();
    let now = Timestamp::now();
    let day = SignedDuration::from_hours(24);
    let kept = finished(
        &t,
        WorkRequestStatus::Succeeded,
        Some(now - day * 13 - SignedDuration::from_hours(23)),
    );
    let purged = finished(
        &t,
        WorkRequestStatus::Failed,
        Some(now - day * 14 - SignedDuration::from_mins(1)),
    );
    let canceled = finished(&t, WorkRequestStatus::Canceled, Some(now - day * 30));
    let queued = finished(&t, WorkRequestStatus::Accepted, None);
    let mut running = finished(&t, WorkRequestStatus::InProgress, None);
    running.time_accepted = now - day * 40;
    let mut cancelling = finished(&t, WorkRequestStatus::Cancelling, None);
    cancelling.time_accepted = now - day * 40;
    let all = [
        kept.clone(),
        purged.clone(),
        canceled.clone(),
        queued.clone(),
        running.clone(),
        cancelling.clone(),
    ];
    let logs: Vec<_> = all
        .iter()
        .map(|w| {
            (
                w.id.clone(),
                osm_core::WorkRequestLogEntry {
                    message: "x".into(),
                    timestamp: now - day * 40,
                },
            )
        })
        .collect();
    app.store
        .work_request_insert_many(&all, &logs)
        .await
        .unwrap();
    // Batches of one until nothing is left (osmd's own cleaner may take some first).
    loop {
        let n = app
            .store
            .work_request_purge(now - day * 14, 1)
            .await
            .unwrap();
        assert!(n <= 1, "a batch never exceeds its limit");
        if n == 0 {
            break;
        }
    }
    for w in [&purged, &canceled] {
        assert!(app.store.work_request_get(&w.id).await.unwrap().is_none());
        assert!(
            app.get(&format!("/20190801/workRequests/{}/logs", w.id))
                .await
                .status
                == 404
        );
    }
    for w in [&kept, &queued, &running, &cancelling] {
        assert!(
            app.store.work_request_get(&w.id).await.unwrap().is_some(),
            "{:?} must stay",
            w.status
        );
    }
}

async fn install_keys(b: Backend) {
    let app = spawn_app(b).await;
    let team = app.compartment(&app.tenancy, "team").await;
    let r = app
        .post(
            "/osm/v1/installKeys",
            Some(&json!({"compartmentId": team, "displayName": "team hosts"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let created: Value = r.json();
    let secret = created["key"].as_str().unwrap().to_string();
    let key_id = created["id"].as_str().unwrap().to_string();
    let listed = app
        .get(&format!("/osm/v1/installKeys?compartmentId={team}"))
        .await
        .json::<Vec<Value>>();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("key").is_none(), "the secret is shown once");

    let ca = std::fs::read(app.ca_file()).unwrap();
    let body = json!({"hostname": "team-01", "osFamily": "LINUX"});
    let (agent, answer) = AgentClient::enroll(&app.base, Some(&ca), &secret, &body)
        .await
        .unwrap();
    assert_eq!(answer["compartmentId"], team.as_str());
    let mi: Value = app
        .get(&format!("/20190801/managedInstances/{}", agent.instance_id))
        .await
        .json();
    assert_eq!(mi["compartmentId"], team.as_str());
    // A key cannot place hosts outside its compartment.
    let outside = json!({"hostname": "x", "osFamily": "LINUX", "compartmentId": app.tenancy});
    assert!(
        AgentClient::enroll(&app.base, Some(&ca), &secret, &outside)
            .await
            .is_err()
    );

    assert_eq!(
        app.delete(&format!("/osm/v1/installKeys/{key_id}"), None)
            .await
            .status,
        204
    );
    assert!(
        AgentClient::enroll(&app.base, Some(&ca), &secret, &body)
            .await
            .is_err(),
        "a revoked key enrols nothing"
    );
    assert_eq!(
        app.delete("/osm/v1/installKeys/ocid1.osmsinstallkey.oc1..none", None)
            .await
            .status,
        404
    );
    let r = app
        .post(
            "/osm/v1/installKeys",
            Some(&json!({"compartmentId": "ocid1.compartment.oc1..none"})),
        )
        .await;
    assert_eq!(r.status, 404);
}
