//! Wire types of the OCI OS Management API (20190801) and the Identity subset (20160918), as
//! osmd serves them: camelCase JSON, `None` fields omitted, times in RFC 3339 UTC with
//! milliseconds, enums in their exact upper-case spelling. Request types have every field
//! optional because clients do not enforce "required"; the server validates and answers 400.
//! Each type derives an OpenAPI schema ([`schemas`]).

pub mod errata;
pub mod packages;
pub mod report;
pub mod time;

pub use errata::*;
pub use packages::*;
pub use report::*;

use std::collections::BTreeMap;

use jiff::Timestamp;
use osm_core::enums::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub type FreeformTags = BTreeMap<String, String>;
pub type DefinedTags = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// `{id, displayName}`: a reference to another resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Id {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl From<&osm_core::IdName> for Id {
    fn from(r: &osm_core::IdName) -> Self {
        Id {
            id: Some(r.id.clone()),
            display_name: Some(r.display_name.clone()),
        }
    }
}

fn ids(list: &[osm_core::IdName]) -> Vec<Id> {
    list.iter().map(Id::from).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PackageName {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The error body of every failed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Scheduled jobs

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJob {
    pub id: String,
    pub compartment_id: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(value_type = String, example = "RECURRING")]
    pub schedule_type: ScheduleType,
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_next_execution: Option<Timestamp>,
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_last_execution: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "DAY")]
    pub interval_type: Option<IntervalType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_value: Option<String>,
    pub managed_instances: Vec<Id>,
    pub managed_instance_groups: Vec<Id>,
    #[schema(value_type = String, example = "UPDATEALL")]
    pub operation_type: OperationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "SECURITY")]
    pub update_type: Option<UpdateType>,
    pub package_names: Vec<PackageName>,
    pub work_requests: Vec<Id>,
    #[schema(value_type = String, example = "ACTIVE")]
    pub lifecycle_state: LifecycleState,
    #[schema(value_type = Object)]
    pub freeform_tags: FreeformTags,
    #[schema(value_type = Object)]
    pub defined_tags: DefinedTags,
    pub update_names: Vec<String>,
    #[schema(value_type = String, example = "LINUX")]
    pub os_family: OsFamily,
    pub is_restricted: bool,
    /// osm extension: the IANA time zone the recurrence is computed in (UTC when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl ScheduledJob {
    pub fn from_domain(j: &osm_core::ScheduledJob, work_requests: Vec<osm_core::IdName>) -> Self {
        ScheduledJob {
            id: j.id.clone(),
            compartment_id: j.compartment_id.clone(),
            display_name: j.display_name.clone(),
            description: j.description.clone(),
            schedule_type: j.schedule_type,
            time_next_execution: j.time_next_execution,
            time_last_execution: j.time_last_execution,
            interval_type: j.interval_type,
            interval_value: j.interval_value.map(|v| v.to_string()),
            managed_instances: ids(&j.managed_instances),
            managed_instance_groups: ids(&j.managed_instance_groups),
            operation_type: j.operation_type,
            update_type: j.update_type,
            package_names: j
                .package_names
                .iter()
                .map(|n| PackageName {
                    name: Some(n.clone()),
                })
                .collect(),
            work_requests: ids(&work_requests),
            lifecycle_state: j.lifecycle_state,
            freeform_tags: j.freeform_tags.clone(),
            defined_tags: j.defined_tags.clone(),
            update_names: j.update_names.clone(),
            os_family: j.os_family,
            is_restricted: j.is_restricted,
            time_zone: j.time_zone.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJobSummary {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    #[schema(value_type = String)]
    pub schedule_type: ScheduleType,
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_next_execution: Option<Timestamp>,
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_last_execution: Option<Timestamp>,
    pub managed_instances: Vec<Id>,
    pub managed_instance_groups: Vec<Id>,
    #[schema(value_type = String)]
    pub operation_type: OperationType,
    #[schema(value_type = String)]
    pub lifecycle_state: LifecycleState,
    #[schema(value_type = Object)]
    pub freeform_tags: FreeformTags,
    #[schema(value_type = Object)]
    pub defined_tags: DefinedTags,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
    pub is_restricted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl From<&osm_core::ScheduledJob> for ScheduledJobSummary {
    fn from(j: &osm_core::ScheduledJob) -> Self {
        ScheduledJobSummary {
            id: j.id.clone(),
            display_name: j.display_name.clone(),
            compartment_id: j.compartment_id.clone(),
            schedule_type: j.schedule_type,
            time_next_execution: j.time_next_execution,
            time_last_execution: j.time_last_execution,
            managed_instances: ids(&j.managed_instances),
            managed_instance_groups: ids(&j.managed_instance_groups),
            operation_type: j.operation_type,
            lifecycle_state: j.lifecycle_state,
            freeform_tags: j.freeform_tags.clone(),
            defined_tags: j.defined_tags.clone(),
            os_family: j.os_family,
            is_restricted: j.is_restricted,
            time_zone: j.time_zone.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateScheduledJobDetails {
    pub compartment_id: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<String>)]
    pub schedule_type: Option<ScheduleType>,
    #[serde(with = "time::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_next_execution: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub interval_type: Option<IntervalType>,
    pub interval_value: Option<String>,
    pub managed_instances: Option<Vec<Id>>,
    pub managed_instance_groups: Option<Vec<Id>>,
    #[schema(value_type = Option<String>)]
    pub operation_type: Option<OperationType>,
    #[schema(value_type = Option<String>)]
    pub update_type: Option<UpdateType>,
    pub package_names: Option<Vec<PackageName>>,
    #[schema(value_type = Option<Object>)]
    pub freeform_tags: Option<FreeformTags>,
    #[schema(value_type = Option<Object>)]
    pub defined_tags: Option<DefinedTags>,
    pub update_names: Option<Vec<String>>,
    #[schema(value_type = Option<String>)]
    pub os_family: Option<OsFamily>,
    /// osm extension: IANA time zone of the recurrence.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateScheduledJobDetails {
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<String>)]
    pub schedule_type: Option<ScheduleType>,
    #[serde(with = "time::option", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_next_execution: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub interval_type: Option<IntervalType>,
    pub interval_value: Option<String>,
    #[schema(value_type = Option<String>)]
    pub operation_type: Option<OperationType>,
    #[schema(value_type = Option<String>)]
    pub update_type: Option<UpdateType>,
    pub package_names: Option<Vec<PackageName>>,
    pub update_names: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub freeform_tags: Option<FreeformTags>,
    #[schema(value_type = Option<Object>)]
    pub defined_tags: Option<DefinedTags>,
    /// osm extension: IANA time zone of the recurrence.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeScheduledJobCompartmentDetails {
    pub compartment_id: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Work requests

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequestResource {
    pub entity_type: String,
    #[schema(value_type = String)]
    pub action_type: WorkRequestActionType,
    pub identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub entity_uri: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequest {
    #[schema(value_type = String)]
    pub operation_type: OperationType,
    #[schema(value_type = String, example = "IN_PROGRESS")]
    pub status: WorkRequestStatus,
    pub id: String,
    pub compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_instance_id: Option<Id>,
    pub resources: Vec<WorkRequestResource>,
    pub percent_complete: f32,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub time_accepted: Timestamp,
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_started: Option<Timestamp>,
    #[serde(
        with = "time::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub time_finished: Option<Timestamp>,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub children_ids: Vec<String>,
}

impl From<&osm_core::WorkRequest> for WorkRequest {
    fn from(w: &osm_core::WorkRequest) -> Self {
        WorkRequest {
            operation_type: w.operation_type,
            status: w.status,
            id: w.id.clone(),
            compartment_id: w.compartment_id.clone(),
            description: w.description.clone(),
            message: w.message.clone(),
            managed_instance_id: w.managed_instance.as_ref().map(Id::from),
            resources: w
                .resources
                .iter()
                .map(|r| WorkRequestResource {
                    entity_type: r.entity_type.clone(),
                    action_type: r.action_type,
                    identifier: r.identifier.clone(),
                    name: r.name.clone(),
                    entity_uri: r.entity_uri.clone(),
                })
                .collect(),
            percent_complete: w.percent_complete,
            time_accepted: w.time_accepted,
            time_started: w.time_started,
            time_finished: w.time_finished,
            os_family: w.os_family,
            parent_id: w.parent_id.clone(),
            children_ids: w.children_ids.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequestSummary {
    #[schema(value_type = String)]
    pub operation_type: OperationType,
    #[schema(value_type = String)]
    pub status: WorkRequestStatus,
    pub id: String,
    pub compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub percent_complete: f32,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub time_accepted: Timestamp,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
}

impl From<&osm_core::WorkRequest> for WorkRequestSummary {
    fn from(w: &osm_core::WorkRequest) -> Self {
        WorkRequestSummary {
            operation_type: w.operation_type,
            status: w.status,
            id: w.id.clone(),
            compartment_id: w.compartment_id.clone(),
            description: w.description.clone(),
            message: w.message.clone(),
            percent_complete: w.percent_complete,
            time_accepted: w.time_accepted,
            os_family: w.os_family,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkRequestLogEntry {
    pub message: String,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
}

impl From<&osm_core::WorkRequestLogEntry> for WorkRequestLogEntry {
    fn from(l: &osm_core::WorkRequestLogEntry) -> Self {
        WorkRequestLogEntry {
            message: l.message.clone(),
            timestamp: l.timestamp,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkRequestError {
    pub code: String,
    pub message: String,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
}

impl From<&osm_core::WorkRequestError> for WorkRequestError {
    fn from(e: &osm_core::WorkRequestError) -> Self {
        WorkRequestError {
            code: e.code.clone(),
            message: e.message.clone(),
            timestamp: e.timestamp,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Managed instances

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SoftwareSourceId {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutonomousSettings {
    pub is_auto_update_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedInstance {
    pub display_name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checkin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_boot: Option<String>,
    pub updates_available: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_kernel_version: Option<String>,
    pub compartment_id: String,
    #[schema(value_type = String, example = "NORMAL")]
    pub status: ManagedInstanceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_software_source: Option<SoftwareSourceId>,
    pub child_software_sources: Vec<SoftwareSourceId>,
    pub managed_instance_groups: Vec<Id>,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
    pub is_reboot_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_topic_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ksplice_effective_kernel_version: Option<String>,
    pub is_data_collection_authorized: bool,
    pub autonomous: AutonomousSettings,
    pub security_updates_available: i64,
    pub bug_updates_available: i64,
    pub enhancement_updates_available: i64,
    pub other_updates_available: i64,
    pub scheduled_job_count: i64,
    pub work_request_count: i64,
}

impl ManagedInstance {
    pub fn from_domain(
        mi: &osm_core::ManagedInstance,
        groups: Vec<osm_core::IdName>,
        scheduled_job_count: i64,
        work_request_count: i64,
    ) -> Self {
        ManagedInstance {
            display_name: mi.display_name.clone(),
            id: mi.id.clone(),
            description: mi.description.clone(),
            last_checkin: time::text(mi.last_checkin),
            last_boot: time::text(mi.last_boot),
            updates_available: mi.updates.total(),
            os_name: mi.os_name.clone(),
            os_version: mi.os_version.clone(),
            os_kernel_version: mi.os_kernel_version.clone(),
            compartment_id: mi.compartment_id.clone(),
            status: mi.status,
            parent_software_source: None,
            child_software_sources: vec![],
            managed_instance_groups: ids(&groups),
            os_family: mi.os_family,
            is_reboot_required: mi.is_reboot_required,
            notification_topic_id: mi.notification_topic_id.clone(),
            ksplice_effective_kernel_version: None,
            is_data_collection_authorized: mi.is_data_collection_authorized,
            autonomous: AutonomousSettings {
                is_auto_update_enabled: false,
            },
            security_updates_available: mi.updates.security,
            bug_updates_available: mi.updates.bug,
            enhancement_updates_available: mi.updates.enhancement,
            other_updates_available: mi.updates.other,
            scheduled_job_count,
            work_request_count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedInstanceSummary {
    pub display_name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checkin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_boot: Option<String>,
    /// Always a number: clients compare it with `> 0`.
    pub updates_available: i64,
    pub compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(value_type = String)]
    pub status: ManagedInstanceStatus,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
    pub is_reboot_required: bool,
}

impl From<&osm_core::ManagedInstance> for ManagedInstanceSummary {
    fn from(mi: &osm_core::ManagedInstance) -> Self {
        ManagedInstanceSummary {
            display_name: mi.display_name.clone(),
            id: mi.id.clone(),
            last_checkin: time::text(mi.last_checkin),
            last_boot: time::text(mi.last_boot),
            updates_available: mi.updates.total(),
            compartment_id: mi.compartment_id.clone(),
            description: mi.description.clone(),
            status: mi.status,
            os_family: mi.os_family,
            is_reboot_required: mi.is_reboot_required,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateManagedInstanceDetails {
    pub notification_topic_id: Option<String>,
    pub is_data_collection_authorized: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// Managed instance groups

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedInstanceGroup {
    pub display_name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub compartment_id: String,
    pub managed_instances: Vec<Id>,
    #[schema(value_type = String)]
    pub lifecycle_state: LifecycleState,
    #[schema(value_type = Object)]
    pub freeform_tags: FreeformTags,
    #[schema(value_type = Object)]
    pub defined_tags: DefinedTags,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
}

impl ManagedInstanceGroup {
    pub fn from_domain(g: &osm_core::ManagedInstanceGroup, members: Vec<osm_core::IdName>) -> Self {
        ManagedInstanceGroup {
            display_name: g.display_name.clone(),
            id: g.id.clone(),
            description: g.description.clone(),
            compartment_id: g.compartment_id.clone(),
            managed_instances: ids(&members),
            lifecycle_state: g.lifecycle_state,
            freeform_tags: g.freeform_tags.clone(),
            defined_tags: g.defined_tags.clone(),
            os_family: g.os_family,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedInstanceGroupSummary {
    pub display_name: String,
    pub id: String,
    pub compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub managed_instance_count: i64,
    #[schema(value_type = String)]
    pub lifecycle_state: LifecycleState,
    #[schema(value_type = Object)]
    pub freeform_tags: FreeformTags,
    #[schema(value_type = Object)]
    pub defined_tags: DefinedTags,
    #[schema(value_type = String)]
    pub os_family: OsFamily,
}

impl From<&osm_core::ManagedInstanceGroup> for ManagedInstanceGroupSummary {
    fn from(g: &osm_core::ManagedInstanceGroup) -> Self {
        ManagedInstanceGroupSummary {
            display_name: g.display_name.clone(),
            id: g.id.clone(),
            compartment_id: g.compartment_id.clone(),
            description: g.description.clone(),
            managed_instance_count: g.member_count,
            lifecycle_state: g.lifecycle_state,
            freeform_tags: g.freeform_tags.clone(),
            defined_tags: g.defined_tags.clone(),
            os_family: g.os_family,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateManagedInstanceGroupDetails {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub compartment_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub freeform_tags: Option<FreeformTags>,
    #[schema(value_type = Option<Object>)]
    pub defined_tags: Option<DefinedTags>,
    #[schema(value_type = Option<String>)]
    pub os_family: Option<OsFamily>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateManagedInstanceGroupDetails {
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub freeform_tags: Option<FreeformTags>,
    #[schema(value_type = Option<Object>)]
    pub defined_tags: Option<DefinedTags>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeManagedInstanceGroupCompartmentDetails {
    pub compartment_id: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Identity

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compartment {
    pub id: String,
    /// The parent; the tenancy's own id for the tenancy.
    pub compartment_id: String,
    pub name: String,
    pub description: String,
    #[serde(with = "time")]
    #[schema(value_type = String, format = DateTime)]
    pub time_created: Timestamp,
    #[schema(value_type = String, example = "ACTIVE")]
    pub lifecycle_state: CompartmentState,
    pub is_accessible: bool,
    #[schema(value_type = Object)]
    pub freeform_tags: FreeformTags,
    #[schema(value_type = Object)]
    pub defined_tags: DefinedTags,
}

impl Compartment {
    pub fn from_domain(c: &osm_core::Compartment, tenancy_id: &str) -> Self {
        Compartment {
            id: c.id.clone(),
            compartment_id: c
                .parent_id
                .clone()
                .unwrap_or_else(|| tenancy_id.to_string()),
            name: c.name.clone(),
            description: c.description.clone(),
            time_created: c.time_created,
            lifecycle_state: c.lifecycle_state,
            is_accessible: true,
            freeform_tags: c.freeform_tags.clone(),
            defined_tags: c.defined_tags.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenancy {
    pub id: String,
    pub name: String,
    pub description: String,
    pub home_region_key: String,
    #[schema(value_type = Object)]
    pub freeform_tags: FreeformTags,
    #[schema(value_type = Object)]
    pub defined_tags: DefinedTags,
}

impl Tenancy {
    pub fn from_domain(c: &osm_core::Compartment, home_region_key: &str) -> Self {
        Tenancy {
            id: c.id.clone(),
            name: c.name.clone(),
            description: c.description.clone(),
            home_region_key: home_region_key.to_string(),
            freeform_tags: c.freeform_tags.clone(),
            defined_tags: c.defined_tags.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCompartmentDetails {
    pub compartment_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub freeform_tags: Option<FreeformTags>,
    #[schema(value_type = Option<Object>)]
    pub defined_tags: Option<DefinedTags>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCompartmentDetails {
    pub name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub freeform_tags: Option<FreeformTags>,
    #[schema(value_type = Option<Object>)]
    pub defined_tags: Option<DefinedTags>,
}

/// Every schema above, for the OpenAPI document's components.
pub fn schemas() -> Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)> {
    let mut out = vec![];
    macro_rules! collect {
        ($($t:ty),*) => { $( <$t as utoipa::ToSchema>::schemas(&mut out); out.push((<$t as utoipa::ToSchema>::name().to_string(), <$t as utoipa::PartialSchema>::schema())); )* };
    }
    collect!(
        Id,
        PackageName,
        ApiError,
        ScheduledJob,
        ScheduledJobSummary,
        CreateScheduledJobDetails,
        UpdateScheduledJobDetails,
        ChangeScheduledJobCompartmentDetails,
        WorkRequestResource,
        WorkRequest,
        WorkRequestSummary,
        WorkRequestLogEntry,
        WorkRequestError,
        SoftwareSourceId,
        AutonomousSettings,
        ManagedInstance,
        ManagedInstanceSummary,
        UpdateManagedInstanceDetails,
        ManagedInstanceGroup,
        ManagedInstanceGroupSummary,
        CreateManagedInstanceGroupDetails,
        UpdateManagedInstanceGroupDetails,
        ChangeManagedInstanceGroupCompartmentDetails,
        Compartment,
        Tenancy,
        CreateCompartmentDetails,
        UpdateCompartmentDetails,
        InstalledPackageSummary,
        InstallablePackageSummary,
        AvailableUpdateSummary,
        AvailableWindowsUpdateSummary,
        InstalledWindowsUpdateSummary,
        WindowsUpdateSummary,
        WindowsUpdate,
        ErratumSummary,
        Erratum,
        SoftwarePackageSummary,
        ImportErrataDetails,
        ErrataImportSummary,
        ComplianceReport,
        ComplianceReportScope,
        ComplianceReportFilters,
        ComplianceSummary,
        InstanceCompliance,
        ComplianceUpdate
    );
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

#[cfg(test)]
mod tests;
