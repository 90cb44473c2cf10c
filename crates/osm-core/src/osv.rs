//! Security advisories in the OSV format (the schema at ossf.github.io/osv-schema), and whether
//! a package version installed on an instance is affected by one.
//!
//! osm imports OSV files so Debian and Ubuntu hosts, whose package managers do not say which
//! CVEs an update fixes, get CVEs too. Versions compare the way the distribution's package
//! manager compares them: dpkg rules for Debian and Ubuntu, rpm rules for the RPM family.

use std::borrow::Cow;
use std::cmp::Ordering;

use jiff::Timestamp;
use serde::Deserialize;

use crate::enums::UpdateClassification;

/// One advisory (an OSV record).
#[derive(Debug, Clone, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub upstream: Vec<String>,
    pub summary: Option<String>,
    pub details: Option<String>,
    pub published: Option<Timestamp>,
    pub modified: Timestamp,
    pub withdrawn: Option<Timestamp>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    pub references: Vec<Reference>,
    /// CVSS and similar scores; a scored record is a security advisory.
    #[serde(default)]
    pub severity: Vec<Severity>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    pub package: Package,
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Versions listed one by one as affected.
    #[serde(default)]
    pub versions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    /// E.g. `Debian:12`, `Ubuntu:22.04`, `AlmaLinux:9`.
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`; only `ECOSYSTEM` ranges apply to distribution packages.
    #[serde(rename = "type")]
    pub kind: String,
    pub events: Vec<RangeEvent>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RangeEvent {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

/// How a distribution orders its package versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionScheme {
    Dpkg,
    Rpm,
}

impl VersionScheme {
    /// The scheme of an OSV ecosystem (`Debian:12` → dpkg), if osm knows it.
    pub fn of_ecosystem(ecosystem: &str) -> Option<Self> {
        let family = ecosystem.split(':').next().unwrap_or_default();
        match family {
            "Debian" | "Ubuntu" => Some(VersionScheme::Dpkg),
            "AlmaLinux" | "Rocky Linux" | "Red Hat" | "Oracle Linux" | "openSUSE" | "SUSE"
            | "Mageia" | "openEuler" => Some(VersionScheme::Rpm),
            _ => None,
        }
    }

    /// Whether `version` is well formed under this scheme.
    pub fn is_valid(self, version: &str) -> bool {
        match self {
            VersionScheme::Dpkg => version.parse::<debversion::Version>().is_ok(),
            VersionScheme::Rpm => {
                !version.is_empty()
                    && version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._+~^:-".contains(c))
            }
        }
    }

    /// Orders two versions as the package manager does; `None` if one is malformed.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            VersionScheme::Dpkg => {
                let a: debversion::Version = a.parse().ok()?;
                let b: debversion::Version = b.parse().ok()?;
                Some(a.cmp(&b))
            }
            VersionScheme::Rpm => {
                if !self.is_valid(a) || !self.is_valid(b) {
                    return None;
                }
                Some(rpm_version::Evr::parse(a).cmp(&rpm_version::Evr::parse(b)))
            }
        }
    }
}

/// One step of the path to a field of a record: `affected[0].ranges[1]` is
/// `[Key("affected"), Index(0), Key("ranges"), Index(1)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(Cow<'static, str>),
    Index(usize),
}

impl Seg {
    /// A field of a record osm names itself.
    pub const fn key(name: &'static str) -> Seg {
        Seg::Key(Cow::Borrowed(name))
    }
}

/// A record field that breaks a rule, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: Vec<Seg>,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", path_text(&self.path))?;
        }
        f.write_str(&self.message)
    }
}

