//! `osmctl errata`: import a directory of OSV files (all checked before anything is sent),
//! list, get, and the errata of one instance, against simulated Debian hosts.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Backend, Bench};

/// A Debian 12 advisory for the openssl update every `--distro debian` sim with an update per
/// package offers (3.2.4-1+deb12u3 → 3.2.5-1+deb12u3), and one for a package none has.
fn write_feed(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = json!({
        "id": "DSA-9001-1", "aliases": ["CVE-2024-31337"], "summary": "openssl security update",
        "published": "2024-05-01T00:00:00Z", "modified": "2024-05-02T00:00:00Z",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.2.5-1+deb12u3"}]}]}]
    });
    let other = json!({
        "id": "DSA-9002-1", "aliases": ["CVE-2024-31338"], "modified": "2024-05-02T00:00:00Z",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "not-installed-anywhere"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-1"}]}]}]
    });
    std::fs::write(
        dir.join("DSA-9001-1.json"),
        serde_json::to_string_pretty(&openssl).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("DSA-9002-1.json"),
        serde_json::to_string_pretty(&other).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a record").unwrap();
}

/// Waits until the instance's inventory lists an openssl update.
async fn openssl_update(bench: &Bench, instance: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = bench
            .api(&format!(
                "/20190801/managedInstances/{instance}/packages/updates?displayName=openssl"
            ))
            .await;
        if let Some(u) = list.as_array().unwrap().first() {
            return u.clone();
        }
        assert!(Instant::now() < deadline, "no inventory from {instance}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn errata_import_list_and_get(backend: Backend) {
    let mut bench = Bench::start(backend).await;
    bench
        .simulate(
            2,
            &[
                "--distro",
                "debian",
                "--security-ratio",
                "0",
                "--updates-per-instance",
                "400",
            ],
        )
        .await;
    let t = bench.tenancy.clone();
    let instances = bench.instances(&t, 2).await;
    for i in &instances {
        assert_eq!(openssl_update(&bench, i).await["updateType"], "BUG");
    }
    let feed = tempfile::tempdir().unwrap();
    write_feed(feed.path());
    let dir = feed.path().to_str().unwrap();

    // A malformed file among good ones: one line naming the file and position, exit 2,
    // nothing sent (not even a connection to an endpoint that would record one).
    let bad_dir = tempfile::tempdir().unwrap();
    write_feed(bad_dir.path());
    let bad = bad_dir.path().join("DSA-9003-1.json");
    std::fs::write(
        &bad,
        "{\n  \"id\": \"DSA-9003-1\",\n  \"modified\": \"2024-05-02\",\n  \"affected\": []\n}\n",
    )
    .unwrap();
    let run = bench
        .osmctl(&["errata", "import", bad_dir.path().to_str().unwrap()])
        .await;
    let line = run.fails(2).to_string();
    assert!(
        line.contains(&format!("{}:3:15: modified: ", bad.display())),
        "{line}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let config = bench.config_file();
    bench
        .osmctl_bare(
            &[
                "--config",
                config.to_str().unwrap(),
                "--endpoint",
                &endpoint,
                "errata",
                "import",
                bad_dir.path().to_str().unwrap(),
            ],
            &[],
        )
        .await
        .fails(2);
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a bad import opened a connection"
    );
    let none = bench
        .osmctl(&[
            "-o",
            "json",
            "errata",
            "list",
            "--advisory-name",
            "DSA-9001-1",
        ])
        .await
        .ok();
    assert_eq!(
        none.json(),
        json!([]),
        "the good files of a bad directory were not imported"
    );
    let missing = bench
        .osmctl(&["errata", "import", "/nonexistent/osv"])
        .await;
    assert!(
        missing
            .fails(2)
            .contains("cannot read the directory /nonexistent/osv")
    );

    // The good directory.
    let run = bench.osmctl(&["errata", "import", dir]).await.ok();
    assert!(
        run.stdout.contains("imported 2 OSV records") && run.stdout.contains("2 new"),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("2 updates on 2 instances changed"),
        "{run:#?}"
    );
    let again = bench
        .osmctl(&["-o", "json", "errata", "import", dir])
        .await
        .ok()
        .json();
    assert_eq!(again["unchanged"], 2);
    assert_eq!(again["created"], 0);
    for i in &instances {
        let u = openssl_update(&bench, i).await;
        assert_eq!(u["updateType"], "SECURITY");
        assert!(
            u["relatedCves"]
                .as_array()
                .unwrap()
                .contains(&json!("CVE-2024-31337")),
            "{u}"
        );
    }

    // list (table and JSON), get, and one instance's errata.
    let table = bench
        .osmctl(&["errata", "list", "--sort-by", "name"])
        .await
        .ok();
    let header = table.stdout.lines().next().unwrap().to_string();
    for col in ["NAME", "TYPE", "ISSUED", "CVES", "SYNOPSIS", "ID"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        table.stdout.contains("DSA-9001-1  SECURITY"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("CVE-2024-31337"), "{}", table.stdout);
    let listed = bench
        .osmctl(&[
            "-o",
            "json",
            "errata",
            "list",
            "--sort-by",
            "name",
            "--all",
            "--limit",
            "1",
        ])
        .await
        .ok()
        .json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .filter(|n| n.starts_with("DSA-900"))
        .collect();
    assert_eq!(names, ["DSA-9001-1", "DSA-9002-1"]);
    let dsa = bench
        .osmctl(&[
            "-o",
            "json",
            "errata",
            "list",
            "--advisory-name",
            "DSA-9001-1",
        ])
        .await
        .ok()
        .json();
    let id = dsa[0]["id"].as_str().unwrap().to_string();
    let got = bench
        .osmctl(&["-o", "json", "errata", "get", &id])
        .await
        .ok()
        .json();
    assert_eq!(got["name"], "DSA-9001-1");
    assert_eq!(got["relatedCves"], json!(["CVE-2024-31337"]));
    let mut affected: Vec<String> = got["affectedInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    affected.sort();
    let mut want = instances.clone();
    want.sort();
    assert_eq!(affected, want);
    let window = bench
        .osmctl(&[
            "-o",
            "json",
            "errata",
            "list",
            "--issued-after",
            "2024-04-30T00:00",
            "--issued-before",
            "2024-05-01T12:00:00Z",
        ])
        .await
        .ok()
        .json();
    let names: Vec<&str> = window
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["DSA-9001-1"]);
    let mine = bench
        .osmctl(&["-o", "json", "errata", "list", "--instance", &instances[0]])
        .await
        .ok()
        .json();
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "DSA-9001-1"),
        "{mine}"
    );
    assert!(
        !mine
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "DSA-9002-1"),
        "{mine}"
    );

    // Unknown and malformed ids.
    let run = bench
        .osmctl(&["errata", "get", "ocid1.osmserratum.oc1..nothing"])
        .await;
    assert!(run.fails(1).contains("NotAuthorizedOrNotFound"), "{run:#?}");
    bench
        .osmctl(&["errata", "get", "ocid1.instance.oc1..x"])
        .await
        .fails(2);
    bench
        .osmctl(&["errata", "list", "--issued-after", "soon"])
        .await
        .fails(2);
    bench.stop().await;
}

on_both_backends!(errata_import_list_and_get);
