//! The compliance report: which instances miss updates (security updates by default), how many
//! and which, the CVEs those updates fix, and how old each instance's inventory is.
//!
//! The store reads everything in a few set-based queries ([`ComplianceRows`]); this module
//! shapes it: the severity and CVE filters, per-instance figures, the order of the rows and
//! the summary. It never reads a clock: the report's time is passed in.
//!
//! **Severity.** osm stores no CVSS score or vendor severity, only the classification agents
//! report for each update. The report's severity is that classification, ranked
//! `SECURITY` > `BUG` > `ENHANCEMENT` > `OTHER`: a report at severity `BUG` counts security and
//! bug-fix updates as missing, one at `SECURITY` (the default) only security updates.

use std::collections::{BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};

use crate::UpdateCounts;
use crate::enums::{OsFamily, UpdateClassification};

/// Most CVEs one report may filter on.
pub const MAX_CVE_FILTER: usize = 100;

/// The rank of a classification as a severity (higher is more severe).
pub fn rank(c: UpdateClassification) -> u8 {
    match c {
        UpdateClassification::Security => 3,
        UpdateClassification::Bug => 2,
        UpdateClassification::Enhancement => 1,
        UpdateClassification::Other => 0,
    }
}

/// The classifications a report at `severity` counts as missing, most severe first.
pub fn classes_at_or_above(severity: UpdateClassification) -> Vec<UpdateClassification> {
    let mut classes: Vec<UpdateClassification> = UpdateClassification::ALL
        .iter()
        .copied()
        .filter(|c| rank(*c) >= rank(severity))
        .collect();
    classes.sort_by_key(|c| std::cmp::Reverse(rank(*c)));
    classes
}

/// A CVE id as the filter takes it: any case and surrounding spaces, then the grammar of
/// [`crate::inventory::is_cve_id`] (the one agents' and errata feeds' ids are checked against);
/// returned in upper case, the form agents report. osmd's `cve=` parameter and osmctl's `--cve`
/// both check with this function.
pub fn check_cve(text: &str) -> Result<String, String> {
    let upper = text.trim().to_ascii_uppercase();
    if crate::inventory::is_cve_id(&upper) {
        Ok(upper)
    } else {
        Err(format!(
            "{text:?} is not a CVE id; give one like CVE-2024-3094"
        ))
    }
}

/// An instance in the report's scope, with its pending updates counted by classification
/// (packages and Windows updates not installed), as the store holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    pub os_family: OsFamily,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub last_checkin: Option<Timestamp>,
    /// When its agent last uploaded an inventory; `None` when it never did.
    pub inventory_reported: Option<Timestamp>,
    pub pending: UpdateCounts,
}

/// Where a pending update comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpdateSource {
    Package,
    Windows,
}

/// A pending update of one of the classifications the report counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    pub instance_id: String,
    pub source: UpdateSource,
    /// The package name, or the Windows update's title.
    pub display_name: String,
    /// The package name, or the Windows update's id.
    pub name: String,
    pub architecture: Option<String>,
    pub installed_version: Option<String>,
    pub available_version: Option<String>,
    pub update_type: UpdateClassification,
    pub cves: Vec<String>,
    /// Advisory names (`DSA-5678-1`, `ELSA-2024-1234`).
    pub advisories: Vec<String>,
}

/// What the store reads for a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComplianceRows {
    pub instances: Vec<InstanceRow>,
    /// Pending updates of the counted classifications, of any instance in `instances`.
    pub updates: Vec<PendingUpdate>,
}

/// What a report counts and shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceFilter {
    /// The least severe classification counted as missing.
    pub severity: UpdateClassification,
    /// Only updates that fix at least one of these (upper case); empty: every update.
    pub cves: BTreeSet<String>,
    /// List each instance's missing updates.
    pub details: bool,
}

impl Default for ComplianceFilter {
    fn default() -> Self {
        ComplianceFilter {
            severity: UpdateClassification::Security,
            cves: BTreeSet::new(),
            details: false,
        }
    }
}