/// `affected[0].ranges[1]`.
pub fn path_text(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Why an OSV document was refused: the line and column (1-based) in its text and what is
/// wrong (naming the field when the JSON is well formed but a value breaks a rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position.map(|(l, c)| format!("line {l}, column {c}: ")).unwrap_or_default())]
pub struct OsvError {
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl OsvError {
    /// `FILE:LINE:COLUMN: what` (as compilers print it), for a document read from `file`.
    pub fn in_file(&self, file: &str) -> String {
        match self.position {
            Some((l, c)) => format!("{file}:{l}:{c}: {}", self.message),
            None => format!("{file}: {}", self.message),
        }
    }
}

/// Longest advisory id accepted (it becomes the erratum's name).
pub const MAX_ID_LEN: usize = 255;
/// Most `affected` entries, aliases or references in one record.
pub const MAX_LIST: usize = 10_000;

/// Parses and checks one OSV document (see [`Advisory::check`]); an error names its line and
/// column, also for a well-formed document whose field breaks a rule.
pub fn parse(text: &str) -> Result<Advisory, OsvError> {
    parse_document(text).map(|(advisory, _)| advisory)
}

/// [`parse`], also answering the document as JSON. The text is read once, into a JSON value,
/// and the advisory taken from that value: whatever the JSON reader refuses (broken syntax, a
/// number out of range in a field osm ignores…) is refused here with its position, and a
/// document accepted here is always a JSON value.
pub fn parse_document(text: &str) -> Result<(Advisory, serde_json::Value), OsvError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| OsvError {
        position: Some((e.line().max(1), e.column().max(1))),
        message: without_position(&e.to_string()),
    })?;
    let advisory = from_value(&value).map_err(|e| OsvError {
        position: Some(
            locate(text, &steps_of(&e.path))
                .map(|at| line_column(text, at))
                .unwrap_or((1, 1)),
        ),
        message: e.to_string(),
    })?;
    Ok((advisory, value))
}

/// Reads and checks one OSV record given as a JSON value (see [`Advisory::check`]); an error
/// names the field (`affected[0].package: missing field `name``).
pub fn from_value(value: &serde_json::Value) -> Result<Advisory, FieldError> {
    let advisory: Advisory = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone().into())),
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        FieldError {
            path,
            message: without_position(&e.into_inner().to_string()),
        }
    })?;
    advisory.check()?;
    Ok(advisory)
}

/// serde_json's message without its trailing " at line L column C" (the position is given
/// apart).
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_string(),
        _ => message.to_string(),
    }
}

/// One step into a JSON document.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps_of(path: &[Seg]) -> Vec<Step<'_>> {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => Step::Key(k.as_ref()),
            Seg::Index(i) => Step::Index(*i),
        })
        .collect()
}

