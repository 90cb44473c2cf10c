//! Security advisories in the OSV format (the schema at ossf.github.io/osv-schema), and whether
//! a package version installed on an instance is affected by one.
//!
//! osm imports OSV files so Debian and Ubuntu hosts, whose package managers do not say which
//! CVEs an update fixes, get CVEs too. Versions compare the way the distribution's package
//! manager compares them: dpkg rules for Debian and Ubuntu, rpm rules for the RPM family.

use std::cmp::Ordering;

use jiff::Timestamp;
use serde::Deserialize;

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

/// Why an OSV document was refused; `line` and `column` point into the file when the JSON
/// itself is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position.map(|(l, c)| format!("line {l}, column {c}: ")).unwrap_or_default())]
pub struct OsvError {
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl OsvError {
    fn at(message: String) -> Self {
        OsvError {
            position: None,
            message,
        }
    }
}

/// Parses and checks one OSV document: valid JSON of the schema, an id, and every version in
/// an ecosystem osm knows well formed for that ecosystem.
pub fn parse(text: &str) -> Result<Advisory, OsvError> {
    let advisory: Advisory = serde_json::from_str(text).map_err(|e| OsvError {
        position: Some((e.line(), e.column())),
        message: e.to_string(),
    })?;
    if advisory.id.trim().is_empty() {
        return Err(OsvError::at("the advisory has an empty id".into()));
    }
    for (a, affected) in advisory.affected.iter().enumerate() {
        let Some(scheme) = VersionScheme::of_ecosystem(&affected.package.ecosystem) else {
            continue;
        };
        if affected.package.name.trim().is_empty() {
            return Err(OsvError::at(format!("affected[{a}].package.name is empty")));
        }
        let bad = |field: String, v: &str| {
            OsvError::at(format!(
                "{field}: {v:?} is not a valid {} version",
                affected.package.ecosystem
            ))
        };
        for (v, version) in affected.versions.iter().enumerate() {
            if !scheme.is_valid(version) {
                return Err(bad(format!("affected[{a}].versions[{v}]"), version));
            }
        }
        for (r, range) in affected.ranges.iter().enumerate() {
            for (e, event) in range.events.iter().enumerate() {
                let version = event.version();
                let introduced_zero = matches!(event, RangeEvent::Introduced(v) if v == "0");
                if range.kind == "ECOSYSTEM" && !introduced_zero && !scheme.is_valid(version) {
                    return Err(bad(
                        format!("affected[{a}].ranges[{r}].events[{e}]"),
                        version,
                    ));
                }
            }
        }
    }
    Ok(advisory)
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
            .filter(|id| id.starts_with("CVE-"))
            .cloned()
            .collect();
        cves.sort();
        cves.dedup();
        cves
    }

    /// Whether `installed` of package `name` on an instance of `ecosystem` (e.g. `Debian:12`)
    /// is affected. An advisory for the bare family (`Debian`) applies to every release.
    pub fn affects(&self, ecosystem: &str, name: &str, installed: &str) -> Option<Finding> {
        if self.withdrawn.is_some() {
            return None;
        }
        let scheme = VersionScheme::of_ecosystem(ecosystem)?;
        let family = ecosystem.split(':').next().unwrap_or_default();
        self.affected
            .iter()
            .filter(|a| {
                a.package.name == name
                    && (a.package.ecosystem == ecosystem || a.package.ecosystem == family)
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
        assert_eq!(e.position.map(|p| p.0), Some(2));
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
