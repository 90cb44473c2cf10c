//! `osmctl report compliance`: one call to the report endpoint (`GET /osm/v1/reports/compliance`,
//! computed by osmd in one store snapshot), printed as text for a terminal, the endpoint's JSON,
//! CSV (one row per instance, or per missing update with `--details`) or a self-contained HTML
//! page to hand to an auditor.

use std::io::Write;
use std::path::{Path, PathBuf};

use askama::Template;
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets};
use osm_api::{ComplianceReport, ComplianceUpdate, InstanceCompliance};

use crate::api::{Api, Failure, Query};
use crate::cli::Output;
use crate::output;
use crate::parse;

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Which instances miss security updates (or, with --severity, other updates), which
    /// updates and CVEs, and how old each inventory is
    #[command(after_help = "\
Scope: every compartment you may read by default (the whole tenancy for an administrator; for
a user granted some compartments, those and every compartment below them); --compartment ID (with --recursive: and every compartment
below it); or --group ID. Severity is the update classification agents report (osm stores no
CVSS score): SECURITY > BUG > ENHANCEMENT > OTHER; --severity bug counts security and bug-fix
updates.

Examples:
  osmctl report compliance
  osmctl report compliance -c ocid1.compartment.oc1..aaaa -R --details
  osmctl report compliance --group ocid1.osmsmanagedinstancegroup.oc1..aaaa --cve CVE-2024-3094
  osmctl report compliance --details --format html --output-file compliance.html
  osmctl report compliance --format csv --details > compliance.csv")]
    Compliance(ComplianceArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Severity {
    Security,
    Bug,
    Enhancement,
    Other,
}

impl Severity {
    fn wire(self) -> &'static str {
        match self {
            Severity::Security => "SECURITY",
            Severity::Bug => "BUG",
            Severity::Enhancement => "ENHANCEMENT",
            Severity::Other => "OTHER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A summary and the instances missing updates, for a terminal
    Text,
    /// The endpoint's JSON, as it answered
    Json,
    /// One row per instance (per missing update with --details)
    Csv,
    /// One self-contained page (inline CSS and SVG chart, no scripts), printable
    Html,
}

#[derive(Debug, Args)]
pub struct ComplianceArgs {
    /// Report on this compartment [default: every compartment you may read]
    #[arg(short = 'c', long, visible_alias = "compartment-id", value_name = "ID",
          value_parser = parse::compartment_id, conflicts_with = "group")]
    pub compartment: Option<String>,
    /// With --compartment: every compartment below it too
    #[arg(short = 'R', long, conflicts_with = "group")]
    pub recursive: bool,
    /// Report on the members of this managed instance group
    #[arg(short = 'g', long, value_name = "ID", value_parser = parse::group_id)]
    pub group: Option<String>,
    /// List each instance's missing updates (versions, CVEs, advisories)
    #[arg(short, long)]
    pub details: bool,
    /// Least severe update classification counted as missing
    #[arg(long, value_enum, ignore_case = true, default_value_t = Severity::Security)]
    pub severity: Severity,
    /// Count only updates that fix this CVE (repeatable)
    #[arg(long = "cve", value_name = "CVE", value_parser = osm_core::report::check_cve)]
    pub cves: Vec<String>,
    /// Report format [default: text, or json with --output json]
    #[arg(short, long, value_enum, ignore_case = true)]
    pub format: Option<Format>,
    /// Write the report to this file instead of standard output (checked before anything is
    /// sent)
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

pub async fn run(api: &Api, out: Output, cmd: ReportCmd) -> Result<(), Failure> {
    match cmd {
        ReportCmd::Compliance(args) => compliance(api, out, args).await,
    }
}

async fn compliance(api: &Api, out: Output, args: ComplianceArgs) -> Result<(), Failure> {
    let format = args.format.unwrap_or(match out {
        Output::Json => Format::Json,
        Output::Table => Format::Text,
    });
    // A file that cannot be written fails now, before the server computes a report for it.
    let mut file = args
        .output_file
        .as_deref()
        .map(OutputFile::open)
        .transpose()?;
    let mut q = Query::new();
    match (&args.group, &args.compartment) {
        (Some(g), _) => {
            q.set("managedInstanceGroupId", g);
        }
        (None, Some(c)) => {
            q.set("compartmentId", c);
            if args.recursive {
                q.set("compartmentIdInSubtree", true);
            }
        }
        // No scope: the server reports on every compartment the caller may read.
        (None, None) => {}
    }
    if args.details {
        q.set("details", true);
    }
    q.set("severity", args.severity.wire());
    if !args.cves.is_empty() {
        q.set("cve", args.cves.join(","));
    }
    let resp = api.get(&q.path("/osm/v1/reports/compliance")).await?;
    let text = match format {
        Format::Json => {
            let mut s = output::pretty(&resp.body)?;
            s.push('\n');
            s
        }
        other => {
            let report: ComplianceReport = serde_json::from_slice(&resp.body).map_err(|e| {
                Failure::Connection(format!(
                    "the server answered a compliance report osmctl cannot read: {e}"
                ))
            })?;
            match other {
                Format::Text => text(&report),
                Format::Csv => csv(&report)?,
                Format::Html => html(&report)?,
                Format::Json => unreachable!(),
            }
        }
    };
    match file.take() {
        Some(f) => {
            let path = f.write(text.as_bytes())?;
            eprintln!("osmctl: wrote the report to {}", path.display());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = stdout.write_all(text.as_bytes());
        }
    }
    Ok(())
}

/// `--output-file`, opened before the report is asked for: its directory must exist and the
/// file must be writable. An existing file is left as it is until the report is written
/// (opened without truncating); one this opening created is removed again if no report comes.
struct OutputFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    created: bool,
}