impl Advisory {
    /// The rules osm holds a record to: a usable id (it becomes an erratum name: no spaces or
    /// control characters, at most [`MAX_ID_LEN`] characters), an `id`, `aliases` and `upstream`
    /// entry that starts with `CVE-` a real CVE id (`CVE-YYYY-NNNN…`, what [`Advisory::cves`] takes),
    /// and, for every affected package of an ecosystem osm knows, a package name and versions
    /// well formed for that ecosystem (`0` may open a range).
    pub fn check(&self) -> Result<(), FieldError> {
        let at = |path: Vec<Seg>, message: String| FieldError { path, message };
        let id = self.id.as_str();
        if id.trim().is_empty() {
            return Err(at(
                vec![Seg::key("id")],
                "the advisory has an empty id".into(),
            ));
        }
        if id.chars().count() > MAX_ID_LEN {
            return Err(at(
                vec![Seg::key("id")],
                format!("the id is longer than {MAX_ID_LEN} characters"),
            ));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(at(
                vec![Seg::key("id")],
                format!("{id:?} is not an advisory id (no spaces or control characters)"),
            ));
        }
        for (name, len) in [
            ("affected", self.affected.len()),
            ("references", self.references.len()),
        ] {
            if len > MAX_LIST {
                return Err(at(
                    vec![Seg::key(name)],
                    format!("{len} entries; at most {MAX_LIST} are accepted"),
                ));
            }
        }
        if looks_like_cve(id) && !crate::inventory::is_cve_id(id) {
            return Err(at(vec![Seg::key("id")], not_a_cve(id)));
        }
        for (field, list) in [("aliases", &self.aliases), ("upstream", &self.upstream)] {
            if list.len() > MAX_LIST {
                return Err(at(
                    vec![Seg::key(field)],
                    format!("{} entries; at most {MAX_LIST} are accepted", list.len()),
                ));
            }
            for (i, other) in list.iter().enumerate() {
                if looks_like_cve(other) && !crate::inventory::is_cve_id(other) {
                    return Err(at(vec![Seg::key(field), Seg::Index(i)], not_a_cve(other)));
                }
            }
        }
        for (a, affected) in self.affected.iter().enumerate() {
            let Some(scheme) = VersionScheme::of_ecosystem(&affected.package.ecosystem) else {
                continue;
            };
            let here = |rest: &[Seg]| {
                let mut p = vec![Seg::key("affected"), Seg::Index(a)];
                p.extend_from_slice(rest);
                p
            };
            let name = &affected.package.name;
            if let Err(e) = crate::validate::check_package_name("name", name) {
                let message = if name.is_empty() {
                    "the package name is empty".to_string()
                } else {
                    e.trim_start_matches("name: ").to_string()
                };
                return Err(at(here(&[Seg::key("package"), Seg::key("name")]), message));
            }
            let bad = |path: Vec<Seg>, v: &str| {
                at(
                    path,
                    format!(
                        "{v:?} is not a valid {} version",
                        affected.package.ecosystem
                    ),
                )
            };
            for (v, version) in affected.versions.iter().enumerate() {
                if !scheme.is_valid(version) {
                    return Err(bad(here(&[Seg::key("versions"), Seg::Index(v)]), version));
                }
            }
            for (r, range) in affected.ranges.iter().enumerate() {
                for (e, event) in range.events.iter().enumerate() {
                    let version = event.version();
                    let introduced_zero = matches!(event, RangeEvent::Introduced(v) if v == "0");
                    if range.kind == "ECOSYSTEM" && !introduced_zero && !scheme.is_valid(version) {
                        return Err(bad(
                            here(&[
                                Seg::key("ranges"),
                                Seg::Index(r),
                                Seg::key("events"),
                                Seg::Index(e),
                            ]),
                            version,
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether an id a record gives is meant as a CVE id (`CVE-…`, in any case): it must then be
/// one. One rule for `id`, `aliases` and `upstream`, so what [`Advisory::cves`] takes and what
/// [`Advisory::check`] refuses never disagree.
fn looks_like_cve(id: &str) -> bool {
    id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CVE-"))
}

fn not_a_cve(id: &str) -> String {
    format!(
        "{id:?} is not a CVE id such as CVE-2024-1234 (CVE-, a four-digit year, -, four or more digits)"
    )
}

/// 1-based line and column of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The byte offset where the value at `path` starts in the (well-formed) JSON `text`.
fn locate(text: &str, path: &[Step]) -> Option<usize> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.find(path)
}

/// Just enough of a JSON reader to walk a well-formed document to a value.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// At the value `path` leads to, its offset.
    fn find(&mut self, path: &[Step]) -> Option<usize> {
        self.ws();
        let Some((first, rest)) = path.split_first() else {
            return Some(self.i);
        };
        match (self.peek()?, first) {
            (b'{', Step::Key(want)) => {
                self.i += 1;
                loop {
                    self.ws();
                    if self.peek()? == b'}' {
                        return None;
                    }
                    let key = self.string()?;
                    self.ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.i += 1;
                    if key == want.as_bytes() {
                        return self.find(rest);
                    }
                    self.skip()?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        _ => return None,
                    }
                }
            }
            (b'[', Step::Index(want)) => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.ws();
                    if self.peek()? == b']' {
                        return None;
                    }
                    if n == *want {
                        return self.find(rest);
                    }
                    self.skip()?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        _ => return None,
                    }
                    n += 1;
                }
            }
            _ => None,
        }
    }

    /// The raw bytes of a string (between its quotes), leaving the cursor after it.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(&self.b[start..self.i - 1]);
                }
                _ => self.i += 1,
            }
        }
        None
    }

    /// Skips one value.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    if self.peek()? == close {
                        self.i += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.i += 1; // ':'
                    }
                    self.skip()?;
                    self.ws();
                    if self.peek()? == b',' {
                        self.i += 1;
                    }
                }
            }
            _ => {
                while self.i < self.b.len() && !b",}] \t\r\n".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                Some(())
            }
        }
    }
}

