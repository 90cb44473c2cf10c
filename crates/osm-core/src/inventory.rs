//! Package inventory: what agents report about their host (installed and available packages,
//! available updates with their CVEs and advisories, Windows updates), how an upload is
//! checked, and the errata an upload names.
//!
//! An upload is either **full** (it replaces everything the server holds for the instance) or
//! a **diff** against the revision the server holds (`baseRevision`). Packages and updates are
//! keyed by `(name, architecture)`, an absent architecture counting as `""`; Windows updates by
//! `name`. The wire form is documented in `docs/agent-protocol.md`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::enums::{Installable, UpdateClassification};
use crate::validate::check_package_name;

/// Most items in one section of an upload (or one `upsert`/`remove` list of a diff).
pub const MAX_ITEMS: usize = 100_000;
pub const MAX_VERSION_LEN: usize = 255;
pub const MAX_ARCHITECTURE_LEN: usize = 64;
pub const MAX_TYPE_LEN: usize = 32;
pub const MAX_CVES: usize = 1000;
pub const MAX_ADVISORIES: usize = 100;
pub const MAX_SYNOPSIS_LEN: usize = 1024;
pub const MAX_TITLE_LEN: usize = 1024;
pub const MAX_DESCRIPTION_LEN: usize = 8000;
pub const MAX_KB_ARTICLES: usize = 100;

/// An installed or installable package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// `deb`, `rpm`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub package_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_time: Option<Timestamp>,
}

/// A security, bug-fix or enhancement advisory an update belongs to (`DSA-5678-1`,
/// `ELSA-2024-1234`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advisory {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub advisory_type: Option<UpdateClassification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synopsis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<Timestamp>,
}

/// A newer version of an installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageUpdate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    pub installed_version: String,
    pub available_version: String,
    pub update_type: UpdateClassification,
    #[serde(default)]
    pub cves: Vec<String>,
    #[serde(default)]
    pub advisories: Vec<Advisory>,
    /// The package type (osm extension; the installed package's type when absent).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub package_type: Option<String>,
}

/// A Windows update, installed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsUpdate {
    /// Microsoft's update id.
    pub name: String,
    pub display_name: String,
    pub update_type: UpdateClassification,
    pub installed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installable: Option<Installable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_required: Option<bool>,
    #[serde(default)]
    pub kb_article_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_in_bytes: Option<i64>,
}

/// What a diff removes from the package and update sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageKey {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// What a diff removes from the Windows update section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateName {
    pub name: String,
}

/// Everything the host has: replaces what the server held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FullInventory {
    #[serde(default)]
    pub installed: Vec<Package>,
    #[serde(default)]
    pub available: Vec<Package>,
    #[serde(default)]
    pub updates: Vec<PackageUpdate>,
    #[serde(default)]
    pub windows_updates: Vec<WindowsUpdate>,
}

/// The changes to one section: rows added or replaced, and keys removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes<T, K> {
    #[serde(default = "Vec::new")]
    pub upsert: Vec<T>,
    #[serde(default = "Vec::new")]
    pub remove: Vec<K>,
}

impl<T, K> Default for Changes<T, K> {
    fn default() -> Self {
        Changes {
            upsert: vec![],
            remove: vec![],
        }
    }
}

/// What changed since `base_revision`; absent sections are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryDiff {
    pub base_revision: i64,
    #[serde(default)]
    pub installed: Option<Changes<Package, PackageKey>>,
    #[serde(default)]
    pub available: Option<Changes<Package, PackageKey>>,
    #[serde(default)]
    pub updates: Option<Changes<PackageUpdate, PackageKey>>,
    #[serde(default)]
    pub windows_updates: Option<Changes<WindowsUpdate, UpdateName>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryUpload {
    Full(FullInventory),
    Diff(InventoryDiff),
}

/// The inventory the server holds for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryState {
    /// Bumped by every accepted upload; a diff must name it as its base.
    pub revision: i64,
    /// When the last upload was accepted (how old the data is).
    pub time_reported: Timestamp,
}

