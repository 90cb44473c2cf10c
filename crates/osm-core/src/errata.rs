//! Errata: the advisories osm knows (from agents' reports and imported OSV records), how an
//! imported OSV record becomes a catalogue entry, and how the records that an available update
//! fixes change what the update says about itself.
//!
//! **The matching rule.** An available update of package `P` (installed version `I`,
//! available version `A`) on an instance of ecosystem `E` (see [`crate::ecosystem::of_os`]) is
//! fixed by record `R` when `R` is not withdrawn, `R` affects `P` at `I` in `E`, and `R` does not
//! affect `P` at `A`. The update then names `R` among its advisories and carries `R`'s CVEs;
//! when `R` is a security advisory the update becomes `SECURITY`. What the agent reported is
//! kept: OSV matches only add.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::enums::UpdateClassification;
use crate::model::IdName;
use crate::osv::{Advisory, FieldError, OsvError, VersionScheme};

/// Longest synopsis kept (the agent protocol's limit too).
pub const MAX_SYNOPSIS_LEN: usize = 1024;
/// Longest description kept.
pub const MAX_DESCRIPTION_LEN: usize = 64 * 1024;
/// Most records in one import.
pub const MAX_IMPORT_RECORDS: usize = 100_000;

/// A checked OSV record and its JSON text (kept, so later uploads are matched against it).
#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub advisory: Advisory,
    /// The record as compact JSON: the same record read from a file or sent to the API is the
    /// same text, so importing it again either way finds it unchanged.
    pub document: String,
}

impl ImportRecord {
    /// One OSV document's text, checked (an error names its line and column).
    pub fn parse(text: &str) -> Result<ImportRecord, OsvError> {
        let (advisory, value) = crate::osv::parse_document(text)?;
        Ok(ImportRecord {
            advisory,
            document: value.to_string(),
        })
    }

    /// One OSV record already read as JSON (an element of the API's `records`), checked (an
    /// error names the field).
    pub fn from_value(value: &serde_json::Value) -> Result<ImportRecord, FieldError> {
        Ok(ImportRecord {
            advisory: crate::osv::from_value(value)?,
            document: value.to_string(),
        })
    }
}

/// Whether a directory entry is read as an OSV file (`*.json`; other files are ignored).
pub fn is_osv_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "json")
}

/// The one reader of OSV files, for every way in that reads them (osmd's `errata_dir`,
/// `osmctl errata import`): `listing` is the directory's entries (or why it could not be
/// read), `read` reads one file. The `*.json` entries are read in name order, each as one
/// record; the first bad one stops it with `FILE:LINE:COLUMN: what is wrong`, and so does a
/// record id given by two files or more than [`MAX_IMPORT_RECORDS`] files. osm-core does no
/// I/O itself: the caller passes the file system's calls.
pub fn read_osv_files(
    dir: &Path,
    listing: std::io::Result<Vec<PathBuf>>,
    mut read: impl FnMut(&Path) -> std::io::Result<String>,
) -> Result<Vec<ImportRecord>, String> {
    let mut files: Vec<PathBuf> = listing
        .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?
        .into_iter()
        .filter(|p| is_osv_file(p))
        .collect();
    files.sort();
    if files.len() > MAX_IMPORT_RECORDS {
        return Err(format!(
            "{} holds {} OSV files; at most {MAX_IMPORT_RECORDS} are imported at once",
            dir.display(),
            files.len()
        ));
    }
    let mut records = Vec::with_capacity(files.len());
    for path in &files {
        let shown = path.display().to_string();
        let text = read(path).map_err(|e| format!("{shown}: cannot read it: {e}"))?;
        records.push(ImportRecord::parse(&text).map_err(|e| e.in_file(&shown))?);
    }
    check_batch(records.iter().map(|r| r.advisory.id.as_str())).map_err(|(i, _)| {
        let id = &records[i].advisory.id;
        let first = records
            .iter()
            .position(|r| r.advisory.id == *id)
            .unwrap_or(0);
        format!(
            "{}:1:1: the id {id:?} is also the id of {}; keep one file per record",
            files[i].display(),
            files[first].display()
        )
    })?;
    Ok(records)
}