impl OutputFile {
    fn open(path: &Path) -> Result<OutputFile, Failure> {
        let cannot =
            |why: String| Failure::Usage(format!("cannot write {}: {why}", path.display()));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(cannot(format!("{} is not a directory", dir.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(cannot(format!(
                    "the directory {} does not exist",
                    dir.display()
                )));
            }
            Err(e) => return Err(cannot(e.to_string())),
        }
        if path.is_dir() {
            return Err(cannot("it is a directory".into()));
        }
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| cannot(e.to_string()))?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            file: Some(file),
            created,
        })
    }

    /// Replaces the file's content with `bytes`; answers where it went.
    fn write(mut self, bytes: &[u8]) -> Result<PathBuf, Failure> {
        let mut file = self.file.take().expect("opened");
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            return Err(Failure::Usage(format!(
                "cannot write {}: {e}",
                self.path.display()
            )));
        }
        self.created = false;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // No report came (the server refused, the connection failed): leave nothing behind.
        if self.created {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `3d 4h`, `2h 5m`, `7m`, `<1m`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => "<1m".into(),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn scope_line(r: &ComplianceReport) -> String {
    let s = &r.scope;
    match (&s.managed_instance_group_id, &s.compartment_id) {
        (Some(g), _) => format!(
            "managed instance group {} ({g})",
            s.managed_instance_group_name.as_deref().unwrap_or("?")
        ),
        (None, Some(c)) => {
            let what = if c.starts_with("ocid1.tenancy.") {
                "tenancy"
            } else {
                "compartment"
            };
            match s.compartment_count {
                Some(n) if s.compartment_id_in_subtree => format!(
                    "{what} {c} and every compartment below it ({n} compartment{})",
                    if n == 1 { "" } else { "s" }
                ),
                _ => format!("{what} {c} (not the compartments below it)"),
            }
        }
        (None, None) => match &s.compartment_ids {
            Some(roots) => format!(
                "the compartments you may read: {} and every compartment below {} ({} compartment{})",
                roots.join(", "),
                if roots.len() == 1 { "it" } else { "them" },
                s.compartment_count.unwrap_or(0),
                if s.compartment_count == Some(1) {
                    ""
                } else {
                    "s"
                }
            ),
            None => "?".into(),
        },
    }
}

fn filter_line(r: &ComplianceReport) -> String {
    let f = &r.filters;
    let types: Vec<&str> = f.update_types.iter().map(|t| t.as_str()).collect();
    let mut line = format!("counting {} updates", types.join(", "));
    if !f.cves.is_empty() {
        line.push_str(&format!(" that fix {}", f.cves.join(", ")));
    }
    line
}

fn inventory_cell(i: &InstanceCompliance) -> String {
    match i.inventory_age_seconds {
        Some(s) => format!("{} ago", age(s)),
        None => "never reported".into(),
    }
}

fn os_cell(i: &InstanceCompliance) -> String {
    match (&i.os_name, &i.os_version) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => n.clone(),
        _ => i.os_family.as_str().to_string(),
    }
}