/// How the store answered an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryApplied {
    /// Stored; the instance's inventory is now at this revision.
    Stored { revision: i64 },
    /// A diff against another revision than the stored one: nothing changed.
    RevisionMismatch { current: i64 },
}

/// A stored row with the time osm first saw it (what `sortBy=TIMECREATED` orders by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported<T> {
    pub item: T,
    pub time_created: Timestamp,
}

/// An available update as listed: the update and the catalogue entries of its advisories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpdate {
    pub update: PackageUpdate,
    /// The package type, from the update or else the installed package.
    pub package_type: Option<String>,
    /// `(erratum OCID, advisory name)` of each advisory.
    pub errata: Vec<(String, String)>,
    pub time_created: Timestamp,
}

/// A Windows update of the catalogue: every update some instance reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsUpdateInfo {
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub update_type: UpdateClassification,
    pub size_in_bytes: Option<i64>,
    pub kb_article_ids: Vec<String>,
    pub reboot_required: Option<bool>,
    /// As last reported by any instance.
    pub installable: Option<Installable>,
    pub time_created: Timestamp,
}

/// An advisory of the errata catalogue (one per name in a tenancy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erratum {
    pub id: String,
    pub compartment_id: String,
    pub name: String,
    pub advisory_type: Option<UpdateClassification>,
    pub synopsis: Option<String>,
    pub issued: Option<Timestamp>,
    pub related_cves: Vec<String>,
    pub time_created: Timestamp,
    pub time_updated: Timestamp,
}

/// An advisory as an upload reports it, merged over every update that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedErratum {
    pub name: String,
    pub advisory_type: UpdateClassification,
    pub synopsis: Option<String>,
    pub issued: Option<Timestamp>,
    pub cves: BTreeSet<String>,
}

/// The unique key of a package or update row: name and architecture joined by a space (names
/// and architectures hold no whitespace), so it sorts by name, then architecture. Page cursors
/// carry it as the row id.
pub fn package_key(name: &str, architecture: Option<&str>) -> String {
    format!("{name} {}", architecture.unwrap_or(""))
}

impl Package {
    pub fn key(&self) -> String {
        package_key(&self.name, self.architecture.as_deref())
    }
}

impl PackageUpdate {
    pub fn key(&self) -> String {
        package_key(&self.name, self.architecture.as_deref())
    }
}

impl PackageKey {
    pub fn key(&self) -> String {
        package_key(&self.name, self.architecture.as_deref())
    }
}

/// The advisories the updates name, by advisory name, each with the CVEs of every update that
/// names it. The type is the advisory's own, else the type of the (first) update naming it.
pub fn reported_errata<'a>(
    updates: impl IntoIterator<Item = &'a PackageUpdate>,
) -> Vec<ReportedErratum> {
    let mut out: BTreeMap<String, ReportedErratum> = BTreeMap::new();
    for u in updates {
        for a in &u.advisories {
            let e = out
                .entry(a.name.clone())
                .or_insert_with(|| ReportedErratum {
                    name: a.name.clone(),
                    advisory_type: a.advisory_type.unwrap_or(u.update_type),
                    synopsis: None,
                    issued: None,
                    cves: BTreeSet::new(),
                });
            if let Some(t) = a.advisory_type {
                e.advisory_type = t;
            }
            if a.synopsis.is_some() {
                e.synopsis = a.synopsis.clone();
            }
            if a.issued.is_some() {
                e.issued = a.issued;
            }
            e.cves.extend(u.cves.iter().cloned());
        }
    }
    out.into_values().collect()
}

// --- validation ---------------------------------------------------------------------------

/// `CVE-<4 digits>-<4 or more digits>`.
pub fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    year.len() == 4 && digits(year) && (4..=19).contains(&number.len()) && digits(number)
}

fn check_text(field: &str, value: &str, max: usize, allow_newlines: bool) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    let bad = |c: char| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t'));
    if value.chars().any(bad) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn check_required_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    check_text(field, value, max, false)
}