/// A package version an erratum names (the wire's `SoftwarePackageSummary`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErratumPackage {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `deb`, `rpm`…
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub package_type: Option<String>,
}

/// An entry of the errata catalogue with everything osm knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErratumInfo {
    pub id: String,
    pub compartment_id: String,
    /// The advisory name (`DSA-5678-1`, `ELSA-2024-1234`, an OSV id).
    pub name: String,
    pub advisory_type: Option<UpdateClassification>,
    pub synopsis: Option<String>,
    pub description: Option<String>,
    pub issued: Option<Timestamp>,
    /// The OSV record's `modified`, when the entry comes from one.
    pub modified: Option<Timestamp>,
    /// Who published it (`from`): the distributions of an OSV record.
    pub issuer: Option<String>,
    pub solution: Option<String>,
    pub references: Option<String>,
    pub related_cves: Vec<String>,
    /// The fixed versions an OSV record names.
    pub packages: Vec<ErratumPackage>,
    /// Set when the OSV record was withdrawn: it no longer applies to any instance.
    pub withdrawn: Option<Timestamp>,
    pub time_created: Timestamp,
    pub time_updated: Timestamp,
}

/// An erratum as `GetErratum` shows it to one caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErratumDetails {
    pub info: ErratumInfo,
    /// Instances (that the caller reaches) with an available update naming the erratum.
    pub affected_instances: Vec<IdName>,
    /// The record's fixed versions and the updates naming it on those instances.
    pub packages: Vec<ErratumPackage>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Records in the batch.
    pub records: usize,
    /// Records osm did not have.
    pub created: usize,
    /// Records replaced by a newer (or same-time but different) version.
    pub updated: usize,
    /// Records osm already had exactly.
    pub unchanged: usize,
    /// Records older (by `modified`) than the version osm has; not applied.
    pub stale: usize,
    /// Withdrawn records among those created or updated.
    pub withdrawn: usize,
    /// Available updates whose type, CVEs or advisories changed.
    pub updates_changed: usize,
    /// Instances with such an update.
    pub instances_changed: usize,
}

/// The catalogue fields an OSV record fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsvErratum {
    pub advisory_type: UpdateClassification,
    pub synopsis: String,
    pub description: Option<String>,
    pub issued: Option<Timestamp>,
    pub modified: Timestamp,
    pub issuer: Option<String>,
    pub solution: String,
    pub references: Option<String>,
    pub related_cves: Vec<String>,
    pub packages: Vec<ErratumPackage>,
    pub withdrawn: Option<Timestamp>,
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