impl RangeEvent {
    fn version(&self) -> &str {
        match self {
            RangeEvent::Introduced(v)
            | RangeEvent::Fixed(v)
            | RangeEvent::LastAffected(v)
            | RangeEvent::Limit(v) => v,
        }
    }
}

/// An installed package an advisory applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The version that fixes it, when the advisory names one.
    pub fixed_version: Option<String>,
}

impl Advisory {
    /// The CVE ids this advisory is about, sorted and without repeats.
    pub fn cves(&self) -> Vec<String> {
        let mut cves: Vec<String> = std::iter::once(&self.id)
            .chain(&self.aliases)
            .chain(&self.upstream)
            .filter(|id| crate::inventory::is_cve_id(id))
            .cloned()
            .collect();
        cves.sort();
        cves.dedup();
        cves
    }

    /// Whether `installed` of package `name` on an instance of `ecosystem` (e.g. `Debian:12`,
    /// see [`crate::ecosystem`]) is affected. An advisory for the bare family (`Debian`)
    /// applies to every release. A withdrawn advisory affects nothing.
    pub fn affects(&self, ecosystem: &str, name: &str, installed: &str) -> Option<Finding> {
        if self.withdrawn.is_some() {
            return None;
        }
        let scheme = VersionScheme::of_ecosystem(ecosystem)?;
        if !scheme.is_valid(installed) {
            return None;
        }
        self.affected
            .iter()
            .filter(|a| {
                a.package.name == name && crate::ecosystem::applies(&a.package.ecosystem, ecosystem)
            })
            .find_map(|a| {
                if a.versions.iter().any(|v| v == installed) {
                    return Some(Finding {
                        fixed_version: None,
                    });
                }
                a.ranges
                    .iter()
                    .filter(|r| r.kind == "ECOSYSTEM")
                    .find_map(|r| range_affects(scheme, &r.events, installed))
            })
    }

    /// Whether updating package `name` from `installed` to `available` on an instance of
    /// `ecosystem` fixes this advisory: `installed` is affected and `available` (well formed)
    /// is not.
    pub fn fixed_by(&self, ecosystem: &str, name: &str, installed: &str, available: &str) -> bool {
        let Some(scheme) = VersionScheme::of_ecosystem(ecosystem) else {
            return false;
        };
        scheme.is_valid(available)
            && self.affects(ecosystem, name, installed).is_some()
            && self.affects(ecosystem, name, available).is_none()
    }

    /// What kind of advisory this is. OSV records are vulnerability records, so one with a CVE
    /// alias or a severity score, or from a security advisory series (`DSA-`, `DLA-`, `USN-`,
    /// `RHSA-`, `ALSA-`, `RLSA-`, `ELSA-`, `DEBIAN-`, `UBUNTU-`, `GHSA-`…) is `SECURITY`; the
    /// bug-fix and enhancement series of the RPM distributions (`RHBA-`, `ALBA-`, `RHEA-`…)
    /// are `BUG` and `ENHANCEMENT`; anything else is `OTHER`.
    pub fn classification(&self) -> UpdateClassification {
        let id = self.id.to_ascii_uppercase();
        let series = id.split(['-', ':']).next().unwrap_or_default();
        if !self.cves().is_empty() || !self.severity.is_empty() {
            return UpdateClassification::Security;
        }
        match series {
            "DSA" | "DLA" | "DTSA" | "USN" | "LSN" | "RHSA" | "ALSA" | "RLSA" | "ELSA"
            | "DEBIAN" | "UBUNTU" | "GHSA" | "CVE" | "OSV" | "SUSE" | "OPENSUSE" | "MGASA" => {
                UpdateClassification::Security
            }
            "RHBA" | "ALBA" | "RLBA" | "ELBA" => UpdateClassification::Bug,
            "RHEA" | "ALEA" | "RLEA" | "ELEA" => UpdateClassification::Enhancement,
            _ => UpdateClassification::Other,
        }
    }

