//! The real apt test: a Debian 12 root owned by the test, a local apt repository with a
//! security update (its changelog names a CVE) and an unrelated bugfix update, the real apt
//! and dpkg of that root driven by the osm-agent binary, against a real osmd.
//!
//! Needs root (chroot) and, the first time on a machine, Debian's mirror (debootstrap).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

fn repo() -> Vec<Deb> {
    let deb = |name, version, suite, change| Deb {
        name,
        version,
        suite,
        change,
        preinst: None,
    };
    vec![
        deb("osm-demo", "1.0", "osmtest", "Initial release."),
        deb("osm-tool", "1.0", "osmtest", "Initial release."),
        deb("osm-extra", "1.0", "osmtest", "Initial release."),
        deb(
            "osm-demo",
            "1.1",
            "osmtest-security",
            "Fix a buffer overflow in the parser (CVE-2024-12345).",
        ),
        deb(
            "osm-tool",
            "1.1",
            "osmtest-updates",
            "Fix a crash on empty input.",
        ),
    ]
}

fn codes(errors: &[Value]) -> Vec<String> {
    errors
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apt_inventory_security_update_remove_and_readable_failures() {
    let tmp = debian_root();
    let root = tmp.path().join("root");
    build_repo(&root, &repo());
    chroot(
        &root,
        &[
            "apt-get",
            "install",
            "-y",
            "-q",
            "osm-demo=1.0",
            "osm-tool=1.0",
        ],
    );

    // The agent's own scan, on the real apt of the root: both updates typed, the CVE found.
    let scan = std::process::Command::new(agent_bin())
        .args(["scan", "--backend", "apt", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let scan: Value = serde_json::from_slice(&scan.stdout).unwrap();
    let update = |name: &str| {
        scan["updates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no update for {name}: {scan}"))
            .clone()
    };
    let demo = update("osm-demo");
    assert_eq!(demo["updateType"], "SECURITY");
    assert_eq!(demo["installedVersion"], "1.0");
    assert_eq!(demo["availableVersion"], "1.1");
    assert_eq!(demo["cves"], serde_json::json!(["CVE-2024-12345"]));
    let tool = update("osm-tool");
    assert_eq!(tool["updateType"], "BUG");
    assert_eq!(tool["cves"], serde_json::json!([]));
    assert!(
        scan["installed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "osm-demo" && p["version"] == "1.0" && p["type"] == "deb")
    );
    assert!(
        scan["available"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "osm-extra")
    );

    let osmd = Osmd::start().await;
    let state = tmp.path().join("state");
    let out = agent_cmd(&osmd, &root, &state, "enroll").output().unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: Value =
        serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
    let instance = identity["instanceId"].as_str().unwrap().to_string();
    let agent = AgentProc::spawn(
        agent_cmd(&osmd, &root, &state, "run"),
        tmp.path().join("agent.log"),
    );

    // Facts and update counts reach the API.
    let mi = osmd
        .wait_instance(&instance, "one security and one bug update", |mi| {
            mi["securityUpdatesAvailable"] == 1 && mi["bugUpdatesAvailable"] == 1
        })
        .await;
    assert_eq!(mi["osName"], "Debian GNU/Linux");
    assert_eq!(mi["osVersion"], "12");

    // The uploaded inventory through the OCI read API: the SECURITY update with its CVEs,
    // the BUG update without.
    let updates = wait_updates(&osmd, &instance, 2).await;
    assert_eq!(
        updates["osm-demo"]["updateType"], "SECURITY",
        "{updates:#?}"
    );
    assert_eq!(
        updates["osm-demo"]["relatedCves"],
        serde_json::json!(["CVE-2024-12345"])
    );
    assert_eq!(updates["osm-tool"]["updateType"], "BUG", "{updates:#?}");
    assert_eq!(updates["osm-tool"]["relatedCves"], serde_json::json!([]));

    // SECURITY-only update-all: 1.1 of osm-demo, the bugfix update left alone.
    let wr = osmd
        .action(&instance, "packages/updateAll", "updateType=SECURITY")
        .await;
    let (status, logs, errors) = osmd.finished(&wr, Duration::from_secs(120)).await;
    assert_eq!(
        status,
        "SUCCEEDED",
        "{logs:#?} {errors:?}\n{}",
        agent.output()
    );
    assert!(
        logs.iter().any(|l| l.contains("Unpacking osm-demo (1.1)")),
        "{logs:#?}"
    );
    let pkgs = installed(&root);
    assert_eq!(pkgs["osm-demo"], "1.1");
    assert_eq!(pkgs["osm-tool"], "1.0");
    osmd.wait_instance(&instance, "the security update gone", |mi| {
        mi["securityUpdatesAvailable"] == 0 && mi["bugUpdatesAvailable"] == 1
    })
    .await;

    // Remove.
    let wr = osmd
        .action(&instance, "packages/remove", "softwarePackageName=osm-tool")
        .await;
    let (status, logs, _) = osmd.finished(&wr, Duration::from_secs(120)).await;
    assert_eq!(status, "SUCCEEDED", "{logs:#?}");
    assert!(!installed(&root).contains_key("osm-tool"));
    osmd.wait_instance(&instance, "no updates left", |mi| {
        mi["updatesAvailable"] == 0
    })
    .await;

    // A name apt would never accept: refused before anything runs.
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=Bad%3Bname%24(id)",
        )
        .await;
    let (status, logs, errors) = osmd.finished(&wr, Duration::from_secs(60)).await;
    assert_eq!(status, "FAILED");
    assert_eq!(codes(&errors), ["InvalidPackageName"], "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("not a Debian package name")
    );
    assert!(
        !logs.iter().any(|l| l.starts_with("$ ")),
        "something ran: {logs:#?}"
    );

    // A valid name no repository has.
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-nonexistent",
        )
        .await;
    let (status, _, errors) = osmd.finished(&wr, Duration::from_secs(60)).await;
    assert_eq!(status, "FAILED");
    assert_eq!(codes(&errors), ["PackageNotFound"], "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("osm-nonexistent"),
        "{errors:?}"
    );

    // The dpkg lock held by someone else for longer than the agent waits (3 s here).
    let lock = hold_fcntl_lock(&root.join("var/lib/dpkg/lock-frontend"));
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-extra",
        )
        .await;
    let (status, logs, errors) = osmd.finished(&wr, Duration::from_secs(60)).await;
    assert_eq!(status, "FAILED", "{logs:#?}");
    assert_eq!(codes(&errors), ["LockHeld"], "{errors:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("locked by another process")
    );
    assert!(!installed(&root).contains_key("osm-extra"));
    drop(lock);

    // Free again: the same install works, and the inventory follows.
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-extra%3D1.0",
        )
        .await;
    let (status, logs, _) = osmd.finished(&wr, Duration::from_secs(120)).await;
    assert_eq!(status, "SUCCEEDED", "{logs:#?}");
    assert_eq!(installed(&root)["osm-extra"], "1.0");
    let status = std::process::Command::new(agent_bin())
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains(&instance), "{status}");
    assert!(status.contains("pending work:    none"), "{status}");
}