impl ComplianceFilter {
    /// Whether an update is one the report counts as missing.
    pub fn counts(&self, u: &PendingUpdate) -> bool {
        rank(u.update_type) >= rank(self.severity)
            && (self.cves.is_empty() || u.cves.iter().any(|c| self.cves.contains(c)))
    }
}

/// Which instances a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportScope {
    /// The instances of a compartment, or of it and every compartment below it.
    Compartment {
        id: String,
        in_subtree: bool,
        /// How many compartments that is.
        compartments: usize,
    },
    /// The members of a managed instance group.
    Group { id: String, display_name: String },
    /// No scope asked for, from a caller who may not read the tenancy: every compartment it
    /// may read, which are the subtrees of `roots` (sorted).
    Granted {
        roots: Vec<String>,
        /// How many compartments that is.
        compartments: usize,
    },
}

/// One instance as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCompliance {
    pub instance: InstanceRow,
    /// `now` − the last inventory upload.
    pub inventory_age: Option<SignedDuration>,
    /// Pending updates the filter counts.
    pub missing: usize,
    /// Of which security updates.
    pub missing_security: usize,
    /// Distinct CVEs those updates fix, sorted.
    pub cves: Vec<String>,
    /// Those updates, most severe first then by name (empty unless `details`).
    pub updates: Vec<PendingUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceSummary {
    pub instances_scanned: usize,
    /// Instances with at least one missing update.
    pub instances_missing: usize,
    /// Instances whose agent never uploaded an inventory (nothing is known of their updates).
    pub instances_without_inventory: usize,
    pub updates_missing: usize,
    pub security_updates_missing: usize,
    /// Distinct CVEs the missing updates fix.
    pub distinct_cves: usize,
    /// The oldest last inventory upload among the instances that have one.
    pub oldest_inventory: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceReport {
    pub generated: Timestamp,
    pub scope: ReportScope,
    pub filter: ComplianceFilter,
    pub summary: ComplianceSummary,
    /// Every instance in scope: those missing the most updates first, then by name and id.
    pub instances: Vec<InstanceCompliance>,
}

/// Most missing updates a report lists with details, unless the server is configured
/// otherwise: about 100 MB of server memory at the size of a typical update. Counting has no
/// limit (a report without details keeps no update, only each instance's figures and CVEs).
pub const MAX_DETAIL_UPDATES: usize = 100_000;

/// A report with details would list more missing updates than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the report would list more than {limit} missing updates")]
pub struct TooManyDetails {
    pub limit: usize,
}

/// Builds a report from what the store reads batch by batch, keeping only what the report
/// shows: each instance's figures and CVEs, and its missing updates with details (at most
/// `max_details` of them over the report).
#[derive(Debug)]
pub struct ReportBuilder {
    filter: ComplianceFilter,
    max_details: usize,
    details: usize,
    instances: Vec<InstanceCompliance>,
    cves: Vec<BTreeSet<String>>,
    index: HashMap<String, usize>,
}

impl ReportBuilder {
    pub fn new(filter: &ComplianceFilter, max_details: usize) -> Self {
        ReportBuilder {
            filter: filter.clone(),
            max_details,
            details: 0,
            instances: vec![],
            cves: vec![],
            index: HashMap::new(),
        }
    }

    /// Instances in scope (an instance given twice is counted once).
    pub fn add_instances(&mut self, rows: Vec<InstanceRow>) {
        for instance in rows {
            if self.index.contains_key(&instance.id) {
                continue;
            }
            self.index.insert(instance.id.clone(), self.instances.len());
            self.instances.push(InstanceCompliance {
                instance,
                inventory_age: None,
                missing: 0,
                missing_security: 0,
                cves: vec![],
                updates: vec![],
            });
            self.cves.push(BTreeSet::new());
        }
    }

    /// Pending updates of instances added before (those of other instances are ignored).
    /// Fails once the details would hold more than the limit.
    pub fn add_updates(&mut self, updates: Vec<PendingUpdate>) -> Result<(), TooManyDetails> {
        for u in updates {
            if !self.filter.counts(&u) {
                continue;
            }
            let Some(&n) = self.index.get(&u.instance_id) else {
                continue;
            };
            let i = &mut self.instances[n];
            i.missing += 1;
            if u.update_type == UpdateClassification::Security {
                i.missing_security += 1;
            }
            self.cves[n].extend(u.cves.iter().cloned());
            if self.filter.details {
                if self.details == self.max_details {
                    return Err(TooManyDetails {
                        limit: self.max_details,
                    });
                }
                self.details += 1;
                i.updates.push(u);
            }
        }
        Ok(())
    }

    /// The report as of `now`.
    pub fn finish(self, scope: ReportScope, now: Timestamp) -> ComplianceReport {
        let mut all_cves: BTreeSet<String> = BTreeSet::new();
        let mut instances: Vec<InstanceCompliance> = self
            .instances
            .into_iter()
            .zip(self.cves)
            .map(|(mut i, cves)| {
                i.updates.sort_by(|a, b| {
                    rank(b.update_type)
                        .cmp(&rank(a.update_type))
                        .then_with(|| a.source.cmp(&b.source))
                        .then_with(|| a.display_name.cmp(&b.display_name))
                        .then_with(|| a.architecture.cmp(&b.architecture))
                        .then_with(|| a.name.cmp(&b.name))
                });
                i.inventory_age = i.instance.inventory_reported.map(|t| now.duration_since(t));
                all_cves.extend(cves.iter().cloned());
                i.cves = cves.into_iter().collect();
                i
            })
            .collect();
        instances.sort_by(|a, b| {
            b.missing
                .cmp(&a.missing)
                .then_with(|| a.instance.display_name.cmp(&b.instance.display_name))
                .then_with(|| a.instance.id.cmp(&b.instance.id))
        });
        let summary = ComplianceSummary {
            instances_scanned: instances.len(),
            instances_missing: instances.iter().filter(|i| i.missing > 0).count(),
            instances_without_inventory: instances
                .iter()
                .filter(|i| i.instance.inventory_reported.is_none())
                .count(),
            updates_missing: instances.iter().map(|i| i.missing).sum(),
            security_updates_missing: instances.iter().map(|i| i.missing_security).sum(),
            distinct_cves: all_cves.len(),
            oldest_inventory: instances
                .iter()
                .filter_map(|i| i.instance.inventory_reported)
                .min(),
        };
        ComplianceReport {
            generated: now,
            scope,
            filter: self.filter,
            summary,
            instances,
        }
    }
}

/// Shapes what the store read into the report as of `now`, with no limit on the details.
pub fn build(
    rows: ComplianceRows,
    scope: ReportScope,
    filter: &ComplianceFilter,
    now: Timestamp,
) -> ComplianceReport {
    let mut b = ReportBuilder::new(filter, usize::MAX);
    b.add_instances(rows.instances);
    b.add_updates(rows.updates)
        .expect("no limit on the details");
    b.finish(scope, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + secs).unwrap()
    }

    fn row(id: &str, name: &str, reported: Option<Timestamp>) -> InstanceRow {
        InstanceRow {
            id: id.into(),
            display_name: name.into(),
            compartment_id: "ocid1.compartment.oc1..c".into(),
            os_family: OsFamily::Linux,
            os_name: None,
            os_version: None,
            last_checkin: None,
            inventory_reported: reported,
            pending: UpdateCounts::default(),
        }
    }

    fn update(
        instance: &str,
        name: &str,
        class: UpdateClassification,
        cves: &[&str],
    ) -> PendingUpdate {
        PendingUpdate {
            instance_id: instance.into(),
            source: UpdateSource::Package,
            display_name: name.into(),
            name: name.into(),
            architecture: Some("amd64".into()),
            installed_version: Some("1".into()),
            available_version: Some("2".into()),
            update_type: class,
            cves: cves.iter().map(|c| c.to_string()).collect(),
            advisories: vec![],
        }
    }

    fn scope() -> ReportScope {
        ReportScope::Compartment {
            id: "ocid1.compartment.oc1..c".into(),
            in_subtree: false,
            compartments: 1,
        }
    }

    fn rows() -> ComplianceRows {
        use UpdateClassification::*;
        ComplianceRows {
            instances: vec![
                row("i1", "web-1", Some(at(-3600))),
                row("i2", "web-2", Some(at(-60))),
                row("i3", "db-1", None),
                row("i4", "app-1", Some(at(-7200))),
            ],
            updates: vec![
                update(
                    "i1",
                    "openssl",
                    Security,
                    &["CVE-2024-0001", "CVE-2024-0002"],
                ),
                update("i1", "curl", Bug, &[]),
                update("i2", "openssl", Security, &["CVE-2024-0001"]),
                update("i2", "zlib", Security, &["CVE-2024-0009"]),
                update("i2", "bash", Enhancement, &[]),
                update("i4", "vim", Bug, &[]),
            ],
        }
    }

    #[test]
    fn security_by_default_worst_first_with_ages() {
        let r = build(rows(), scope(), &ComplianceFilter::default(), at(0));
        let order: Vec<&str> = r.instances.iter().map(|i| i.instance.id.as_str()).collect();
        // i2 misses two, i1 one; the rest by name.
        assert_eq!(order, ["i2", "i1", "i4", "i3"]);
        assert_eq!(r.instances[0].missing, 2);
        assert_eq!(r.instances[0].cves, ["CVE-2024-0001", "CVE-2024-0009"]);
        assert!(r.instances[0].updates.is_empty(), "no details asked");
        assert_eq!(
            r.instances[1].inventory_age,
            Some(SignedDuration::from_secs(3600))
        );
        assert_eq!(r.instances[3].inventory_age, None);
        assert_eq!(
            r.summary,
            ComplianceSummary {
                instances_scanned: 4,
                instances_missing: 2,
                instances_without_inventory: 1,
                updates_missing: 3,
                security_updates_missing: 3,
                distinct_cves: 3,
                oldest_inventory: Some(at(-7200)),
            }
        );
    }

    #[test]
    fn severity_widens_what_counts() {
        let filter = ComplianceFilter {
            severity: UpdateClassification::Bug,
            details: true,
            ..Default::default()
        };
        let r = build(rows(), scope(), &filter, at(0));
        let i1 = r.instances.iter().find(|i| i.instance.id == "i1").unwrap();
        assert_eq!(i1.missing, 2);
        assert_eq!(i1.missing_security, 1);
        let names: Vec<&str> = i1.updates.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["openssl", "curl"], "security first");
        assert_eq!(r.summary.instances_missing, 3);
        assert_eq!(r.summary.updates_missing, 5);
        assert_eq!(r.summary.security_updates_missing, 3);
        let other = ComplianceFilter {
            severity: UpdateClassification::Other,
            ..Default::default()
        };
        assert_eq!(
            build(rows(), scope(), &other, at(0))
                .summary
                .updates_missing,
            6
        );
    }

    #[test]
    fn cve_filter_keeps_updates_fixing_one_of_them() {
        let filter = ComplianceFilter {
            cves: ["CVE-2024-0009".to_string()].into(),
            details: true,
            ..Default::default()
        };
        let r = build(rows(), scope(), &filter, at(0));
        assert_eq!(r.summary.instances_missing, 1);
        assert_eq!(r.instances[0].instance.id, "i2");
        assert_eq!(r.instances[0].updates.len(), 1);
        assert_eq!(r.instances[0].updates[0].name, "zlib");
        assert_eq!(
            r.summary.instances_scanned, 4,
            "every instance is still scanned"
        );
    }

    #[test]
    fn empty_scope() {
        let r = build(
            ComplianceRows::default(),
            scope(),
            &ComplianceFilter::default(),
            at(0),
        );
        assert_eq!(r.summary.instances_scanned, 0);
        assert_eq!(r.summary.oldest_inventory, None);
        assert!(r.instances.is_empty());
    }

    #[test]
    fn severity_classes_and_cve_ids() {
        use UpdateClassification::*;
        assert_eq!(classes_at_or_above(Security), [Security]);
        assert_eq!(
            classes_at_or_above(Enhancement),
            [Security, Bug, Enhancement]
        );
        assert_eq!(classes_at_or_above(Other).len(), 4);
        assert_eq!(check_cve("cve-2024-3094").unwrap(), "CVE-2024-3094");
        assert_eq!(check_cve("CVE-2021-1234567").unwrap(), "CVE-2021-1234567");
        assert_eq!(check_cve(" CVE-2024-3094 ").unwrap(), "CVE-2024-3094");
        for bad in [
            "",
            "CVE-24-1234",
            "CVE-2024-123",
            "DSA-5678-1",
            "CVE-2024-12a4",
            "CVE-2024",
        ] {
            let e = check_cve(bad).unwrap_err();
            assert!(e.contains("CVE-2024-3094"), "{e}");
        }
    }

    #[test]
    fn details_are_capped_counting_is_not() {
        use UpdateClassification::*;
        let updates = || {
            vec![
                update("i1", "a", Security, &["CVE-2024-0001"]),
                update("i1", "b", Security, &["CVE-2024-0002"]),
                update("i2", "c", Security, &["CVE-2024-0003"]),
                update("i2", "d", Bug, &[]),
            ]
        };
        let instances = || vec![row("i1", "one", Some(at(-5))), row("i2", "two", None)];
        let details = ComplianceFilter {
            details: true,
            ..Default::default()
        };
        // Three security updates to list: a limit of three holds them, two does not.
        let mut b = ReportBuilder::new(&details, 3);
        b.add_instances(instances());
        b.add_updates(updates()).unwrap();
        let r = b.finish(scope(), at(0));
        assert_eq!(r.summary.updates_missing, 3);
        assert_eq!(
            r.instances.iter().map(|i| i.updates.len()).sum::<usize>(),
            3
        );
        let mut b = ReportBuilder::new(&details, 2);
        b.add_instances(instances());
        assert_eq!(b.add_updates(updates()), Err(TooManyDetails { limit: 2 }));
        // Without details nothing is kept, so the limit does not apply.
        let mut b = ReportBuilder::new(&ComplianceFilter::default(), 0);
        b.add_instances(instances());
        b.add_updates(updates()).unwrap();
        let r = b.finish(scope(), at(0));
        assert_eq!(r.summary.updates_missing, 3);
        assert_eq!(r.summary.distinct_cves, 3);
        assert!(r.instances.iter().all(|i| i.updates.is_empty()));
    }

    #[test]
    fn batches_make_the_same_report_as_one_read() {
        let filter = ComplianceFilter {
            severity: UpdateClassification::Bug,
            details: true,
            ..Default::default()
        };
        let whole = build(rows(), scope(), &filter, at(0));
        let ComplianceRows { instances, updates } = rows();
        let mut b = ReportBuilder::new(&filter, 100);
        // Updates of an instance not (yet) added are not counted; instances come first.
        b.add_updates(vec![update(
            "nobody",
            "x",
            UpdateClassification::Security,
            &[],
        )])
        .unwrap();
        for chunk in instances.chunks(3) {
            b.add_instances(chunk.to_vec());
        }
        b.add_instances(instances[..1].to_vec());
        for chunk in updates.chunks(2) {
            b.add_updates(chunk.to_vec()).unwrap();
        }
        assert_eq!(b.finish(scope(), at(0)), whole);
    }

    #[test]
    fn one_cve_grammar() {
        // The filter takes what an inventory takes, in any case and with spaces around.
        for text in [
            "CVE-2024-1234",
            "cve-2024-1234",
            " CVE-1999-0001",
            "CVE-2024-123",
            "CVE-2024-1234567890123456789",
            "CVE-2024-12345678901234567890",
            "CVE-2024-",
            "CVE--1234",
            "CVE-2024-1234-5",
            "CVE-٢٠٢٤-1234",
        ] {
            let normal = text.trim().to_ascii_uppercase();
            assert_eq!(
                check_cve(text).is_ok(),
                crate::inventory::is_cve_id(&normal),
                "{text:?}"
            );
        }
    }
}