fn check_name(field: &str, value: &str) -> Result<(), String> {
    check_package_name(field, value)
}

/// Architectures: `amd64`, `x86_64`, `noarch`… An empty one counts as absent.
fn normalize_architecture(field: &str, arch: &mut Option<String>) -> Result<(), String> {
    if arch.as_deref() == Some("") {
        *arch = None;
    }
    if let Some(a) = arch {
        if a.len() > MAX_ARCHITECTURE_LEN {
            return Err(format!(
                "{field} is longer than {MAX_ARCHITECTURE_LEN} characters"
            ));
        }
        if a.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{field}: {a:?} must not contain spaces"));
        }
    }
    Ok(())
}

fn check_type(field: &str, value: &Option<String>) -> Result<(), String> {
    if let Some(t) = value
        && (t.is_empty()
            || t.len() > MAX_TYPE_LEN
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(format!(
            "{field}: {t:?} is not a package type such as deb or rpm (1 to {MAX_TYPE_LEN} letters, digits, '-' or '_')"
        ));
    }
    Ok(())
}

fn check_count(field: &str, n: usize) -> Result<(), String> {
    if n > MAX_ITEMS {
        return Err(format!(
            "{field} has {n} items; at most {MAX_ITEMS} are accepted"
        ));
    }
    Ok(())
}

fn check_package(field: &str, p: &mut Package) -> Result<(), String> {
    check_name(&format!("{field}.name"), &p.name)?;
    check_required_text(&format!("{field}.version"), &p.version, MAX_VERSION_LEN)?;
    normalize_architecture(&format!("{field}.architecture"), &mut p.architecture)?;
    check_type(&format!("{field}.type"), &p.package_type)
}

fn check_update(field: &str, u: &mut PackageUpdate) -> Result<(), String> {
    check_name(&format!("{field}.name"), &u.name)?;
    normalize_architecture(&format!("{field}.architecture"), &mut u.architecture)?;
    check_required_text(
        &format!("{field}.installedVersion"),
        &u.installed_version,
        MAX_VERSION_LEN,
    )?;
    check_required_text(
        &format!("{field}.availableVersion"),
        &u.available_version,
        MAX_VERSION_LEN,
    )?;
    check_type(&format!("{field}.type"), &u.package_type)?;
    if u.cves.len() > MAX_CVES {
        return Err(format!(
            "{field}.cves: at most {MAX_CVES} CVE ids per update"
        ));
    }
    for (i, c) in u.cves.iter().enumerate() {
        if !is_cve_id(c) {
            return Err(format!(
                "{field}.cves[{i}]: {:?} is not a CVE id such as CVE-2024-1234",
                c.chars().take(40).collect::<String>()
            ));
        }
    }
    u.cves.sort();
    u.cves.dedup();
    if u.advisories.len() > MAX_ADVISORIES {
        return Err(format!(
            "{field}.advisories: at most {MAX_ADVISORIES} advisories per update"
        ));
    }
    let mut seen = HashSet::new();
    for (i, a) in u.advisories.iter().enumerate() {
        let f = format!("{field}.advisories[{i}]");
        check_name(&format!("{f}.name"), &a.name)?;
        if let Some(s) = &a.synopsis {
            check_text(&format!("{f}.synopsis"), s, MAX_SYNOPSIS_LEN, false)?;
        }
        if !seen.insert(a.name.as_str()) {
            return Err(format!("{f}.name: {:?} is named twice", a.name));
        }
    }
    Ok(())
}

