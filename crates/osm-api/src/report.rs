//! The compliance report (an osm extension, `GET /osm/v1/reports/compliance`): which instances
//! miss updates, which ones and the CVEs they fix, and how old each instance's inventory is.
//! `osmctl report compliance --format json` prints this body as it is.

use jiff::Timestamp;
use osm_core::report::{self, ReportScope, UpdateSource};
use osm_core::{OsFamily, UpdateClassification};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::time;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// When the report was computed.
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub time_generated: Timestamp,
    pub scope: ComplianceReportScope,
    pub filters: ComplianceReportFilters,
    pub summary: ComplianceSummary,
    /// Every instance in scope: those missing the most updates first, then by name and id.
    pub instances: Vec<InstanceCompliance>,
}

/// Which instances the report covers: a compartment (and its subtree), a group, or (no scope
/// asked for by a caller who may not read the tenancy) the subtrees of the caller's grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReportScope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compartment_id: Option<String>,
    /// The top compartments of the caller's grants, each with its subtree (no scope asked
    /// for, by a caller who may not read the tenancy).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub compartment_ids: Option<Vec<String>>,
    pub compartment_id_in_subtree: bool,
    /// How many compartments were scanned (compartment scopes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compartment_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_instance_group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_instance_group_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReportFilters {
    /// The least severe update classification counted as missing (osm stores no CVSS or vendor
    /// severity: SECURITY > BUG > ENHANCEMENT > OTHER).
    #[schema(value_type = String, example = "SECURITY")]
    pub severity: UpdateClassification,
    /// The classifications counted, most severe first.
    #[schema(value_type = Vec<String>)]
    pub update_types: Vec<UpdateClassification>,
    /// Only updates fixing one of these CVEs were counted (empty: every update).
    pub cves: Vec<String>,
    /// Whether each instance lists its missing updates.
    pub details: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceSummary {
    pub instances_scanned: i64,
    /// Instances missing at least one counted update.
    pub instances_missing_updates: i64,
    /// Instances whose agent never uploaded an inventory: nothing is known of their updates.
    pub instances_without_inventory: i64,
    /// Counted updates missing, over every instance.
    pub missing_updates: i64,
    /// Of which security updates.
    pub missing_security_updates: i64,
    /// Distinct CVEs the missing updates fix.
    pub distinct_cves: i64,
    /// The oldest last inventory upload of an instance in scope.
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_oldest_inventory: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceCompliance {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    #[schema(value_type = String, example = "LINUX")]
    pub os_family: OsFamily,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checkin: Option<String>,
    /// When the agent last uploaded its inventory (absent: never).
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_inventory_reported: Option<Timestamp>,
    /// Seconds from that upload to `timeGenerated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory_age_seconds: Option<i64>,
    /// Pending updates by classification (whatever the filters).
    pub security_updates: i64,
    pub bug_updates: i64,
    pub enhancement_updates: i64,
    pub other_updates: i64,
    /// Pending updates the filters count.
    pub missing_updates: i64,
    /// Of which security updates.
    pub missing_security_updates: i64,
    /// Distinct CVEs those updates fix.
    pub related_cves: Vec<String>,
    /// Those updates, most severe first (with `details=true` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<Vec<ComplianceUpdate>>,
}

/// A missing update of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceUpdate {
    /// The package name, or the Windows update's title.
    pub display_name: String,
    /// The package name, or the Windows update's id.
    pub name: String,
    /// `PACKAGE` or `WINDOWS_UPDATE`.
    pub kind: String,
    #[schema(value_type = String, example = "SECURITY")]
    pub update_type: UpdateClassification,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_version: Option<String>,
    pub related_cves: Vec<String>,
    /// Advisory names (`DSA-5678-1`, `ELSA-2024-1234`).
    pub advisories: Vec<String>,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<report::PendingUpdate> for ComplianceUpdate {
    fn from(u: report::PendingUpdate) -> Self {
        ComplianceUpdate {
            display_name: u.display_name,
            name: u.name,
            kind: match u.source {
                UpdateSource::Package => "PACKAGE",
                UpdateSource::Windows => "WINDOWS_UPDATE",
            }
            .into(),
            update_type: u.update_type,
            architecture: u.architecture,
            installed_version: u.installed_version,
            available_version: u.available_version,
            related_cves: u.cves,
            advisories: u.advisories,
        }
    }
}

impl From<report::ComplianceReport> for ComplianceReport {
    /// Consumes the report: a fleet's report is megabytes, not worth copying.
    fn from(r: report::ComplianceReport) -> Self {
        let scope = match r.scope {
            ReportScope::Compartment {
                id,
                in_subtree,
                compartments,
            } => ComplianceReportScope {
                compartment_id: Some(id),
                compartment_ids: None,
                compartment_id_in_subtree: in_subtree,
                compartment_count: Some(count(compartments)),
                managed_instance_group_id: None,
                managed_instance_group_name: None,
            },
            ReportScope::Granted {
                roots,
                compartments,
            } => ComplianceReportScope {
                compartment_id: None,
                compartment_ids: Some(roots),
                compartment_id_in_subtree: true,
                compartment_count: Some(count(compartments)),
                managed_instance_group_id: None,
                managed_instance_group_name: None,
            },
            ReportScope::Group { id, display_name } => ComplianceReportScope {
                compartment_id: None,
                compartment_ids: None,
                compartment_id_in_subtree: false,
                compartment_count: None,
                managed_instance_group_id: Some(id),
                managed_instance_group_name: Some(display_name),
            },
        };
        let s = &r.summary;
        let details = r.filter.details;
        ComplianceReport {
            time_generated: r.generated,
            scope,
            filters: ComplianceReportFilters {
                severity: r.filter.severity,
                update_types: report::classes_at_or_above(r.filter.severity),
                cves: r.filter.cves.into_iter().collect(),
                details,
            },
            summary: ComplianceSummary {
                instances_scanned: count(s.instances_scanned),
                instances_missing_updates: count(s.instances_missing),
                instances_without_inventory: count(s.instances_without_inventory),
                missing_updates: count(s.updates_missing),
                missing_security_updates: count(s.security_updates_missing),
                distinct_cves: count(s.distinct_cves),
                time_oldest_inventory: s.oldest_inventory,
            },
            instances: r
                .instances
                .into_iter()
                .map(|i| {
                    let m = i.instance;
                    InstanceCompliance {
                        id: m.id,
                        display_name: m.display_name,
                        compartment_id: m.compartment_id,
                        os_family: m.os_family,
                        os_name: m.os_name,
                        os_version: m.os_version,
                        last_checkin: time::text(m.last_checkin),
                        time_inventory_reported: m.inventory_reported,
                        inventory_age_seconds: i.inventory_age.map(|d| d.as_secs()),
                        security_updates: m.pending.security,
                        bug_updates: m.pending.bug,
                        enhancement_updates: m.pending.enhancement,
                        other_updates: m.pending.other,
                        missing_updates: count(i.missing),
                        missing_security_updates: count(i.missing_security),
                        related_cves: i.cves,
                        updates: details
                            .then(|| i.updates.into_iter().map(ComplianceUpdate::from).collect()),
                    }
                })
                .collect(),
        }
    }
}