    /// The versions that fix the advisory, per affected package of an ecosystem osm knows:
    /// `(ecosystem, package name, fixed version)`, sorted and without repeats.
    pub fn fixes(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = self
            .affected
            .iter()
            .filter(|a| VersionScheme::of_ecosystem(&a.package.ecosystem).is_some())
            .flat_map(|a| {
                a.ranges
                    .iter()
                    .filter(|r| r.kind == "ECOSYSTEM")
                    .flat_map(|r| &r.events)
                    .filter_map(move |e| match e {
                        RangeEvent::Fixed(v) => Some((
                            a.package.ecosystem.clone(),
                            a.package.name.clone(),
                            v.clone(),
                        )),
                        _ => None,
                    })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The package names of the record's affected entries in ecosystems osm knows, sorted
    /// and without repeats (what the store indexes records by).
    pub fn package_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .affected
            .iter()
            .filter(|a| VersionScheme::of_ecosystem(&a.package.ecosystem).is_some())
            .map(|a| a.package.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Walks a range's events in version order: the state at `installed` is set by the last event
/// at or below it; the first `fixed` above it is the fix.
fn range_affects(scheme: VersionScheme, events: &[RangeEvent], installed: &str) -> Option<Finding> {
    let cmp = |v: &str| -> Option<Ordering> {
        if v == "0" {
            Some(Ordering::Less)
        } else {
            scheme.compare(v, installed)
        }
    };
    let mut affected = false;
    let mut fixed_version = None;
    let mut sorted: Vec<&RangeEvent> = events.iter().collect();
    sorted.sort_by(|a, b| match (a.version(), b.version()) {
        ("0", "0") => Ordering::Equal,
        ("0", _) => Ordering::Less,
        (_, "0") => Ordering::Greater,
        (x, y) => scheme.compare(x, y).unwrap_or(Ordering::Equal),
    });
    for event in sorted {
        let order = cmp(event.version())?;
        match event {
            RangeEvent::Introduced(_) if order != Ordering::Greater => {
                affected = true;
                fixed_version = None;
            }
            RangeEvent::Fixed(_) if order != Ordering::Greater => affected = false,
            RangeEvent::Fixed(v) if affected && fixed_version.is_none() => {
                fixed_version = Some(v.clone())
            }
            RangeEvent::LastAffected(_) if order == Ordering::Less => affected = false,
            _ => {}
        }
    }
    affected.then_some(Finding { fixed_version })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSA: &str = r#"{
      "id": "DSA-5678-1",
      "aliases": ["CVE-2024-0002", "CVE-2024-0001"],
      "summary": "openssl security update",
      "modified": "2024-03-01T00:00:00Z",
      "published": "2024-02-28T00:00:00Z",
      "affected": [
        {"package": {"ecosystem": "Debian:12", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]},
        {"package": {"ecosystem": "Debian:11", "name": "openssl"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1w-0+deb11u1"}]}]}
      ]
    }"#;

    #[test]
    fn debian_versions_order_as_dpkg_does() {
        let dpkg = VersionScheme::Dpkg;
        assert_eq!(dpkg.compare("1.0~rc1", "1.0"), Some(Ordering::Less));
        assert_eq!(dpkg.compare("1:0.9", "2.0"), Some(Ordering::Greater));
        assert_eq!(
            dpkg.compare("3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
            Some(Ordering::Less)
        );
        assert_eq!(dpkg.compare("1.0", "not a version!"), None);
    }

    #[test]
    fn rpm_versions_order_as_rpm_does() {
        let rpm = VersionScheme::Rpm;
        assert_eq!(rpm.compare("1.0-1.el9", "1.0-2.el9"), Some(Ordering::Less));
        assert_eq!(rpm.compare("1:1.0-1", "2.0-1"), Some(Ordering::Greater));
        assert_eq!(rpm.compare("1.0~beta-1", "1.0-1"), Some(Ordering::Less));
        assert_eq!(rpm.compare("1.0 1", "1.0"), None);
    }

    #[test]
    fn an_installed_version_below_the_fix_is_affected() {
        let a = parse(DSA).unwrap();
        assert_eq!(a.cves(), ["CVE-2024-0001", "CVE-2024-0002"]);
        assert_eq!(
            a.affects("Debian:12", "openssl", "3.0.11-1~deb12u1"),
            Some(Finding {
                fixed_version: Some("3.0.11-1~deb12u2".into())
            })
        );
        assert_eq!(a.affects("Debian:12", "openssl", "3.0.11-1~deb12u2"), None);
        assert_eq!(a.affects("Debian:12", "openssl", "3.0.13-1~deb12u1"), None);
        assert_eq!(a.affects("Debian:12", "libssl3", "3.0.11-1~deb12u1"), None);
        assert_eq!(
            a.affects("Debian:11", "openssl", "1.1.1n-0+deb11u5"),
            Some(Finding {
                fixed_version: Some("1.1.1w-0+deb11u1".into())
            })
        );
        assert_eq!(a.affects("Ubuntu:22.04", "openssl", "3.0.2-0ubuntu1"), None);
    }

    #[test]
    fn introduced_last_affected_and_listed_versions() {
        let a = parse(
            r#"{"id": "ALSA-2024:1", "modified": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "AlmaLinux:9", "name": "curl"},
                  "versions": ["7.61.0-1.el9"],
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "7.76.0-1.el9"}, {"last_affected": "7.76.1-26.el9"}]}]}]}"#,
        )
        .unwrap();
        assert!(a.cves().is_empty());
        assert_eq!(a.affects("AlmaLinux:9", "curl", "7.70.0-1.el9"), None);
        assert!(a.affects("AlmaLinux:9", "curl", "7.76.0-1.el9").is_some());
        assert!(a.affects("AlmaLinux:9", "curl", "7.76.1-26.el9").is_some());
        assert_eq!(a.affects("AlmaLinux:9", "curl", "7.76.1-27.el9"), None);
        assert_eq!(
            a.affects("AlmaLinux:9", "curl", "7.61.0-1.el9"),
            Some(Finding {
                fixed_version: None
            })
        );
    }