impl Advisory {
    /// The catalogue entry this record makes.
    pub fn erratum(&self) -> OsvErratum {
        let fixes = self.fixes();
        let families: BTreeSet<&str> = self
            .affected
            .iter()
            .map(|a| crate::ecosystem::family(&a.package.ecosystem))
            .filter(|f| !f.is_empty())
            .collect();
        let synopsis = self
            .summary
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                let names = self.package_names();
                if names.is_empty() {
                    self.id.clone()
                } else {
                    format!("{}: {}", self.id, names.join(", "))
                }
            });
        let solution = if let Some(w) = self.withdrawn {
            format!(
                "This advisory was withdrawn on {}; it no longer applies to any instance.",
                crate::time::format_rfc3339(w)
            )
        } else if fixes.is_empty() {
            "No fixed version is published yet.".to_string()
        } else {
            let list: Vec<String> = fixes
                .iter()
                .map(|(eco, name, v)| format!("{name} {v} ({eco})"))
                .collect();
            format!("Update to these versions or later: {}.", list.join(", "))
        };
        let references: Vec<&str> = self.references.iter().map(|r| r.url.as_str()).collect();
        OsvErratum {
            advisory_type: self.classification(),
            synopsis: truncate(&one_line(&synopsis), MAX_SYNOPSIS_LEN),
            description: self
                .details
                .as_deref()
                .map(|d| truncate(d, MAX_DESCRIPTION_LEN)),
            issued: self.published,
            modified: self.modified,
            issuer: (!families.is_empty())
                .then(|| families.into_iter().collect::<Vec<_>>().join(", ")),
            solution,
            references: (!references.is_empty()).then(|| references.join("\n")),
            related_cves: self.cves(),
            packages: fixes
                .into_iter()
                .map(|(eco, name, version)| ErratumPackage {
                    name,
                    version,
                    architecture: None,
                    package_type: Some(
                        match VersionScheme::of_ecosystem(&eco) {
                            Some(VersionScheme::Dpkg) => "deb",
                            _ => "rpm",
                        }
                        .to_string(),
                    ),
                })
                .collect(),
            withdrawn: self.withdrawn,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Refuses a batch that names one record twice: `(index, message)` of the second.
pub fn check_batch<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<(), (usize, String)> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, id) in ids.into_iter().enumerate() {
        if let Some(first) = seen.insert(id, i) {
            return Err((
                i,
                format!(
                    "the id {id:?} is also record {first} of this batch; import each record once"
                ),
            ));
        }
    }
    Ok(())
}

/// What an available update says about itself: its type, CVEs and advisory names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateFacts {
    pub update_type: UpdateClassification,
    pub cves: Vec<String>,
    pub advisories: Vec<String>,
}

/// The records among `candidates` that the update of `name` from `installed` to `available`
/// on an instance of `ecosystem` fixes (none when the instance has no known ecosystem).
pub fn fixing<'a>(
    ecosystem: Option<&str>,
    name: &str,
    installed: &str,
    available: &str,
    candidates: impl IntoIterator<Item = &'a Advisory>,
) -> Vec<&'a Advisory> {
    let Some(eco) = ecosystem else {
        return vec![];
    };
    candidates
        .into_iter()
        .filter(|a| a.fixed_by(eco, name, installed, available))
        .collect()
}

