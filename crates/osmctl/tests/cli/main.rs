//! osmctl end to end: the built binary against a real osmd (both store backends) and hosts
//! simulated by the real `osm-sim`.

mod report;
#[macro_use]
mod support;
mod errata;

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use support::{Backend, Bench, Run};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(id).collect()
}

/// Waits until every work request of `compartment` has ended.
async fn all_work_done(bench: &Bench, compartment: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = bench
            .api(&format!(
                "/20190801/workRequests?compartmentId={compartment}"
            ))
            .await;
        let open = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| {
                !matches!(
                    w["status"].as_str(),
                    Some("SUCCEEDED" | "FAILED" | "CANCELED")
                )
            })
            .count();
        if open == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} work requests still open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator's day: a compartment, simulated hosts in it, a group, a recurring job fired
/// now, a group update followed to the end, and every answer checked against the API.
async fn story(backend: Backend) {
    let mut bench = Bench::start(backend).await;

    let created = bench
        .osmctl(&[
            "-o",
            "json",
            "compartment",
            "create",
            "--name",
            "prod",
            "--description",
            "production",
        ])
        .await
        .ok()
        .json();
    let prod = id(&created);
    assert_eq!(
        created,
        bench.api(&format!("/20160918/compartments/{prod}")).await
    );
    let tree = bench
        .osmctl(&["-o", "json", "compartment", "list", "--recursive", "--all"])
        .await
        .ok()
        .json();
    assert!(ids(&tree).contains(&prod));
    let table = bench.osmctl(&["compartment", "list"]).await.ok().stdout;
    assert!(
        table.contains("NAME") && table.contains("prod") && table.contains(&prod),
        "{table}"
    );

    bench
        .simulate(3, &["--compartment", &prod, "--action-ms", "50"])
        .await;
    let hosts = bench.instances(&prod, 3).await;
    let listed = bench
        .osmctl(&[
            "-o",
            "json",
            "instance",
            "list",
            "-c",
            &prod,
            "--sort-by",
            "name",
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&listed), hosts);
    let one = bench
        .osmctl(&["-o", "json", "instance", "get", &hosts[0]])
        .await
        .ok()
        .json();
    assert_eq!(one["displayName"], "sim-00001");
    let table = bench
        .osmctl(&["instance", "get", &hosts[0]])
        .await
        .ok()
        .stdout;
    assert!(
        table.contains("displayName") && table.contains("sim-00001"),
        "{table}"
    );

    let group = bench
        .osmctl(&[
            "-o",
            "json",
            "group",
            "create",
            "-c",
            &prod,
            "--name",
            "web",
            "--tag",
            "tier=front",
        ])
        .await
        .ok()
        .json();
    let g = id(&group);
    assert_eq!(group["freeformTags"]["tier"], "front");
    let attach: Vec<&str> = ["group", "attach", &g]
        .into_iter()
        .chain(hosts.iter().flat_map(|h| ["--instance", h.as_str()]))
        .collect();
    bench.osmctl(&attach).await.ok();
    let group = bench
        .osmctl(&["-o", "json", "group", "get", &g])
        .await
        .ok()
        .json();
    assert_eq!(group["managedInstances"].as_array().unwrap().len(), 3);
    assert_eq!(
        group,
        bench
            .api(&format!("/20190801/managedInstanceGroups/{g}"))
            .await
    );

    // A recurring job: first run one day from now, in the job's zone.
    let before = Timestamp::now();
    let job = bench
        .osmctl(&[
            "-o",
            "json",
            "job",
            "create",
            "-c",
            &prod,
            "--name",
            "nightly",
            "--group",
            &g,
            "--operation",
            "update-all",
            "--update-type",
            "security",
            "--every",
            "1d",
            "--time-zone",
            "Europe/Paris",
        ])
        .await
        .ok()
        .json();
    let j = id(&job);
    assert_eq!(
        (
            job["scheduleType"].as_str(),
            job["intervalType"].as_str(),
            job["intervalValue"].as_str()
        ),
        (Some("RECURRING"), Some("DAY"), Some("1"))
    );
    assert_eq!(job["timeZone"], "Europe/Paris");
    let next: Timestamp = job["timeNextExecution"].as_str().unwrap().parse().unwrap();
    // One calendar day later in the job's zone (23 or 25 hours across a clock change).
    let a_day_after = |t: Timestamp| {
        t.in_tz("Europe/Paris")
            .unwrap()
            .checked_add(jiff::Span::new().days(1))
            .unwrap()
            .timestamp()
    };
    assert!(
        next >= a_day_after(before) - jiff::SignedDuration::from_secs(1)
            && next <= a_day_after(Timestamp::now()),
        "{job}"
    );
    assert_eq!(
        bench
            .osmctl(&["-o", "json", "job", "get", &j])
            .await
            .ok()
            .json(),
        bench.api(&format!("/20190801/scheduledJobs/{j}")).await
    );
    let upcoming = bench
        .osmctl(&[
            "-o", "json", "job", "upcoming", "-c", &prod, "--before", "+2d",
        ])
        .await
        .ok()
        .json();
    assert_eq!(ids(&upcoming), std::slice::from_ref(&j));
    let soon = bench
        .osmctl(&[
            "-o", "json", "job", "upcoming", "-c", &prod, "--before", "+1h",
        ])
        .await
        .ok()
        .json();
    assert_eq!(soon, serde_json::json!([]));

    bench.osmctl(&["job", "run-now", &j]).await.ok();
    let fired = bench.api(&format!("/20190801/scheduledJobs/{j}")).await;
    assert_eq!(
        fired["workRequests"].as_array().unwrap().len(),
        3,
        "{fired}"
    );
    assert_eq!(
        fired["timeNextExecution"], job["timeNextExecution"],
        "run-now keeps the recurrence"
    );
    bench.osmctl(&["job", "skip-next", &j]).await.ok();
    let skipped = bench.api(&format!("/20190801/scheduledJobs/{j}")).await;
    let after: Timestamp = skipped["timeNextExecution"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, a_day_after(next));
    let renamed = bench
        .osmctl(&[
            "-o", "json", "job", "update", &j, "--name", "weekly", "--every", "1w",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        (
            renamed["displayName"].as_str(),
            renamed["intervalType"].as_str()
        ),
        (Some("weekly"), Some("WEEK"))
    );

    // A group action followed to the end through its children.
    let accepted = bench
        .osmctl(&[
            "-o",
            "json",
            "group",
            "update-all",
            &g,
            "--type",
            "security",
        ])
        .await
        .ok()
        .json();
    let wr = accepted["opc-work-request-id"]
        .as_str()
        .unwrap()
        .to_string();
    let waited = bench
        .osmctl(&[
            "-o",
            "json",
            "work-request",
            "wait",
            &wr,
            "--timeout",
            "60s",
            "--interval",
            "200ms",
        ])
        .await;
    let parent = waited.ok().json();
    assert_eq!(parent["status"], "SUCCEEDED");
    assert_eq!(
        parent,
        bench.api(&format!("/20190801/workRequests/{wr}")).await
    );
    let children: Vec<String> = parent["childrenIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(children.len(), 3);
    for c in &children {
        let child = bench.api(&format!("/20190801/workRequests/{c}")).await;
        assert_eq!(child["status"], "SUCCEEDED", "{child}");
    }

    // Lists as JSON are the API's lists; paging follows opc-next-page.
    all_work_done(&bench, &prod).await;
    let api_list = bench
        .api(&format!("/20190801/workRequests?compartmentId={prod}"))
        .await;
    assert_eq!(
        api_list.as_array().unwrap().len(),
        7,
        "3 from run-now, a parent and 3 children"
    );
    let all = bench
        .osmctl(&["-o", "json", "work-request", "list", "-c", &prod, "--all"])
        .await
        .ok()
        .json();
    assert_eq!(all, api_list);
    let paged = bench
        .osmctl(&[
            "-o",
            "json",
            "work-request",
            "list",
            "-c",
            &prod,
            "--all",
            "--limit",
            "2",
        ])
        .await
        .ok()
        .json();
    assert_eq!(paged, api_list);
    let first = bench
        .osmctl(&[
            "-o",
            "json",
            "work-request",
            "list",
            "-c",
            &prod,
            "--limit",
            "3",
        ])
        .await
        .ok();
    assert_eq!(
        first.json(),
        Value::Array(api_list.as_array().unwrap()[..3].to_vec())
    );
    let token = first
        .stderr
        .trim()
        .rsplit_once("--page ")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no page token on stderr: {first:#?}"));
    let second = bench
        .osmctl(&[
            "-o",
            "json",
            "work-request",
            "list",
            "-c",
            &prod,
            "--limit",
            "3",
            "--page",
            &token,
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        second,
        Value::Array(api_list.as_array().unwrap()[3..6].to_vec())
    );
    let table = bench
        .osmctl(&["work-request", "list", "-c", &prod])
        .await
        .ok()
        .stdout;
    assert!(
        table.contains("STATUS") && table.contains("SUCCEEDED") && table.contains("100%"),
        "{table}"
    );
    let by_host = bench
        .osmctl(&[
            "-o",
            "json",
            "work-request",
            "list",
            "-c",
            &prod,
            "--instance",
            &hosts[0],
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        by_host,
        bench
            .api(&format!(
                "/20190801/workRequests?compartmentId={prod}&managedInstanceId={}",
                hosts[0]
            ))
            .await
    );
    assert_eq!(by_host.as_array().unwrap().len(), 2);

    let logs = bench
        .osmctl(&["-o", "json", "work-request", "logs", &children[0]])
        .await
        .ok()
        .json();
    assert_eq!(
        logs,
        bench
            .api(&format!("/20190801/workRequests/{}/logs", children[0]))
            .await
    );
    assert!(!logs.as_array().unwrap().is_empty());
    let errors = bench
        .osmctl(&["-o", "json", "work-request", "errors", &children[0]])
        .await
        .ok()
        .json();
    assert_eq!(errors, serde_json::json!([]));

    // Install keys: created for the compartment, listed without the secret, revoked.
    let key = bench
        .osmctl(&[
            "-o",
            "json",
            "install-key",
            "create",
            "-c",
            &prod,
            "--name",
            "prod hosts",
        ])
        .await
        .ok()
        .json();
    assert!(key["key"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
    let keys = bench
        .osmctl(&["-o", "json", "install-key", "list", "-c", &prod])
        .await
        .ok()
        .json();
    assert_eq!(ids(&keys), [id(&key)]);
    assert!(keys[0].get("key").is_none());
    bench
        .osmctl(&["install-key", "revoke", &id(&key)])
        .await
        .ok();
    let keys = bench
        .osmctl(&["-o", "json", "install-key", "list", "-c", &prod])
        .await
        .ok()
        .json();
    assert!(keys[0]["timeRevoked"].is_string(), "{keys}");

    // Clean up through the CLI: job, group, then the compartment still holds instances.
    bench.osmctl(&["job", "delete", &j]).await.ok();
    let gone = bench.api(&format!("/20190801/scheduledJobs/{j}")).await;
    assert_eq!(gone["lifecycleState"], "DELETED");
    bench
        .osmctl(&["group", "detach", &g, "--instance", &hosts[0]])
        .await
        .ok();
    bench.osmctl(&["group", "delete", &g]).await.ok();
    bench.stop().await;
}

/// Failed work exits 3 and says which hosts failed and why; cancel ends queued work.
async fn failures_and_cancel(backend: Backend) {
    let mut bench = Bench::start(backend).await;
    let tenancy = bench.tenancy.clone();
    bench
        .simulate(2, &["--fail-ratio", "1", "--action-ms", "50"])
        .await;
    let hosts = bench.instances(&tenancy, 2).await;
    let g = id(&bench
        .osmctl(&["-o", "json", "group", "create", "--name", "doomed"])
        .await
        .ok()
        .json());
    bench
        .osmctl(&[
            "group",
            "attach",
            &g,
            "--instance",
            &hosts[0],
            "--instance",
            &hosts[1],
        ])
        .await
        .ok();
    let run = bench
        .osmctl(&[
            "-o",
            "json",
            "group",
            "update-all",
            &g,
            "--wait",
            "--timeout",
            "60s",
            "--interval",
            "200ms",
        ])
        .await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert_eq!(run.json()["status"], "FAILED");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{run:#?}");
    for host in ["sim-00001", "sim-00002"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(host) && l.contains("--fail-ratio")),
            "{host}: {run:#?}"
        );
    }
    assert!(
        lines[2].starts_with("osmctl: work request ")
            && lines[2].ends_with("ended FAILED (2 failed)"),
        "{run:#?}"
    );

    // A host with no agent: its work stays queued until cancelled.
    let silent = osm_core::ManagedInstance {
        id: osm_core::ids::new_ocid(osm_core::ids::ResourceKind::ManagedInstance),
        compartment_id: tenancy.clone(),
        display_name: "offline".into(),
        description: None,
        os_name: None,
        os_version: None,
        os_kernel_version: None,
        os_family: osm_core::OsFamily::Linux,
        status: osm_core::ManagedInstanceStatus::Normal,
        last_checkin: None,
        last_boot: None,
        is_reboot_required: false,
        notification_topic_id: None,
        is_data_collection_authorized: false,
        updates: Default::default(),
        time_created: Timestamp::now(),
        version: 1,
    };
    bench
        .store
        .managed_instance_insert_many(std::slice::from_ref(&silent))
        .await
        .unwrap();
    let wr = bench
        .osmctl(&["instance", "install", &silent.id, "--package", "htop"])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(
        bench.api(&format!("/20190801/workRequests/{wr}")).await["status"],
        "ACCEPTED"
    );
    let timeout = bench
        .osmctl(&[
            "work-request",
            "wait",
            &wr,
            "--timeout",
            "300ms",
            "--interval",
            "100ms",
        ])
        .await;
    assert!(timeout.fails(5).contains("still ACCEPTED"), "{timeout:#?}");
    bench.osmctl(&["work-request", "cancel", &wr]).await.ok();
    let canceled = bench.api(&format!("/20190801/workRequests/{wr}")).await;
    assert_eq!(canceled["status"], "CANCELED");
    let waited = bench
        .osmctl(&["-o", "json", "work-request", "wait", &wr])
        .await;
    assert_eq!(waited.code, 3, "{waited:#?}");
    assert_eq!(waited.json(), canceled);
    // Cancelling again is refused by the API: exit 1, one line with the request id.
    let again = bench.osmctl(&["work-request", "cancel", &wr]).await;
    let line = again.fails(1);
    assert!(line.contains("(request id "), "{line}");
    bench.stop().await;
}

/// Each failure class has its exit code and one line on stderr.
async fn exit_codes(backend: Backend) {
    let bench = Bench::start(backend).await;
    let config = bench.config_file();
    let config = config.to_str().unwrap();
    let ca = bench.ca_file();
    let ca = ca.to_str().unwrap();

    // The API refuses: 1, with the code, the message and the request id.
    let missing = "ocid1.osmsscheduledjob.oc1..aaaaaaaathisjobdoesnotexist";
    let run = bench.osmctl(&["job", "get", missing]).await;
    let line = run.fails(1);
    assert!(
        line.starts_with("osmctl: NotAuthorizedOrNotFound: "),
        "{line}"
    );
    let rid = line
        .rsplit_once("(request id ")
        .map(|(_, r)| r.trim_end_matches(')'))
        .unwrap();
    assert_eq!(rid.len(), 32, "{line}");

    // Usage: 2.
    bench.osmctl(&["job", "list", "--bogus"]).await.fails(2);
    bench.osmctl(&["frobnicate"]).await.fails(2);

    // Configuration, connection and TLS: 4.
    let run = bench
        .osmctl_bare(&["--config", "/nonexistent/config", "job", "list"], &[])
        .await;
    assert!(run.fails(4).contains("/nonexistent/config"), "{run:#?}");
    let run = bench
        .osmctl_bare(
            &[
                "--config",
                config,
                "--ca",
                ca,
                "--profile",
                "NOPE",
                "job",
                "list",
            ],
            &[],
        )
        .await;
    assert!(run.fails(4).contains("no profile [NOPE]"), "{run:#?}");
    let run = bench
        .osmctl_bare(
            &[
                "--config",
                config,
                "--ca",
                "/nonexistent/ca.pem",
                "job",
                "list",
            ],
            &[],
        )
        .await;
    assert!(run.fails(4).contains("/nonexistent/ca.pem"), "{run:#?}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = format!("https://127.0.0.1:{port}");
    let run = bench
        .osmctl_bare(
            &[
                "--config",
                config,
                "--ca",
                ca,
                "--endpoint",
                &endpoint,
                "job",
                "list",
            ],
            &[],
        )
        .await;
    assert!(run.fails(4).contains("cannot reach"), "{run:#?}");
    // Without the CA the server's certificate is not trusted.
    let run = bench
        .osmctl_bare(&["--config", config, "job", "list"], &[])
        .await;
    let line = run.fails(4);
    assert!(
        line.contains("certificate") || line.contains("UnknownIssuer"),
        "{line}"
    );
    // The line says how to trust osmd's CA.
    assert!(
        line.contains("--ca FILE") && line.contains("ca_bundle="),
        "{line}"
    );
    // ... and with the CA from REQUESTS_CA_BUNDLE, as for the oci SDK, it is.
    bench
        .osmctl_bare(
            &["--config", config, "job", "list"],
            &[("REQUESTS_CA_BUNDLE", ca)],
        )
        .await
        .ok();
    // ... or from the profile's ca_bundle=, relative to the config file's folder.
    let beside = bench.dir.path().join("profile-with-ca");
    std::fs::create_dir_all(&beside).unwrap();
    std::fs::copy(bench.ca_file(), beside.join("osmd-ca.pem")).unwrap();
    let with_ca = beside.join("config");
    let text = std::fs::read_to_string(bench.config_file()).unwrap();
    let text = format!("{}\nca_bundle=osmd-ca.pem\n", text.trim_end());
    std::fs::write(&with_ca, text).unwrap();
    let with_ca = with_ca.to_str().unwrap();
    bench
        .osmctl_bare(&["--config", with_ca, "job", "list"], &[])
        .await
        .ok();
    // A flag still wins over the profile: a wrong --ca fails even with ca_bundle= set.
    let run = bench
        .osmctl_bare(
            &[
                "--config",
                with_ca,
                "--ca",
                "/nonexistent/ca.pem",
                "job",
                "list",
            ],
            &[],
        )
        .await;
    assert!(run.fails(4).contains("/nonexistent/ca.pem"), "{run:#?}");
    // A profile for a real OCI region names no osmd.
    let text = std::fs::read_to_string(bench.config_file()).unwrap();
    let oci = bench.dir.path().join("oci-config");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("region=") {
                "region=us-ashburn-1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&oci, text).unwrap();
    let run = bench
        .osmctl_bare(
            &["--config", oci.to_str().unwrap(), "--ca", ca, "job", "list"],
            &[],
        )
        .await;
    assert!(run.fails(4).contains("--endpoint"), "{run:#?}");
    // ... unless the endpoint is given.
    bench
        .osmctl_bare(
            &[
                "--config",
                oci.to_str().unwrap(),
                "--ca",
                ca,
                "--endpoint",
                &bench.endpoint(),
                "job",
                "list",
            ],
            &[],
        )
        .await
        .ok();
    bench.stop().await;
}

/// Every job, work request and group of the tenancy, as the API lists them.
async fn snapshot(bench: &Bench) -> (Value, Value, Value) {
    let t = &bench.tenancy;
    (
        bench
            .api(&format!("/20190801/scheduledJobs?compartmentId={t}"))
            .await,
        bench
            .api(&format!("/20190801/workRequests?compartmentId={t}"))
            .await,
        bench
            .api(&format!(
                "/20190801/managedInstanceGroups?compartmentId={t}"
            ))
            .await,
    )
}

/// The bad inputs an operator types: one line, exit 2, and nothing reaches the server.
async fn bad_input_sends_nothing(backend: Backend) {
    let bench = Bench::start(backend).await;
    let g = id(&bench
        .osmctl(&["-o", "json", "group", "create", "--name", "g"])
        .await
        .ok()
        .json());
    let t = bench.tenancy.clone();
    let before = snapshot(&bench).await;

    let job = [
        "job",
        "create",
        "--name",
        "j",
        "--group",
        g.as_str(),
        "--operation",
        "update-all",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        ([&job[..], &["--every", "0d"]].concat(), "from 1 to"),
        ([&job[..], &["--every", "1x"]].concat(), "unknown unit"),
        ([&job[..], &["--every", "30m"]].concat(), "months are mo"),
        (
            [&job[..], &["--every", "daily"]].concat(),
            "not an interval",
        ),
        ([&job[..], &["--at", "tomorrow"]].concat(), "is not a time"),
        (
            [&job[..], &["--at", "2030-13-01T00:00:00Z"]].concat(),
            "is not a time",
        ),
        (
            [&job[..], &["--at", "2001-01-01T00:00:00Z"]].concat(),
            "in the past",
        ),
        (
            [&job[..], &["--at", "+1h", "--time-zone", "Mars/Olympus"]].concat(),
            "IANA",
        ),
        (
            [&job[..], &["--at", "+1h", "--update-type", "sekurity"]].concat(),
            "invalid value 'sekurity'",
        ),
        (
            [&job[..], &["--at", "+1h", "--package", "htop"]].concat(),
            "no --package",
        ),
        (
            vec![
                "job",
                "create",
                "--name",
                "j",
                "--group",
                g.as_str(),
                "--operation",
                "update-all",
            ],
            "say when the job runs",
        ),
        (
            vec![
                "job",
                "create",
                "--name",
                "j",
                "--group",
                "web",
                "--operation",
                "update-all",
                "--at",
                "+1h",
            ],
            "is not an OCID",
        ),
        (
            vec![
                "job",
                "create",
                "--name",
                "j",
                "--group",
                &t,
                "--operation",
                "update-all",
                "--at",
                "+1h",
            ],
            "not the OCID of a managed instance group",
        ),
        (
            vec![
                "job",
                "create",
                "--name",
                "j",
                "--operation",
                "update-all",
                "--at",
                "+1h",
            ],
            "--instance",
        ),
        (
            vec![
                "job",
                "create",
                "--name",
                "j",
                "--group",
                g.as_str(),
                "--instance",
                "ocid1.instance.oc1..x",
                "--operation",
                "update-all",
                "--at",
                "+1h",
            ],
            "cannot be used with",
        ),
        (
            vec!["job", "update", "ocid1.osmsscheduledjob.oc1..x"],
            "nothing to change",
        ),
        (
            vec!["job", "run-now", "ocid1.osmsscheduledjob"],
            "is not an OCID",
        ),
        (
            vec!["job", "upcoming", "--before", "next week"],
            "is not a time",
        ),
        (
            vec!["group", "create", "--name", "x", "--colour", "red"],
            "unexpected argument '--colour'",
        ),
        (
            vec!["group", "update-all", g.as_str(), "--type", "sekurity"],
            "invalid value 'sekurity'",
        ),
        (
            vec![
                "group",
                "attach",
                g.as_str(),
                "--instance",
                "ocid1.instance..x",
            ],
            "is not an OCID",
        ),
        (
            vec!["instance", "install", "i-123", "--package", "htop"],
            "is not an OCID",
        ),
        (
            vec![
                "work-request",
                "wait",
                "ocid1.osmsworkrequest.oc1..x",
                "--timeout",
                "soon",
            ],
            "not a duration",
        ),
        (vec!["work-request", "list", "--limit", "0"], "--limit"),
        (
            vec!["compartment", "list", "--all", "--page", "x"],
            "cannot be used with",
        ),
    ];
    for (args, says) in &cases {
        let run: Run = bench.osmctl(args).await;
        let line = run.fails(2);
        assert!(line.contains(says), "{args:?}: {line}");
    }
    assert_eq!(
        snapshot(&bench).await,
        before,
        "a bad input changed something"
    );

    // Well-formed ids of nothing: the API refuses (exit 1, one line), nothing changes.
    let nothing = |kind: &str| format!("ocid1.{kind}.oc1..aaaaaaaanothingbythisidexists");
    let (job, wr, mi, grp) = (
        nothing("osmsscheduledjob"),
        nothing("osmsworkrequest"),
        nothing("instance"),
        nothing("osmsmanagedinstancegroup"),
    );
    let unknown: Vec<Vec<&str>> = vec![
        vec!["job", "run-now", &job],
        vec!["job", "delete", &job],
        vec!["work-request", "cancel", &wr],
        vec!["work-request", "wait", &wr],
        vec!["instance", "install", &mi, "--package", "htop"],
        vec!["group", "update-all", &grp],
        vec!["group", "attach", &g, "--instance", &mi],
        vec![
            "job",
            "create",
            "--name",
            "j",
            "--instance",
            &mi,
            "--operation",
            "update-all",
            "--at",
            "+1h",
        ],
    ];
    for args in &unknown {
        let run = bench.osmctl(args).await;
        let line = run.fails(1);
        assert!(line.contains("(request id "), "{args:?}: {line}");
    }
    assert_eq!(
        snapshot(&bench).await,
        before,
        "a call with an unknown id changed something"
    );

    // Not even a connection: the same inputs aimed at a listener that records any.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let config = bench.config_file();
    for (args, _) in &cases {
        let mut all = vec![
            "--config",
            config.to_str().unwrap(),
            "--endpoint",
            &endpoint,
        ];
        all.extend_from_slice(args);
        bench.osmctl_bare(&all, &[]).await.fails(2);
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a bad input opened a connection"
    );
    bench.stop().await;
}

on_both_backends!(
    story,
    failures_and_cancel,
    exit_codes,
    bad_input_sends_nothing
);

#[tokio::test]
async fn help_shows_examples_and_exit_codes_and_completions_generate() {
    let home = tempfile::tempdir().unwrap();
    let run = support::osmctl_in(home.path(), &["--help"], &[]).await.ok();
    assert!(
        run.stdout.contains("Examples:") && run.stdout.contains("Exit codes:"),
        "{}",
        run.stdout
    );
    let run = support::osmctl_in(home.path(), &["job", "create", "--help"], &[])
        .await
        .ok();
    assert!(
        run.stdout.contains("--every") && run.stdout.contains("Examples:"),
        "{}",
        run.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let run = support::osmctl_in(home.path(), &["completions", shell], &[])
            .await
            .ok();
        assert!(
            run.stdout.contains("work-request") && run.stdout.contains("update-all"),
            "{shell}"
        );
    }
    let run = support::osmctl_in(home.path(), &["completions", "tcsh"], &[]).await;
    run.fails(2);
}
