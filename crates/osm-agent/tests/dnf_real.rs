//! The real dnf test: Debian's dnf and rpm driving an `--installroot` owned by the test, a
//! local repository built with rpmbuild and createrepo_c whose updateinfo carries a security
//! advisory naming two CVEs and a bugfix advisory, the osm-agent binary, a real osmd.
//!
//! Needs root and Debian's `rpm`, `dnf` and `createrepo-c` packages (scripts/test installs
//! them).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="osm@example.invalid" status="final" type="security" version="2">
    <id>OSMSA-2024-0001</id>
    <title>Important: osm-demo security update</title>
    <severity>Important</severity>
    <issued date="2024-01-01 00:00:00"/>
    <description>Fix a buffer overflow in the parser.</description>
    <references>
      <reference href="https://example.invalid/CVE-2024-12345" id="CVE-2024-12345" type="cve" title="CVE-2024-12345"/>
      <reference href="https://example.invalid/CVE-2024-23456" id="CVE-2024-23456" type="cve" title="CVE-2024-23456"/>
    </references>
    <pkglist><collection short="osmtest"><name>osmtest</name>
      <package name="osm-demo" version="1.1" release="1" epoch="0" arch="noarch"><filename>osm-demo-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
  <update from="osm@example.invalid" status="final" type="bugfix" version="2">
    <id>OSMBA-2024-0002</id>
    <title>osm-tool bug fix update</title>
    <issued date="2024-01-02 00:00:00"/>
    <description>Fix a crash on empty input.</description>
    <references/>
    <pkglist><collection short="osmtest"><name>osmtest</name>
      <package name="osm-tool" version="1.1" release="1" epoch="0" arch="noarch"><filename>osm-tool-1.1-1.noarch.rpm</filename></package>
    </collection></pkglist>
  </update>
</updates>
"#;

fn packages() -> Vec<Rpm> {
    [
        ("osm-demo", "1.0"),
        ("osm-demo", "1.1"),
        ("osm-tool", "1.0"),
        ("osm-tool", "1.1"),
        ("osm-extra", "1.0"),
    ]
    .into_iter()
    .map(|(name, version)| Rpm { name, version })
    .collect()
}

fn codes(errors: &[Value]) -> Vec<String> {
    errors
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnf_inventory_security_update_remove_and_readable_failures() {
    let tmp = tempfile::Builder::new()
        .prefix("osm-agent-dnf-")
        .tempdir_in(target_dir())
        .unwrap();
    let (root, repo) = (tmp.path().join("root"), tmp.path().join("repo"));
    build_rpm_repo(&repo, &packages(), UPDATEINFO);
    rpm_root(&root, &repo);
    dnf(
        &root,
        &["-q", "-y", "install", "osm-demo-1.0", "osm-tool-1.0"],
    );

    // The agent's own scan, by the host's dnf on the install root: both updates typed from
    // updateinfo, the advisory ids and CVEs found.
    let scan = std::process::Command::new(agent_bin())
        .args(["scan", "--backend", "dnf", "--root"])
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
    assert_eq!(demo["installedVersion"], "1.0-1");
    assert_eq!(demo["availableVersion"], "1.1-1");
    assert_eq!(demo["architecture"], "noarch");
    assert_eq!(demo["cves"], json!(["CVE-2024-12345", "CVE-2024-23456"]));
    assert_eq!(
        demo["advisories"],
        json!([{"name": "OSMSA-2024-0001", "type": "SECURITY", "synopsis": "Important"}])
    );
    let tool = update("osm-tool");
    assert_eq!(tool["updateType"], "BUG");
    assert_eq!(tool["cves"], json!([]));
    assert_eq!(tool["advisories"][0]["name"], "OSMBA-2024-0002");
    assert_eq!(scan["updates"].as_array().unwrap().len(), 2, "{scan}");
    assert!(
        scan["installed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "osm-demo" && p["version"] == "1.0-1" && p["type"] == "rpm")
    );

    let osmd = Osmd::start().await;
    let state = tmp.path().join("state");
    let with_dnf = |sub: &str| {
        let mut c = agent_cmd(&osmd, &root, &state, sub);
        c.args(["--backend", "dnf"]);
        c
    };
    let out = with_dnf("enroll").output().unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity: Value =
        serde_json::from_slice(&std::fs::read(state.join("identity.json")).unwrap()).unwrap();
    let instance = identity["instanceId"].as_str().unwrap().to_string();
    let agent = AgentProc::spawn(with_dnf("run"), tmp.path().join("agent.log"));

    // Facts and update counts reach the API.
    let mi = osmd
        .wait_instance(&instance, "one security and one bug update", |mi| {
            mi["securityUpdatesAvailable"] == 1 && mi["bugUpdatesAvailable"] == 1
        })
        .await;
    assert_eq!(mi["osName"], "Oracle Linux Server");
    assert_eq!(mi["osVersion"], "9.4");

    // The uploaded inventory through the OCI read API: the SECURITY update with its CVEs,
    // the BUG update without.
    let updates = wait_updates(&osmd, &instance, 2).await;
    assert_eq!(
        updates["osm-demo"]["updateType"], "SECURITY",
        "{updates:#?}"
    );
    assert_eq!(
        updates["osm-demo"]["relatedCves"],
        serde_json::json!(["CVE-2024-12345", "CVE-2024-23456"])
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
        logs.iter()
            .any(|l| l.contains("Upgrading") && l.contains("osm-demo-1.1-1.noarch")),
        "{logs:#?}"
    );
    let pkgs = rpm_installed(&root);
    assert_eq!(pkgs["osm-demo"], "1.1-1");
    assert_eq!(pkgs["osm-tool"], "1.0-1");
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
    assert!(!rpm_installed(&root).contains_key("osm-tool"));
    osmd.wait_instance(&instance, "no updates left", |mi| {
        mi["updatesAvailable"] == 0
    })
    .await;

    // A name rpm would never accept: refused before anything runs.
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
            .contains("not an RPM package name"),
        "{errors:?}"
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

    // Install a given version (name=version becomes dnf's name-version).
    let wr = osmd
        .action(
            &instance,
            "packages/install",
            "softwarePackageName=osm-extra%3D1.0",
        )
        .await;
    let (status, logs, _) = osmd.finished(&wr, Duration::from_secs(120)).await;
    assert_eq!(status, "SUCCEEDED", "{logs:#?}");
    let command = format!(
        "$ dnf --installroot={} -y install osm-extra-1.0",
        root.display()
    );
    assert!(logs.contains(&command), "{logs:#?}");
    assert_eq!(rpm_installed(&root)["osm-extra"], "1.0-1");
    let status = std::process::Command::new(agent_bin())
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains(&instance), "{status}");
    assert!(status.contains("pending work:    none"), "{status}");
}