    #[test]
    fn a_range_fixed_then_reintroduced() {
        let a = parse(
            r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "Debian", "name": "zlib"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [
                     {"introduced": "1.0-1"}, {"fixed": "1.1-1"}, {"introduced": "1.3-1"}, {"fixed": "1.4-1"}]}]}]}"#,
        )
        .unwrap();
        assert!(a.affects("Debian:12", "zlib", "1.0-2").is_some());
        assert_eq!(a.affects("Debian:12", "zlib", "1.2-1"), None);
        assert_eq!(
            a.affects("Debian:12", "zlib", "1.3-5"),
            Some(Finding {
                fixed_version: Some("1.4-1".into())
            })
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_a_position() {
        let e = parse("{\"id\": \"X\",\n \"modified\": 12}").unwrap_err();
        assert_eq!(e.position, Some((2, 14)), "{e}");
        assert!(e.message.starts_with("modified: invalid type"), "{e}");
        assert!(!e.message.contains("at line"), "{e}");
        let e = parse("{\"id\": \"X\",\n \"modified\": \"2024-01-01T00:00:00Z\"} trailing")
            .unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
        let e = parse(
            "{\"id\": \"X\",\n \"affected\": [{\"package\": {\"ecosystem\": \"Debian:12\"}}]}",
        )
        .unwrap_err();
        assert!(e.message.contains("name"), "{e}");
        let e = parse(r#"{"id": "X", "modified": "yesterday"}"#).unwrap_err();
        assert!(e.position.is_some(), "{e}");
        let e = parse(
            r#"{"id": "X", "modified": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "Debian:12", "name": "zlib"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2 beta"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("affected[0].ranges[0].events[1]: \"1.2 beta\""),
            "{e}"
        );
        assert!(parse(r#"{"id": " ", "modified": "2024-01-01T00:00:00Z"}"#).is_err());
    }

    #[test]
    fn a_bad_field_is_named_at_its_line_and_column() {
        let text = "{\n  \"id\": \"DSA-1-1\",\n  \"modified\": \"2024-01-01T00:00:00Z\",\n  \"affected\": [\n    {\"package\": {\"ecosystem\": \"Debian:12\", \"name\": \"zlib\"},\n     \"ranges\": [{\"type\": \"ECOSYSTEM\", \"events\": [{\"introduced\": \"0\"},\n       {\"fixed\": \"1.2 beta\"}]}]}\n  ]\n}\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.position, Some((7, 8)), "{e}");
        assert_eq!(
            e.in_file("a.json"),
            "a.json:7:8: affected[0].ranges[0].events[1]: \"1.2 beta\" is not a valid Debian:12 version"
        );
        // A record whose package name is missing is named too, and so is a bad id.
        let e = parse(r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": ""}}]}"#).unwrap_err();
        assert!(e.message.starts_with("affected[0].package.name: "), "{e}");
        assert_eq!(e.position, Some((1, 111)), "{e}");
        let e =
            parse("{\"modified\": \"2024-01-01T00:00:00Z\",\n \"id\": \"two words\"}").unwrap_err();
        assert_eq!(e.position, Some((2, 8)), "{e}");
        let e =
            parse(r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-24-1"]}"#)
                .unwrap_err();
        assert!(e.message.starts_with("aliases[0]: "), "{e}");
        // Escaped strings and nested values before the field do not throw the position off.
        let e = parse("{\"details\": \"a \\\"quoted\\\" [x] {y}\", \"references\": [{\"type\": \"WEB\", \"url\": \"u\"}],\n\"modified\": \"2024-01-01T00:00:00Z\", \"id\": \"\"}").unwrap_err();
        assert_eq!(e.position, Some((2, 43)), "{e}");
    }

    #[test]
    fn what_the_json_reader_refuses_anywhere_is_refused_with_its_position() {
        // serde_json skips an ignored field without reading its number, but a JSON value
        // cannot hold 1e400: the document is refused, not accepted and then lost.
        let text = "{\"id\": \"X-1\", \"modified\": \"2024-01-01T00:00:00Z\",\n \"database_specific\": {\"score\": 1e400}}";
        let e = parse(text).unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
        assert!(e.message.contains("number out of range"), "{e}");
        assert!(parse_document(text).is_err());
        // Accepted documents come back as the JSON they are.
        let (a, v) = parse_document(DSA).unwrap();
        assert_eq!(a.id, "DSA-5678-1");
        assert_eq!(v["aliases"][1], "CVE-2024-0001");
        // The same record as a JSON value, with errors named by field.
        assert_eq!(from_value(&v).unwrap().id, "DSA-5678-1");
        let mut bad = v.clone();
        bad["affected"][0]["package"] = serde_json::json!({"ecosystem": "Debian:12"});
        let e = from_value(&bad).unwrap_err();
        assert_eq!(e.to_string(), "affected[0].package: missing field `name`");
    }

    #[test]
    fn cve_ids_follow_one_rule_in_id_aliases_and_upstream() {
        let with = |id: &str, aliases: &str, upstream: &str| {
            parse(&format!(
                r#"{{"id": "{id}", "modified": "2024-01-01T00:00:00Z", "aliases": {aliases}, "upstream": {upstream}}}"#
            ))
        };
        let a = with(
            "CVE-2024-1000",
            r#"["GHSA-abcd-efgh-ijkl", "CVE-2024-0002"]"#,
            r#"["DEBIAN-CVE-2024-7777", "CVE-2024-0003", "CVE-2024-0002"]"#,
        )
        .unwrap();
        assert_eq!(
            a.cves(),
            ["CVE-2024-0002", "CVE-2024-0003", "CVE-2024-1000"]
        );
        for (id, aliases, upstream, field) in [
            ("CVE-24-1", "[]", "[]", "id: "),
            ("X-1", r#"["CVE-2024-12"]"#, "[]", "aliases[0]: "),
            (
                "X-1",
                "[]",
                r#"["CVE-2024-0001", "CVE-2024"]"#,
                "upstream[1]: ",
            ),
            ("X-1", r#"["cve-2024-1234"]"#, "[]", "aliases[0]: "),
        ] {
            let e = with(id, aliases, upstream).unwrap_err();
            assert!(e.message.starts_with(field), "{field}: {e}");
            assert!(e.message.contains("is not a CVE id"), "{e}");
        }
    }

    #[test]
    fn withdrawn_advisories_affect_nothing() {
        let text = DSA.replacen(
            "\"summary\"",
            "\"withdrawn\": \"2024-04-01T00:00:00Z\", \"summary\"",
            1,
        );
        let a = parse(&text).unwrap();
        assert_eq!(a.affects("Debian:12", "openssl", "3.0.11-1~deb12u1"), None);
    }
}
