//! `osmctl report compliance` against a real osmd and hosts simulated by `osm-sim`: every
//! format read back (JSON against the endpoint, CSV parsed, HTML parsed as XML and checked
//! self-contained), the output file, and the errors.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Backend, Bench};

crate::on_both_backends!(
    every_format_says_the_same,
    report_errors,
    report_bad_input_changes_nothing
);

/// How many compliance reports osmd was asked for (its `osm_http_requests_total`).
async fn report_requests(bench: &Bench) -> u64 {
    let r = bench.client.get("/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| {
            l.starts_with("osm_http_requests_total{")
                && l.contains("route=\"/osm/v1/reports/compliance\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// A compartment with three vulnerable Linux hosts, two patched ones and a vulnerable Windows
/// host, every inventory uploaded; returns the compartment.
async fn fleet(bench: &mut Bench) -> String {
    let r = bench
        .client
        .post_json(
            "/20160918/compartments",
            Some(&serde_json::json!({"compartmentId": bench.tenancy, "name": "audit", "description": "report"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json::<Value>()["id"].as_str().unwrap().to_string();
    for (first, n, extra) in [
        (
            "1",
            "3",
            vec!["--security-ratio", "1", "--updates-per-instance", "9"],
        ),
        ("11", "2", vec!["--security-ratio", "0"]),
        (
            "21",
            "1",
            vec![
                "--security-ratio",
                "1",
                "--windows-ratio",
                "1",
                "--updates-per-instance",
                "6",
            ],
        ),
    ] {
        let mut args = vec!["--compartment", c.as_str(), "--first", first];
        args.extend(extra);
        bench.simulate(n.parse().unwrap(), &args).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = bench
            .api(&format!("/osm/v1/reports/compliance?compartmentId={c}"))
            .await;
        if r["summary"]["instancesScanned"] == 6 && r["summary"]["instancesWithoutInventory"] == 0 {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "the hosts did not all report: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A report without what moves with the clock.
fn stable(mut r: Value) -> Value {
    r.as_object_mut().unwrap().remove("timeGenerated");
    for i in r["instances"].as_array_mut().unwrap() {
        i.as_object_mut().unwrap().remove("inventoryAgeSeconds");
    }
    r
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Parses the page as XML (it is written well-formed) and checks it pulls in nothing.
fn check_html(html: &str) {
    let xml = html
        .trim_start()
        .strip_prefix("<!DOCTYPE html>")
        .expect("an HTML5 doctype");
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "html");
    let tags: BTreeSet<&str> = root
        .descendants()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    for needed in ["head", "style", "body", "svg", "table", "rect"] {
        assert!(tags.contains(needed), "no <{needed}>");
    }
    for banned in ["script", "link", "img", "iframe", "object", "embed"] {
        assert!(
            !tags.contains(banned),
            "<{banned}> in a self-contained page"
        );
    }
    for node in root.descendants().filter(|n| n.is_element()) {
        for a in node.attributes() {
            assert!(
                !matches!(a.name(), "src" | "href" | "xlink:href") && !a.name().starts_with("on"),
                "attribute {}={} pulls in or runs something",
                a.name(),
                a.value()
            );
        }
    }
    let style: String = root
        .descendants()
        .filter(|n| n.has_tag_name("style"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        !style.contains("url(") && !style.contains("@import"),
        "{style}"
    );
    assert!(style.contains("@media print"), "readable when printed");
}

async fn every_format_says_the_same(backend: Backend) {
    let mut bench = Bench::start(backend).await;
    let c = fleet(&mut bench).await;

    // JSON: the endpoint's body.
    let json = bench
        .osmctl(&[
            "report",
            "compliance",
            "-c",
            &c,
            "--details",
            "--format",
            "json",
        ])
        .await
        .ok()
        .json();
    let api = bench
        .api(&format!(
            "/osm/v1/reports/compliance?compartmentId={c}&details=true&severity=SECURITY"
        ))
        .await;
    assert_eq!(stable(json.clone()), stable(api));
    let s = &json["summary"];
    assert_eq!(s["instancesScanned"], 6);
    assert_eq!(s["instancesMissingUpdates"], 4);
    // 9 updates a third of which are security ones, on 3 hosts; 2 on the Windows host.
    assert_eq!(s["missingSecurityUpdates"], 3 * 3 + 2);
    let instances = json["instances"].as_array().unwrap();
    let vulnerable: BTreeSet<String> = instances
        .iter()
        .filter(|i| i["missingUpdates"].as_i64().unwrap() > 0)
        .map(|i| i["displayName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        vulnerable,
        ["sim-00001", "sim-00002", "sim-00003", "sim-00021"]
            .map(String::from)
            .into()
    );
    // -o json means the JSON format; the default tenancy scope covers the whole tree.
    let whole = bench
        .osmctl(&["-o", "json", "report", "compliance"])
        .await
        .ok()
        .json();
    assert_eq!(whole["scope"]["compartmentId"], bench.tenancy.as_str());
    assert_eq!(whole["scope"]["compartmentIdInSubtree"], true);
    assert_eq!(whole["summary"]["instancesScanned"], 6);
    assert!(whole["instances"][0].get("updates").is_none());

    // CSV: one row per instance; with details one per missing update.
    let text = bench
        .osmctl(&["report", "compliance", "-c", &c, "--format", "csv"])
        .await
        .ok()
        .stdout;
    let (header, rows) = csv_rows(&text);
    assert_eq!(header[0], "instance_id");
    assert!(!header.contains(&"update_name".to_string()));
    assert_eq!(rows.len(), 6);
    for (row, i) in rows.iter().zip(instances) {
        assert_eq!(row["instance_id"], i["id"].as_str().unwrap());
        assert_eq!(row["missing_updates"], i["missingUpdates"].to_string());
        assert_eq!(row["security_updates"], i["securityUpdates"].to_string());
        let cves: Vec<&str> = i["relatedCves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(row["related_cves"], cves.join(" "));
        assert_eq!(
            row["time_inventory_reported"],
            i["timeInventoryReported"].as_str().unwrap()
        );
    }
    let text = bench
        .osmctl(&[
            "report",
            "compliance",
            "-c",
            &c,
            "--format",
            "csv",
            "--details",
        ])
        .await
        .ok()
        .stdout;
    let (header, rows) = csv_rows(&text);
    assert!(header.contains(&"update_name".to_string()));
    // 11 missing updates, and one row for each of the 2 hosts missing none.
    assert_eq!(rows.len(), 11 + 2);
    for i in instances {
        let id = i["id"].as_str().unwrap();
        let mine: Vec<&BTreeMap<String, String>> =
            rows.iter().filter(|r| r["instance_id"] == id).collect();
        let updates = i["updates"].as_array().unwrap();
        assert_eq!(mine.len(), updates.len().max(1));
        for (row, u) in mine.iter().zip(updates) {
            assert_eq!(row["update_name"], u["name"].as_str().unwrap());
            assert_eq!(row["update_type"], "SECURITY");
            assert_eq!(row["update_kind"], u["kind"].as_str().unwrap());
            assert_eq!(
                row["installed_version"],
                u["installedVersion"].as_str().unwrap_or("")
            );
        }
        if updates.is_empty() {
            assert_eq!(mine[0]["update_name"], "");
        }
    }

    // Text: the summary and the instances missing updates, with their updates.
    let text = bench
        .osmctl(&["report", "compliance", "-c", &c, "--details"])
        .await
        .ok()
        .stdout;
    assert!(text.contains("Instances scanned            6"), "{text}");
    assert!(
        text.contains("Missing updates              11 (11 security)"),
        "{text}"
    );
    for i in instances
        .iter()
        .filter(|i| i["missingUpdates"].as_i64().unwrap() > 0)
    {
        assert!(text.contains(i["id"].as_str().unwrap()), "{text}");
        for u in i["updates"].as_array().unwrap() {
            assert!(text.contains(u["displayName"].as_str().unwrap()), "{text}");
        }
    }
    assert!(
        !text.contains("sim-00011 ("),
        "up-to-date hosts get no details: {text}"
    );

    // HTML: one self-contained, well-formed page, written to a file.
    let file = bench.dir.path().join("report.html");
    let run = bench
        .osmctl(&[
            "report",
            "compliance",
            "-c",
            &c,
            "--details",
            "--format",
            "html",
            "--output-file",
            file.to_str().unwrap(),
        ])
        .await
        .ok();
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(run.stderr.contains("wrote the report to"), "{run:#?}");
    let html = std::fs::read_to_string(&file).unwrap();
    check_html(&html);
    for i in instances {
        assert!(
            html.contains(i["id"].as_str().unwrap()),
            "every instance is listed"
        );
        for cve in i["relatedCves"].as_array().unwrap() {
            assert!(html.contains(cve.as_str().unwrap()));
        }
    }
    assert!(html.contains("missing updates: 4"), "the chart's legend");

    // A CVE filter narrows every format alike.
    let some_cve = instances[0]["relatedCves"][0].as_str().unwrap().to_string();
    let narrowed = bench
        .osmctl(&[
            "-o",
            "json",
            "report",
            "compliance",
            "-c",
            &c,
            "--cve",
            &some_cve.to_lowercase(),
        ])
        .await
        .ok()
        .json();
    assert_eq!(narrowed["filters"]["cves"], serde_json::json!([some_cve]));
    assert!(
        narrowed["summary"]["instancesMissingUpdates"]
            .as_i64()
            .unwrap()
            >= 1
    );
    assert!(narrowed["summary"]["missingUpdates"].as_i64().unwrap() < 11);
    // Severity BUG counts the bug fixes too.
    let wide = bench
        .osmctl(&[
            "-o",
            "json",
            "report",
            "compliance",
            "-c",
            &c,
            "--severity",
            "bug",
        ])
        .await
        .ok()
        .json();
    assert_eq!(
        wide["filters"]["updateTypes"],
        serde_json::json!(["SECURITY", "BUG"])
    );
    assert!(wide["summary"]["missingUpdates"].as_i64().unwrap() > 11);
    bench.stop().await;
}

async fn report_errors(backend: Backend) {
    let bench = Bench::start(backend).await;
    let group = "ocid1.osmsmanagedinstancegroup.oc1..nosuchgroup";
    // Usage errors: one line, exit 2, nothing sent.
    for args in [
        vec!["report", "compliance", "--cve", "DSA-5678-1"],
        vec![
            "report",
            "compliance",
            "--group",
            "ocid1.compartment.oc1..x",
        ],
        vec![
            "report",
            "compliance",
            "--group",
            group,
            "-c",
            "ocid1.compartment.oc1..x",
        ],
        vec!["report", "compliance", "--group", group, "--recursive"],
        vec!["report", "compliance", "--format", "pdf"],
        vec!["report", "compliance", "--severity", "critical"],
    ] {
        let run = bench.osmctl(&args).await;
        let line = run.fails(2);
        assert!(!line.contains("Usage"), "{line}");
    }
    // The API's refusal: exit 1 with the request id.
    let run = bench
        .osmctl(&["report", "compliance", "--group", group])
        .await;
    let line = run.fails(1);
    assert!(
        line.contains("NotAuthorizedOrNotFound") && line.contains("request id"),
        "{line}"
    );
    // An output file that cannot be written is refused before anything is sent: a scope the
    // server would refuse makes no difference, and the server sees no request.
    let not_a_dir = bench.dir.path().join("plain-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let under_a_file = not_a_dir.join("r.html");
    let sent = report_requests(&bench).await;
    for (path, why) in [
        ("/nonexistent-dir/r.html", "does not exist"),
        (under_a_file.to_str().unwrap(), "is not a directory"),
        (bench.dir.path().to_str().unwrap(), "is a directory"),
    ] {
        let run = bench
            .osmctl(&[
                "report",
                "compliance",
                "--group",
                group,
                "--output-file",
                path,
                "--format",
                "html",
            ])
            .await;
        let line = run.fails(2);
        assert!(line.contains(&format!("cannot write {path}")), "{line}");
        assert!(line.contains(why), "{line}");
    }
    assert_eq!(report_requests(&bench).await, sent, "nothing was sent");
    bench.stop().await;
}

/// Bad input leaves everything as it was: an existing output file keeps its content and
/// time, a new one is not created (or is removed again when the server refuses), and a usage
/// error sends nothing.
async fn report_bad_input_changes_nothing(backend: Backend) {
    let bench = Bench::start(backend).await;
    let kept = bench.dir.path().join("yesterday.csv");
    std::fs::write(&kept, "instance_id\nthe report of yesterday\n").unwrap();
    let kept_time = std::fs::metadata(&kept).unwrap().modified().unwrap();
    let absent = bench.dir.path().join("new.html");
    let cases: [(&[&str], i32, u64); 6] = [
        (&["--severity", "critical"], 2, 0),
        (&["--cve", "DSA-5678-1"], 2, 0),
        (&["--cve", "CVE-2024-1"], 2, 0),
        (&["--format", "pdf"], 2, 0),
        (
            &["--group", "ocid1.osmsmanagedinstancegroup.oc1..nosuchgroup"],
            1,
            1,
        ),
        (&["-c", "ocid1.compartment.oc1..nosuchcompartment"], 1, 1),
    ];
    for (bad, code, requests) in cases {
        for target in [&kept, &absent] {
            let before = report_requests(&bench).await;
            let mut args = vec![
                "report",
                "compliance",
                "--output-file",
                target.to_str().unwrap(),
            ];
            args.extend_from_slice(bad);
            let run = bench.osmctl(&args).await;
            let line = run.fails(code);
            if code == 1 {
                assert!(line.contains("NotAuthorizedOrNotFound"), "{line}");
            }
            assert_eq!(
                std::fs::read_to_string(&kept).unwrap(),
                "instance_id\nthe report of yesterday\n",
                "{bad:?}"
            );
            assert_eq!(
                std::fs::metadata(&kept).unwrap().modified().unwrap(),
                kept_time,
                "{bad:?}"
            );
            assert!(!absent.exists(), "{bad:?} left {}", absent.display());
            assert_eq!(
                report_requests(&bench).await - before,
                requests,
                "{bad:?}: reports asked for"
            );
        }
    }
    // The same file is written once the input is good.
    let run = bench
        .osmctl(&[
            "report",
            "compliance",
            "--format",
            "csv",
            "--output-file",
            kept.to_str().unwrap(),
        ])
        .await
        .ok();
    assert!(run.stderr.contains("wrote the report to"), "{run:#?}");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(text.starts_with("instance_id,display_name,"), "{text}");
    assert!(
        !text.contains("yesterday"),
        "the old content is replaced: {text}"
    );
    bench.stop().await;
}
