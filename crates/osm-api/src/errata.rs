//! Errata (§3.7): the catalogue of advisories, as agents report them and as imported OSV
//! records make them, and the OSV import (an osm extension, `POST /osm/v1/errata/import`).

use osm_core::UpdateClassification;
use osm_core::errata::{ErratumDetails, ErratumInfo, ErratumPackage, ImportSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Id, time};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErratumSummary {
    /// The advisory name (`DSA-5678-1`, `ELSA-2024-1234`, an OSV id).
    pub name: String,
    pub id: String,
    pub compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synopsis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[schema(value_type = Option<String>, example = "SECURITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisory_type: Option<UpdateClassification>,
    pub related_cves: Vec<String>,
}

/// When osm last changed what it knows of the erratum: the OSV record's `modified`, else when
/// the catalogue entry last changed.
fn updated(e: &ErratumInfo) -> Option<String> {
    time::text(Some(e.modified.unwrap_or(e.time_updated)))
}

impl From<&ErratumInfo> for ErratumSummary {
    fn from(e: &ErratumInfo) -> Self {
        ErratumSummary {
            name: e.name.clone(),
            id: e.id.clone(),
            compartment_id: e.compartment_id.clone(),
            synopsis: e.synopsis.clone(),
            issued: time::text(e.issued),
            updated: updated(e),
            advisory_type: e.advisory_type,
            related_cves: e.related_cves.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftwarePackageSummary {
    pub display_name: String,
    /// The package name (osm identifies a package by name and architecture).
    pub name: String,
    #[serde(rename = "type")]
    pub package_type: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

impl From<&ErratumPackage> for SoftwarePackageSummary {
    fn from(p: &ErratumPackage) -> Self {
        SoftwarePackageSummary {
            display_name: p.name.clone(),
            name: p.name.clone(),
            package_type: p.package_type.clone().unwrap_or_else(|| "unknown".into()),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erratum {
    pub name: String,
    pub id: String,
    pub compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synopsis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[schema(value_type = Option<String>, example = "SECURITY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisory_type: Option<UpdateClassification>,
    /// Who published the advisory (for an OSV record: its distributions).
    #[serde(rename = "from", skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
    /// The advisory's reference URLs, one a line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    /// Instances the caller reaches with an available update that fixes the erratum.
    pub affected_instances: Vec<Id>,
    pub related_cves: Vec<String>,
    pub software_sources: Vec<Id>,
    /// The versions that fix it: an OSV record's fixed versions and the updates available to
    /// the affected instances.
    pub packages: Vec<SoftwarePackageSummary>,
}

impl From<&ErratumDetails> for Erratum {
    fn from(d: &ErratumDetails) -> Self {
        let e = &d.info;
        Erratum {
            name: e.name.clone(),
            id: e.id.clone(),
            compartment_id: e.compartment_id.clone(),
            synopsis: e.synopsis.clone(),
            issued: time::text(e.issued),
            description: e.description.clone(),
            updated: updated(e),
            advisory_type: e.advisory_type,
            from: e.issuer.clone(),
            solution: e.solution.clone(),
            references: e.references.clone(),
            affected_instances: d.affected_instances.iter().map(Id::from).collect(),
            related_cves: e.related_cves.clone(),
            software_sources: vec![],
            packages: d.packages.iter().map(Into::into).collect(),
        }
    }
}

/// The body of `POST /osm/v1/errata/import` (osm extension): OSV records, each a JSON object
/// of the OSV schema (ossf.github.io/osv-schema), applied all or none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImportErrataDetails {
    #[schema(value_type = Option<Vec<Object>>)]
    pub records: Option<Vec<serde_json::Value>>,
}

/// What an import did (osm extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrataImportSummary {
    /// Records in the batch.
    pub records: usize,
    /// Records osm did not have.
    pub created: usize,
    /// Records replaced by a newer (or same-time but different) version.
    pub updated: usize,
    /// Records osm already had exactly.
    pub unchanged: usize,
    /// Records older (by `modified`) than the version osm holds; not applied.
    pub stale: usize,
    /// Withdrawn records among those created or updated (they no longer match).
    pub withdrawn: usize,
    /// Available updates whose type, CVEs or errata changed.
    pub updates_changed: usize,
    /// Instances with such an update.
    pub instances_changed: usize,
}

impl From<&ImportSummary> for ErrataImportSummary {
    fn from(s: &ImportSummary) -> Self {
        ErrataImportSummary {
            records: s.records,
            created: s.created,
            updated: s.updated,
            unchanged: s.unchanged,
            stale: s.stale,
            withdrawn: s.withdrawn,
            updates_changed: s.updates_changed,
            instances_changed: s.instances_changed,
        }
    }
}