fn check_windows_update(field: &str, w: &WindowsUpdate) -> Result<(), String> {
    check_name(&format!("{field}.name"), &w.name)?;
    check_required_text(
        &format!("{field}.displayName"),
        &w.display_name,
        MAX_TITLE_LEN,
    )?;
    if let Some(d) = &w.description {
        check_text(
            &format!("{field}.description"),
            d,
            MAX_DESCRIPTION_LEN,
            true,
        )?;
    }
    if w.size_in_bytes.is_some_and(|n| n < 0) {
        return Err(format!("{field}.sizeInBytes must not be negative"));
    }
    if w.kb_article_ids.len() > MAX_KB_ARTICLES {
        return Err(format!(
            "{field}.kbArticleIds: at most {MAX_KB_ARTICLES} per update"
        ));
    }
    for (i, kb) in w.kb_article_ids.iter().enumerate() {
        if kb.is_empty() || kb.len() > 32 || !kb.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "{field}.kbArticleIds[{i}]: {:?} is not a KB article id such as 5034441",
                kb.chars().take(40).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Checks a list of rows (normalising them) and that no key repeats.
fn check_rows<T>(
    field: &str,
    rows: &mut [T],
    check: impl Fn(&str, &mut T) -> Result<(), String>,
    key: impl Fn(&T) -> String,
    keys: &mut HashSet<String>,
) -> Result<(), String> {
    check_count(field, rows.len())?;
    for (i, row) in rows.iter_mut().enumerate() {
        let f = format!("{field}[{i}]");
        check(&f, row)?;
        let k = key(row);
        if !keys.insert(k.clone()) {
            return Err(format!(
                "{f}: {} appears more than once in this upload; report one entry per {}",
                describe_key(&k),
                if field.contains("windowsUpdates") {
                    "name"
                } else {
                    "(name, architecture)"
                }
            ));
        }
    }
    Ok(())
}

fn describe_key(key: &str) -> String {
    match key.split_once(' ') {
        Some((name, "")) => format!("{name:?}"),
        Some((name, arch)) => format!("{name:?} ({arch})"),
        None => format!("{key:?}"),
    }
}

fn check_package_keys(
    field: &str,
    rows: &mut [PackageKey],
    upserted: &HashSet<String>,
) -> Result<(), String> {
    let mut keys = HashSet::new();
    check_rows(
        field,
        rows,
        |f, k| {
            check_name(&format!("{f}.name"), &k.name)?;
            normalize_architecture(&format!("{f}.architecture"), &mut k.architecture)
        },
        PackageKey::key,
        &mut keys,
    )?;
    if let Some(k) = keys.iter().find(|k| upserted.contains(*k)) {
        return Err(format!(
            "{field}: {} is both upserted and removed",
            describe_key(k)
        ));
    }
    Ok(())
}

fn check_package_changes(field: &str, c: &mut Changes<Package, PackageKey>) -> Result<(), String> {
    let mut keys = HashSet::new();
    check_rows(
        &format!("{field}.upsert"),
        &mut c.upsert,
        check_package,
        Package::key,
        &mut keys,
    )?;
    check_package_keys(&format!("{field}.remove"), &mut c.remove, &keys)
}

impl FullInventory {
    /// Checks every field (naming the first bad one) and normalises what it keeps: empty
    /// architectures become absent, CVE lists are sorted without repeats.
    pub fn check(&mut self) -> Result<(), String> {
        check_rows(
            "installed",
            &mut self.installed,
            check_package,
            Package::key,
            &mut HashSet::new(),
        )?;
        check_rows(
            "available",
            &mut self.available,
            check_package,
            Package::key,
            &mut HashSet::new(),
        )?;
        check_rows(
            "updates",
            &mut self.updates,
            check_update,
            PackageUpdate::key,
            &mut HashSet::new(),
        )?;
        check_rows(
            "windowsUpdates",
            &mut self.windows_updates,
            |f, w| check_windows_update(f, w),
            |w| w.name.clone(),
            &mut HashSet::new(),
        )
    }
}

impl InventoryDiff {
    /// As [`FullInventory::check`]; also refuses a key both upserted and removed.
    pub fn check(&mut self) -> Result<(), String> {
        if self.base_revision < 0 {
            return Err("baseRevision must not be negative".into());
        }
        if let Some(c) = &mut self.installed {
            check_package_changes("installed", c)?;
        }
        if let Some(c) = &mut self.available {
            check_package_changes("available", c)?;
        }
        if let Some(c) = &mut self.updates {
            let mut keys = HashSet::new();
            check_rows(
                "updates.upsert",
                &mut c.upsert,
                check_update,
                PackageUpdate::key,
                &mut keys,
            )?;
            check_package_keys("updates.remove", &mut c.remove, &keys)?;
        }
        if let Some(c) = &mut self.windows_updates {
            let mut keys = HashSet::new();
            check_rows(
                "windowsUpdates.upsert",
                &mut c.upsert,
                |f, w| check_windows_update(f, w),
                |w| w.name.clone(),
                &mut keys,
            )?;
            let upserted = keys;
            let mut removed = HashSet::new();
            check_rows(
                "windowsUpdates.remove",
                &mut c.remove,
                |f, k| check_name(&format!("{f}.name"), &k.name),
                |k| k.name.clone(),
                &mut removed,
            )?;
            if let Some(k) = removed.iter().find(|k| upserted.contains(*k)) {
                return Err(format!(
                    "windowsUpdates.remove: {k:?} is both upserted and removed"
                ));
            }
        }
        Ok(())
    }
}

impl InventoryUpload {
    pub fn check(&mut self) -> Result<(), String> {
        match self {
            InventoryUpload::Full(f) => f.check(),
            InventoryUpload::Diff(d) => d.check(),
        }
    }

    /// Every update the upload adds or replaces.
    pub fn upserted_updates(&self) -> &[PackageUpdate] {
        match self {
            InventoryUpload::Full(f) => &f.updates,
            InventoryUpload::Diff(d) => d.updates.as_ref().map_or(&[], |c| &c.upsert),
        }
    }

    /// Every Windows update the upload adds or replaces.
    pub fn upserted_windows_updates(&self) -> &[WindowsUpdate] {
        match self {
            InventoryUpload::Full(f) => &f.windows_updates,
            InventoryUpload::Diff(d) => d.windows_updates.as_ref().map_or(&[], |c| &c.upsert),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, arch: Option<&str>) -> Package {
        Package {
            name: name.into(),
            version: "1.0-1".into(),
            architecture: arch.map(str::to_string),
            package_type: Some("deb".into()),
            install_time: None,
        }
    }

    fn update(name: &str, cves: &[&str], advisories: &[&str]) -> PackageUpdate {
        PackageUpdate {
            name: name.into(),
            architecture: Some("amd64".into()),
            installed_version: "1.0".into(),
            available_version: "1.1".into(),
            update_type: UpdateClassification::Security,
            cves: cves.iter().map(|s| s.to_string()).collect(),
            advisories: advisories
                .iter()
                .map(|n| Advisory {
                    name: n.to_string(),
                    advisory_type: None,
                    synopsis: None,
                    issued: None,
                })
                .collect(),
            package_type: None,
        }
    }

    #[test]
    fn cve_ids() {
        for ok in ["CVE-2024-1234", "CVE-1999-0001", "CVE-2024-1234567"] {
            assert!(is_cve_id(ok), "{ok}");
        }
        for bad in [
            "CVE-24-1234",
            "cve-2024-1234",
            "CVE-2024-123",
            "CVE-2024-12a4",
            "CVE-2024",
            "CVE-2024-",
            "XCVE-2024-1234",
            "CVE-2024-1234 ",
        ] {
            assert!(!is_cve_id(bad), "{bad}");
        }
    }

    #[test]
    fn full_upload_names_the_bad_field_and_normalises() {
        let mut f = FullInventory {
            installed: vec![pkg("bash", Some("")), pkg("libc6", Some("amd64"))],
            updates: vec![update("openssl", &[], &[])],
            ..Default::default()
        };
        f.updates[0].cves = vec![
            "CVE-2024-0002".into(),
            "CVE-2024-0001".into(),
            "CVE-2024-0002".into(),
        ];
        f.check().unwrap();
        assert_eq!(f.installed[0].architecture, None);
        assert_eq!(f.updates[0].cves, ["CVE-2024-0001", "CVE-2024-0002"]);

        let mut bad = f.clone();
        bad.installed[1].version = String::new();
        assert_eq!(
            bad.check().unwrap_err(),
            "installed[1].version must not be empty"
        );
        let mut bad = f.clone();
        bad.updates[0].cves.push("CVE-2024-12".into());
        assert!(bad.check().unwrap_err().starts_with("updates[0].cves[2]"));
        let mut bad = f.clone();
        bad.installed.push(pkg("libc6", Some("amd64")));
        let e = bad.check().unwrap_err();
        assert!(
            e.starts_with("installed[2]: \"libc6\" (amd64) appears more than once"),
            "{e}"
        );
        // The same name on another architecture is another package.
        let mut ok = f.clone();
        ok.installed.push(pkg("libc6", Some("i386")));
        ok.check().unwrap();
        let mut bad = f.clone();
        bad.installed[0].name = "two words".into();
        assert!(bad.check().unwrap_err().starts_with("installed[0].name"));
        let mut bad = f.clone();
        bad.installed[0].package_type = Some("d e b".into());
        assert!(bad.check().unwrap_err().starts_with("installed[0].type"));
    }

    #[test]
    fn diff_refuses_upsert_and_remove_of_one_key() {
        let mut d = InventoryDiff {
            base_revision: 3,
            installed: Some(Changes {
                upsert: vec![pkg("vim", None)],
                remove: vec![PackageKey {
                    name: "vim".into(),
                    architecture: Some("".into()),
                }],
            }),
            ..Default::default()
        };
        let e = d.check().unwrap_err();
        assert!(e.contains("both upserted and removed"), "{e}");
        d.installed.as_mut().unwrap().remove[0].name = "nano".into();
        d.check().unwrap();
        d.base_revision = -1;
        assert!(d.check().is_err());
    }

    #[test]
    fn too_many_items() {
        let mut f = FullInventory {
            available: vec![pkg("x", None); MAX_ITEMS + 1],
            ..Default::default()
        };
        assert_eq!(
            f.check().unwrap_err(),
            format!(
                "available has {} items; at most {MAX_ITEMS} are accepted",
                MAX_ITEMS + 1
            )
        );
    }

    #[test]
    fn errata_merge_cves_over_updates() {
        let mut a = update("openssl", &["CVE-2024-0001"], &["DSA-1-1"]);
        let b = update("libssl3", &["CVE-2024-0002"], &["DSA-1-1", "DSA-2-1"]);
        a.advisories[0].synopsis = Some("openssl security update".into());
        a.advisories[0].advisory_type = Some(UpdateClassification::Bug);
        let e = reported_errata([&a, &b]);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "DSA-1-1");
        assert_eq!(e[0].advisory_type, UpdateClassification::Bug);
        assert_eq!(e[0].synopsis.as_deref(), Some("openssl security update"));
        assert_eq!(
            e[0].cves.iter().collect::<Vec<_>>(),
            ["CVE-2024-0001", "CVE-2024-0002"]
        );
        assert_eq!(e[1].advisory_type, UpdateClassification::Security);
        assert_eq!(e[1].cves.len(), 1);
    }

    #[test]
    fn wire_shape() {
        let v: PackageUpdate = serde_json::from_value(serde_json::json!({
            "name": "openssl", "installedVersion": "3.0.11-1", "availableVersion": "3.0.13-1",
            "updateType": "SECURITY", "cves": ["CVE-2024-0727"],
            "advisories": [{"name": "DSA-5678-1", "type": "SECURITY", "issued": "2024-02-01T00:00:00Z"}]
        }))
        .unwrap();
        assert_eq!(
            v.advisories[0].advisory_type,
            Some(UpdateClassification::Security)
        );
        assert!(serde_json::from_value::<PackageUpdate>(serde_json::json!({
            "name": "x", "installedVersion": "1", "availableVersion": "2", "updateType": "BUGFIX"
        }))
        .is_err());
        let d: InventoryDiff = serde_json::from_value(serde_json::json!({
            "baseRevision": 2, "installed": {"remove": [{"name": "vim"}]}
        }))
        .unwrap();
        assert_eq!(d.installed.unwrap().remove[0].name, "vim");
        assert!(d.available.is_none());
    }
}