/// What the agent reported, with the records the update fixes merged in: their ids join the
/// advisories (after the reported ones), their CVEs join the CVEs (sorted, no repeats), and the
/// update is `SECURITY` when one of them is a security advisory.
pub fn merge(reported: &UpdateFacts, fixed_by: &[&Advisory]) -> UpdateFacts {
    let mut out = reported.clone();
    if fixed_by.is_empty() {
        return out;
    }
    if fixed_by
        .iter()
        .any(|a| a.classification() == UpdateClassification::Security)
    {
        out.update_type = UpdateClassification::Security;
    }
    let cves: BTreeSet<String> = reported
        .cves
        .iter()
        .cloned()
        .chain(fixed_by.iter().flat_map(|a| a.cves()))
        .collect();
    out.cves = cves.into_iter().collect();
    let mut seen: HashSet<String> = out.advisories.iter().cloned().collect();
    let mut added: Vec<String> = fixed_by
        .iter()
        .map(|a| a.id.clone())
        .filter(|id| seen.insert(id.clone()))
        .collect();
    added.sort();
    out.advisories.extend(added);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osv::parse;

    fn dsa() -> Advisory {
        parse(
            r#"{"id": "DSA-5900-1", "aliases": ["CVE-2024-0002", "CVE-2024-0001"],
                "summary": "openssl security update", "details": "Two flaws.",
                "published": "2024-02-28T00:00:00Z", "modified": "2024-03-01T00:00:00Z",
                "references": [{"type": "ADVISORY", "url": "https://security.example/DSA-5900-1"}],
                "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.11-1~deb12u2"}]}]}]}"#,
        )
        .unwrap()
    }

    fn reported(t: UpdateClassification, cves: &[&str], advisories: &[&str]) -> UpdateFacts {
        UpdateFacts {
            update_type: t,
            cves: cves.iter().map(|s| s.to_string()).collect(),
            advisories: advisories.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_update_past_the_fix_is_fixed_by_the_record_epochs_and_tildes_included() {
        let a = dsa();
        let eco = Some("Debian:12");
        // 1:… has an epoch: any version without one is older.
        assert_eq!(
            fixing(eco, "openssl", "3.0.99-1", "1:3.0.11-1~deb12u2", [&a]).len(),
            1
        );
        // ~ sorts before anything, even the end: 1~deb12u2 is below 1.
        assert_eq!(
            fixing(eco, "openssl", "1:3.0.11-1~deb12u1", "1:3.0.11-1", [&a]).len(),
            1
        );
        // A rebuild of the vulnerable version still sorts below the fix.
        assert!(
            fixing(
                eco,
                "openssl",
                "1:3.0.11-1~deb12u1",
                "1:3.0.11-1~deb12u1+b1",
                [&a]
            )
            .is_empty()
        );
        // Already fixed, another release, another package, no ecosystem, a malformed version.
        assert!(fixing(eco, "openssl", "1:3.0.11-1~deb12u2", "1:3.0.13-1", [&a]).is_empty());
        assert!(
            fixing(
                Some("Debian:11"),
                "openssl",
                "3.0.1-1",
                "1:3.0.11-1~deb12u2",
                [&a]
            )
            .is_empty()
        );
        assert!(fixing(eco, "libssl3", "3.0.1-1", "1:3.0.11-1~deb12u2", [&a]).is_empty());
        assert!(fixing(None, "openssl", "3.0.1-1", "1:3.0.11-1~deb12u2", [&a]).is_empty());
        assert!(fixing(eco, "openssl", "3.0.1-1", "not a version!", [&a]).is_empty());
    }

    #[test]
    fn matches_merge_into_what_the_agent_reported() {
        let a = dsa();
        let bug = reported(UpdateClassification::Bug, &["CVE-2023-9999"], &["DLA-1-1"]);
        let m = merge(&bug, &[&a]);
        assert_eq!(m.update_type, UpdateClassification::Security);
        assert_eq!(m.cves, ["CVE-2023-9999", "CVE-2024-0001", "CVE-2024-0002"]);
        assert_eq!(m.advisories, ["DLA-1-1", "DSA-5900-1"]);
        // Nothing fixed: exactly what was reported.
        assert_eq!(merge(&bug, &[]), bug);
        // Already named: not twice.
        let named = reported(UpdateClassification::Other, &[], &["DSA-5900-1"]);
        assert_eq!(merge(&named, &[&a]).advisories, ["DSA-5900-1"]);
        // A bug-fix advisory adds its name but leaves the type.
        let rhba = parse(
            r#"{"id": "RHBA-2024:1", "modified": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "Red Hat:enterprise_linux:9::baseos", "name": "tzdata"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2024a-1.el9"}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(rhba.classification(), UpdateClassification::Bug);
        let enh = reported(UpdateClassification::Enhancement, &[], &[]);
        let m = merge(&enh, &[&rhba]);
        assert_eq!(m.update_type, UpdateClassification::Enhancement);
        assert_eq!(m.advisories, ["RHBA-2024:1"]);
        assert!(rhba.fixed_by(
            "Red Hat:enterprise_linux:9",
            "tzdata",
            "2023c-1.el9",
            "2024a-1.el9"
        ));
    }

    #[test]
    fn a_record_makes_a_catalogue_entry() {
        let e = dsa().erratum();
        assert_eq!(e.advisory_type, UpdateClassification::Security);
        assert_eq!(e.synopsis, "openssl security update");
        assert_eq!(e.issuer.as_deref(), Some("Debian"));
        assert_eq!(e.related_cves, ["CVE-2024-0001", "CVE-2024-0002"]);
        assert_eq!(
            e.packages,
            [ErratumPackage {
                name: "openssl".into(),
                version: "1:3.0.11-1~deb12u2".into(),
                architecture: None,
                package_type: Some("deb".into()),
            }]
        );
        assert!(
            e.solution
                .contains("openssl 1:3.0.11-1~deb12u2 (Debian:12)"),
            "{}",
            e.solution
        );
        assert_eq!(
            e.references.as_deref(),
            Some("https://security.example/DSA-5900-1")
        );
        let bare = parse(
            r#"{"id": "OSV-2024-1", "modified": "2024-01-01T00:00:00Z", "withdrawn": "2024-02-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "zlib"}}]}"#,
        )
        .unwrap()
        .erratum();
        assert_eq!(bare.synopsis, "OSV-2024-1: zlib");
        assert!(bare.solution.contains("withdrawn"), "{}", bare.solution);
    }

    #[test]
    fn osv_files_are_read_in_name_order_and_the_first_bad_one_stops_it() {
        use std::collections::HashMap;
        let dir = Path::new("/feed");
        let rec = |id: &str| format!(r#"{{"id": "{id}", "modified": "2024-01-01T00:00:00Z"}}"#);
        let files: HashMap<PathBuf, String> = [
            ("/feed/b.json", rec("B-1")),
            ("/feed/a.json", format!("{}\n", rec("A-1"))),
            ("/feed/notes.txt", "not a record".to_string()),
        ]
        .into_iter()
        .map(|(p, t)| (PathBuf::from(p), t))
        .collect();
        let listing = || Ok::<_, std::io::Error>(files.keys().cloned().collect::<Vec<_>>());
        let read = |p: &Path| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::other("gone"))
        };
        let records = read_osv_files(dir, listing(), read).unwrap();
        let ids: Vec<&str> = records.iter().map(|r| r.advisory.id.as_str()).collect();
        assert_eq!(ids, ["A-1", "B-1"]);
        // Kept as compact JSON, as the API keeps a record sent to it.
        assert_eq!(
            records[0].document,
            r#"{"id":"A-1","modified":"2024-01-01T00:00:00Z"}"#
        );
        let value: serde_json::Value = serde_json::from_str(&rec("A-1")).unwrap();
        assert_eq!(
            ImportRecord::from_value(&value).unwrap().document,
            records[0].document
        );
        // A bad file, a record twice, an unreadable directory or file.
        let mut bad = files.clone();
        bad.insert(
            PathBuf::from("/feed/c.json"),
            "{\"id\": \"C-1\",\n \"modified\": 1e400}".into(),
        );
        let e = read_osv_files(dir, Ok(bad.keys().cloned().collect()), |p: &Path| {
            Ok(bad[p].clone())
        })
        .unwrap_err();
        assert!(e.starts_with("/feed/c.json:2:"), "{e}");
        let mut twice = files.clone();
        twice.insert(PathBuf::from("/feed/c.json"), rec("A-1"));
        let e = read_osv_files(dir, Ok(twice.keys().cloned().collect()), |p: &Path| {
            Ok(twice[p].clone())
        })
        .unwrap_err();
        assert!(
            e.contains("/feed/c.json:1:1: the id \"A-1\" is also the id of /feed/a.json"),
            "{e}"
        );
        let e = read_osv_files(dir, Err(std::io::Error::other("no such dir")), read).unwrap_err();
        assert!(e.contains("cannot read the directory /feed"), "{e}");
        let e = read_osv_files(dir, Ok(vec![PathBuf::from("/feed/z.json")]), read).unwrap_err();
        assert!(e.starts_with("/feed/z.json: cannot read it"), "{e}");
    }

    #[test]
    fn a_batch_names_each_record_once() {
        assert!(check_batch(["A", "B"]).is_ok());
        let (i, m) = check_batch(["A", "B", "A"]).unwrap_err();
        assert_eq!(i, 2);
        assert!(m.contains("record 0"), "{m}");
    }
}