fn plain_table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    t
}

fn finish(mut table: Table) -> String {
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt()
}

fn cve_cell(cves: &[String], max: usize) -> String {
    match cves.len() {
        0 => "-".into(),
        n if n <= max => cves.join(", "),
        n => format!("{} (+{} more)", cves[..max].join(", "), n - max),
    }
}

fn versions(u: &ComplianceUpdate) -> String {
    match (&u.installed_version, &u.available_version) {
        (Some(a), Some(b)) => format!("{a} -> {b}"),
        _ => "-".into(),
    }
}

/// The terminal form: the summary, then the instances missing updates and those without an
/// inventory (the others are only counted).
pub fn text(r: &ComplianceReport) -> String {
    let s = &r.summary;
    let mut out = String::new();
    out.push_str(&format!("Compliance report: {}\n", scope_line(r)));
    out.push_str(&format!(
        "Generated {}; {}\n\n",
        osm_core::time::format_rfc3339(r.time_generated),
        filter_line(r)
    ));
    let mut summary = plain_table();
    summary.add_row(vec![
        "Instances scanned".to_string(),
        s.instances_scanned.to_string(),
    ]);
    summary.add_row(vec![
        "Instances missing updates".to_string(),
        s.instances_missing_updates.to_string(),
    ]);
    summary.add_row(vec![
        "Missing updates".to_string(),
        format!(
            "{} ({} security)",
            s.missing_updates, s.missing_security_updates
        ),
    ]);
    summary.add_row(vec![
        "Distinct CVEs".to_string(),
        s.distinct_cves.to_string(),
    ]);
    summary.add_row(vec![
        "Instances without inventory".to_string(),
        s.instances_without_inventory.to_string(),
    ]);
    if let Some(t) = s.time_oldest_inventory {
        let ago = (r.time_generated - t).as_secs();
        summary.add_row(vec![
            "Oldest inventory".to_string(),
            format!("{} ({} ago)", osm_core::time::format_rfc3339(t), age(ago)),
        ]);
    }
    out.push_str(&finish(summary));
    out.push('\n');
    let missing: Vec<&InstanceCompliance> = r
        .instances
        .iter()
        .filter(|i| i.missing_updates > 0)
        .collect();
    if missing.is_empty() {
        out.push_str("\nNo instance misses any of the counted updates.\n");
    } else {
        out.push_str("\nInstances missing updates:\n");
        let mut t = plain_table();
        t.set_header(vec![
            "NAME",
            "ID",
            "OS",
            "MISSING",
            "SECURITY",
            "BUG",
            "ENH",
            "OTHER",
            "INVENTORY",
            "CVES",
        ]);
        for i in &missing {
            t.add_row(vec![
                i.display_name.clone(),
                i.id.clone(),
                os_cell(i),
                i.missing_updates.to_string(),
                i.security_updates.to_string(),
                i.bug_updates.to_string(),
                i.enhancement_updates.to_string(),
                i.other_updates.to_string(),
                inventory_cell(i),
                cve_cell(&i.related_cves, 3),
            ]);
        }
        out.push_str(&finish(t));
        out.push('\n');
    }
    let silent: Vec<&InstanceCompliance> = r
        .instances
        .iter()
        .filter(|i| i.time_inventory_reported.is_none())
        .collect();
    if !silent.is_empty() {
        out.push_str("\nInstances without inventory (their updates are unknown):\n");
        let mut t = plain_table();
        t.set_header(vec!["NAME", "ID", "LAST CHECK-IN"]);
        for i in silent {
            t.add_row(vec![
                i.display_name.clone(),
                i.id.clone(),
                i.last_checkin.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&finish(t));
        out.push('\n');
    }
    if r.filters.details {
        for i in &missing {
            out.push_str(&format!(
                "\n{} ({}): {} missing update{}\n",
                i.display_name,
                i.id,
                i.missing_updates,
                if i.missing_updates == 1 { "" } else { "s" }
            ));
            let mut t = plain_table();
            t.set_header(vec!["  UPDATE", "TYPE", "VERSIONS", "CVES", "ADVISORIES"]);
            for u in i.updates.iter().flatten() {
                let name = match &u.architecture {
                    Some(a) => format!("  {} ({a})", u.display_name),
                    None => format!("  {}", u.display_name),
                };
                t.add_row(vec![
                    name,
                    u.update_type.as_str().to_string(),
                    versions(u),
                    cve_cell(&u.related_cves, usize::MAX),
                    cve_cell(&u.advisories, usize::MAX),
                ]);
            }
            out.push_str(&finish(t));
            out.push('\n');
        }
    }
    out
}

const CSV_INSTANCE: &[&str] = &[
    "instance_id",
    "display_name",
    "compartment_id",
    "os_family",
    "os_name",
    "os_version",
    "last_checkin",
    "time_inventory_reported",
    "inventory_age_seconds",
    "security_updates",
    "bug_updates",
    "enhancement_updates",
    "other_updates",
    "missing_updates",
    "missing_security_updates",
    "related_cves",
];

const CSV_UPDATE: &[&str] = &[
    "update_name",
    "update_display_name",
    "update_kind",
    "update_type",
    "architecture",
    "installed_version",
    "available_version",
    "update_cves",
    "advisories",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A text cell made safe to open in a spreadsheet: one that begins with `=`, `+`, `-`, `@`, a
/// tab or a carriage return would be read as a formula (CSV injection), so it gets a leading
/// `'`, which spreadsheets show as text and hide. The text comes from agents (host names, OS
/// names, package names and versions), so it is not trusted. Counts osmctl formats itself are
/// written as they are.
fn cell(text: impl Into<String>) -> String {
    let text = text.into();
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// One row per instance; with details one row per missing update (the instance's columns
/// repeated), and one row with empty update columns for an instance missing none. Lists are
/// space-separated.
pub fn csv(r: &ComplianceReport) -> Result<String, Failure> {
    let bad = |e: csv::Error| Failure::Connection(format!("writing CSV: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    let details = r.filters.details;
    let mut header: Vec<&str> = CSV_INSTANCE.to_vec();
    if details {
        header.extend_from_slice(CSV_UPDATE);
    }
    w.write_record(&header).map_err(bad)?;
    for i in &r.instances {
        let base = vec![
            cell(&i.id),
            cell(&i.display_name),
            cell(&i.compartment_id),
            i.os_family.as_str().to_string(),
            cell(opt(&i.os_name)),
            cell(opt(&i.os_version)),
            cell(opt(&i.last_checkin)),
            opt(&i
                .time_inventory_reported
                .map(osm_core::time::format_rfc3339)),
            opt(&i.inventory_age_seconds),
            i.security_updates.to_string(),
            i.bug_updates.to_string(),
            i.enhancement_updates.to_string(),
            i.other_updates.to_string(),
            i.missing_updates.to_string(),
            i.missing_security_updates.to_string(),
            cell(i.related_cves.join(" ")),
        ];
        let updates = i.updates.as_deref().unwrap_or_default();
        if !details || updates.is_empty() {
            let mut row = base;
            if details {
                row.extend(std::iter::repeat_n(String::new(), CSV_UPDATE.len()));
            }
            w.write_record(&row).map_err(bad)?;
            continue;
        }
        for u in updates {
            let mut row = base.clone();
            row.extend([
                cell(&u.name),
                cell(&u.display_name),
                cell(&u.kind),
                u.update_type.as_str().to_string(),
                cell(opt(&u.architecture)),
                cell(opt(&u.installed_version)),
                cell(opt(&u.available_version)),
                cell(u.related_cves.join(" ")),
                cell(u.advisories.join(" ")),
            ]);
            w.write_record(&row).map_err(bad)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Failure::Connection(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 text is UTF-8"))
}

/// One bar of the summary chart.
struct Bar {
    label: &'static str,
    count: i64,
    class: &'static str,
    /// Left edge and width, in the chart's 0–600 units.
    x: f64,
    width: f64,
}

/// An instance bar of the "most updates missing" chart.
struct TopBar {
    name: String,
    missing: i64,
    y: i64,
    width: f64,
}

#[derive(Template)]
#[template(path = "compliance.html")]
struct Page<'a> {
    r: &'a ComplianceReport,
    scope: String,
    filters: String,
    generated: String,
    oldest: Option<String>,
    bars: Vec<Bar>,
    top: Vec<TopBar>,
    top_height: i64,
    missing: Vec<&'a InstanceCompliance>,
    silent: Vec<&'a InstanceCompliance>,
    compliant: Vec<&'a InstanceCompliance>,
}

impl Page<'_> {
    fn inventory(&self, i: &InstanceCompliance) -> String {
        inventory_cell(i)
    }
    fn os(&self, i: &InstanceCompliance) -> String {
        os_cell(i)
    }
    fn versions(&self, u: &ComplianceUpdate) -> String {
        versions(u)
    }
    fn list(&self, items: &[String]) -> String {
        if items.is_empty() {
            "-".into()
        } else {
            items.join(", ")
        }
    }
}

/// How the instances in scope split: missing updates, up to date, never reported.
fn split_bars(r: &ComplianceReport) -> Vec<Bar> {
    let s = &r.summary;
    let total = s.instances_scanned.max(1) as f64;
    let up_to_date = r
        .instances
        .iter()
        .filter(|i| i.missing_updates == 0 && i.time_inventory_reported.is_some())
        .count() as i64;
    // An instance without inventory misses nothing known: it is not counted twice.
    let silent = r
        .instances
        .iter()
        .filter(|i| i.missing_updates == 0 && i.time_inventory_reported.is_none())
        .count() as i64;
    let mut x = 0.0;
    [
        ("missing updates", s.instances_missing_updates, "missing"),
        ("up to date", up_to_date, "ok"),
        ("no inventory", silent, "unknown"),
    ]
    .into_iter()
    .map(|(label, count, class)| {
        let width = 600.0 * count as f64 / total;
        let bar = Bar {
            label,
            count,
            class,
            x,
            width,
        };
        x += width;
        bar
    })
    .collect()
}

pub fn html(r: &ComplianceReport) -> Result<String, Failure> {
    let missing: Vec<&InstanceCompliance> = r
        .instances
        .iter()
        .filter(|i| i.missing_updates > 0)
        .collect();
    let most = missing.first().map_or(1, |i| i.missing_updates.max(1)) as f64;
    let top: Vec<TopBar> = missing
        .iter()
        .take(10)
        .enumerate()
        .map(|(n, i)| TopBar {
            name: i.display_name.clone(),
            missing: i.missing_updates,
            y: n as i64 * 22,
            width: 360.0 * i.missing_updates as f64 / most,
        })
        .collect();
    let page = Page {
        r,
        scope: scope_line(r),
        filters: filter_line(r),
        generated: osm_core::time::format_rfc3339(r.time_generated),
        oldest: r.summary.time_oldest_inventory.map(|t| {
            format!(
                "{} ({} ago)",
                osm_core::time::format_rfc3339(t),
                age((r.time_generated - t).as_secs())
            )
        }),
        bars: split_bars(r),
        top_height: top.len() as i64 * 22,
        top,
        silent: r
            .instances
            .iter()
            .filter(|i| i.time_inventory_reported.is_none())
            .collect(),
        compliant: r
            .instances
            .iter()
            .filter(|i| i.missing_updates == 0 && i.time_inventory_reported.is_some())
            .collect(),
        missing,
    };
    page.render()
        .map_err(|e| Failure::Connection(format!("rendering the HTML report: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(age(0), "<1m");
        assert_eq!(age(59), "<1m");
        assert_eq!(age(61), "1m");
        assert_eq!(age(3 * 3600 + 120), "3h 2m");
        assert_eq!(age(2 * 86_400 + 5 * 3600 + 7), "2d 5h");
        assert_eq!(age(-5), "<1m");
    }

    #[test]
    fn cve_cells_shorten() {
        let cves: Vec<String> = (1..=5).map(|n| format!("CVE-2024-000{n}")).collect();
        assert_eq!(cve_cell(&[], 3), "-");
        assert_eq!(
            cve_cell(&cves, 3),
            "CVE-2024-0001, CVE-2024-0002, CVE-2024-0003 (+2 more)"
        );
        assert_eq!(cve_cell(&cves[..2], 3), "CVE-2024-0001, CVE-2024-0002");
    }

    /// A report whose agent-reported text tries formulas in every kind of cell.
    fn hostile_report() -> ComplianceReport {
        serde_json::from_value(serde_json::json!({
            "timeGenerated": "2026-12-01T07:50:53.833Z",
            "scope": {"compartmentId": "ocid1.tenancy.oc1..aaaa", "compartmentIdInSubtree": true, "compartmentCount": 1},
            "filters": {"severity": "SECURITY", "updateTypes": ["SECURITY"], "cves": [], "details": true},
            "summary": {"instancesScanned": 2, "instancesMissingUpdates": 1, "instancesWithoutInventory": 1,
                        "missingUpdates": 1, "missingSecurityUpdates": 1, "distinctCves": 1},
            "instances": [
                {"id": "ocid1.instance.oc1..bbbb", "displayName": "=HYPERLINK(\"http://x\")",
                 "compartmentId": "ocid1.tenancy.oc1..aaaa", "osFamily": "LINUX",
                 "osName": "+cmd|' /C calc'!A0", "osVersion": "-1+1",
                 "timeInventoryReported": "2026-12-01T07:50:45.864Z", "inventoryAgeSeconds": -3,
                 "securityUpdates": 1, "bugUpdates": 0, "enhancementUpdates": 0, "otherUpdates": 0,
                 "missingUpdates": 1, "missingSecurityUpdates": 1, "relatedCves": ["CVE-2024-0001"],
                 "updates": [{"displayName": "@SUM(1+1)", "name": "\tevil", "kind": "PACKAGE",
                              "updateType": "SECURITY", "architecture": "\rarch",
                              "installedVersion": "-1", "availableVersion": "=2",
                              "relatedCves": ["CVE-2024-0001"], "advisories": ["+ADV"]}]},
                {"id": "ocid1.instance.oc1..cccc", "displayName": "web-1 = fine",
                 "compartmentId": "ocid1.tenancy.oc1..aaaa", "osFamily": "LINUX",
                 "securityUpdates": 0, "bugUpdates": 0, "enhancementUpdates": 0, "otherUpdates": 0,
                 "missingUpdates": 0, "missingSecurityUpdates": 0, "relatedCves": [], "updates": []}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn csv_cells_cannot_start_a_formula() {
        let text = csv(&hostile_report()).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        let get = |row: usize, column: &str| {
            let n = header.iter().position(|h| h == column).unwrap();
            rows[row][n].clone()
        };
        assert_eq!(get(0, "display_name"), "'=HYPERLINK(\"http://x\")");
        assert_eq!(get(0, "os_name"), "'+cmd|' /C calc'!A0");
        assert_eq!(get(0, "os_version"), "'-1+1");
        assert_eq!(get(0, "update_display_name"), "'@SUM(1+1)");
        assert_eq!(get(0, "update_name"), "'\tevil");
        assert_eq!(get(0, "architecture"), "'\rarch");
        assert_eq!(get(0, "installed_version"), "'-1");
        assert_eq!(get(0, "available_version"), "'=2");
        assert_eq!(get(0, "advisories"), "'+ADV");
        // What cannot start a formula is left alone, and so are osmctl's own numbers.
        assert_eq!(get(0, "instance_id"), "ocid1.instance.oc1..bbbb");
        assert_eq!(get(0, "update_cves"), "CVE-2024-0001");
        assert_eq!(get(0, "inventory_age_seconds"), "-3");
        assert_eq!(get(1, "display_name"), "web-1 = fine");
        // No cell of the file starts a formula.
        for row in &rows {
            for (n, value) in row.iter().enumerate() {
                if header[n] == "inventory_age_seconds" {
                    continue;
                }
                assert!(
                    !value.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{}: {value:?}",
                    header[n]
                );
            }
        }
    }
}
