//! Packages, updates and Windows updates of managed instances (§3.5, §3.6), as the agents'
//! inventory reports them.

use osm_core::inventory::{self, ListedUpdate, Package, Reported, WindowsUpdateInfo};
use osm_core::{Installable, UpdateClassification};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Id, time};

/// Packages reported without a type.
const UNKNOWN_TYPE: &str = "unknown";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstalledPackageSummary {
    /// The package name.
    pub display_name: String,
    /// The package name (osm identifies a package by name and architecture).
    pub name: String,
    #[serde(rename = "type")]
    pub package_type: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_time: Option<String>,
}

impl From<&Reported<Package>> for InstalledPackageSummary {
    fn from(r: &Reported<Package>) -> Self {
        let p = &r.item;
        InstalledPackageSummary {
            display_name: p.name.clone(),
            name: p.name.clone(),
            package_type: p
                .package_type
                .clone()
                .unwrap_or_else(|| UNKNOWN_TYPE.into()),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            install_time: time::text(p.install_time),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallablePackageSummary {
    pub display_name: String,
    pub name: String,
    #[serde(rename = "type")]
    pub package_type: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

impl From<&Reported<Package>> for InstallablePackageSummary {
    fn from(r: &Reported<Package>) -> Self {
        let p = &r.item;
        InstallablePackageSummary {
            display_name: p.name.clone(),
            name: p.name.clone(),
            package_type: p
                .package_type
                .clone()
                .unwrap_or_else(|| UNKNOWN_TYPE.into()),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailableUpdateSummary {
    pub display_name: String,
    pub name: String,
    #[schema(value_type = Option<String>, example = "SECURITY")]
    pub update_type: Option<UpdateClassification>,
    #[serde(rename = "type")]
    pub package_type: String,
    pub installed_version: String,
    pub available_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The advisories the update belongs to: `{id: erratum OCID, displayName: advisory name}`.
    pub errata: Vec<Id>,
    pub related_cves: Vec<String>,
}

impl From<&ListedUpdate> for AvailableUpdateSummary {
    fn from(l: &ListedUpdate) -> Self {
        let u = &l.update;
        AvailableUpdateSummary {
            display_name: u.name.clone(),
            name: u.name.clone(),
            update_type: Some(u.update_type),
            package_type: l
                .package_type
                .clone()
                .unwrap_or_else(|| UNKNOWN_TYPE.into()),
            installed_version: u.installed_version.clone(),
            available_version: u.available_version.clone(),
            architecture: u.architecture.clone(),
            errata: l
                .errata
                .iter()
                .map(|(id, name)| Id {
                    id: Some(id.clone()),
                    display_name: Some(name.clone()),
                })
                .collect(),
            related_cves: u.cves.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailableWindowsUpdateSummary {
    pub display_name: String,
    pub name: String,
    #[schema(value_type = String, example = "SECURITY")]
    pub update_type: UpdateClassification,
    #[schema(value_type = Option<String>, example = "INSTALLABLE")]
    pub is_eligible_for_installation: Option<Installable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_reboot_required_for_installation: Option<bool>,
}

impl From<&Reported<inventory::WindowsUpdate>> for AvailableWindowsUpdateSummary {
    fn from(r: &Reported<inventory::WindowsUpdate>) -> Self {
        let w = &r.item;
        AvailableWindowsUpdateSummary {
            display_name: w.display_name.clone(),
            name: w.name.clone(),
            update_type: w.update_type,
            is_eligible_for_installation: Some(w.installable.unwrap_or(Installable::Unknown)),
            is_reboot_required_for_installation: w.reboot_required,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstalledWindowsUpdateSummary {
    pub display_name: String,
    pub name: String,
    #[schema(value_type = String, example = "SECURITY")]
    pub update_type: UpdateClassification,
}

impl From<&Reported<inventory::WindowsUpdate>> for InstalledWindowsUpdateSummary {
    fn from(r: &Reported<inventory::WindowsUpdate>) -> Self {
        InstalledWindowsUpdateSummary {
            display_name: r.item.display_name.clone(),
            name: r.item.name.clone(),
            update_type: r.item.update_type,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowsUpdateSummary {
    pub display_name: String,
    pub name: String,
    #[schema(value_type = String, example = "SECURITY")]
    pub update_type: UpdateClassification,
    #[schema(value_type = Option<String>, example = "INSTALLABLE")]
    pub installable: Option<Installable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_reboot_required_for_installation: Option<bool>,
}

impl From<&WindowsUpdateInfo> for WindowsUpdateSummary {
    fn from(w: &WindowsUpdateInfo) -> Self {
        WindowsUpdateSummary {
            display_name: w.display_name.clone(),
            name: w.name.clone(),
            update_type: w.update_type,
            installable: Some(w.installable.unwrap_or(Installable::Unknown)),
            is_reboot_required_for_installation: w.reboot_required,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowsUpdate {
    pub display_name: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(value_type = String, example = "SECURITY")]
    pub update_type: UpdateClassification,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_in_bytes: Option<i64>,
    #[schema(value_type = Option<String>, example = "INSTALLABLE")]
    pub is_eligible_for_installation: Option<Installable>,
    pub installation_requirements: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_reboot_required_for_installation: Option<bool>,
    pub kb_article_ids: Vec<String>,
}

impl From<&WindowsUpdateInfo> for WindowsUpdate {
    fn from(w: &WindowsUpdateInfo) -> Self {
        WindowsUpdate {
            display_name: w.display_name.clone(),
            name: w.name.clone(),
            description: w.description.clone(),
            update_type: w.update_type,
            size_in_bytes: w.size_in_bytes,
            is_eligible_for_installation: Some(w.installable.unwrap_or(Installable::Unknown)),
            installation_requirements: vec![],
            is_reboot_required_for_installation: w.reboot_required,
            kb_article_ids: w.kb_article_ids.clone(),
        }
    }
}
