//! The resources osm keeps, as the store reads and writes them. Wire views live in `osm-api`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::enums::*;

pub type FreeformTags = BTreeMap<String, String>;
pub type DefinedTags = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// A reference to another resource with its display name (`Id` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdName {
    pub id: String,
    pub display_name: String,
}

/// A compartment. The tenancy is the root compartment: `parent_id` is `None` for it alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Compartment {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub description: String,
    pub lifecycle_state: CompartmentState,
    pub time_created: Timestamp,
    pub freeform_tags: FreeformTags,
    pub defined_tags: DefinedTags,
    pub version: i64,
}

impl Compartment {
    pub fn is_tenancy(&self) -> bool {
        self.parent_id.is_none()
    }
}

/// An API user. Users act through their API keys; what they may reach comes from their groups.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub tenancy_id: String,
    pub name: String,
    pub description: String,
    pub time_created: Timestamp,
}

/// A user's RSA public key, found by the fingerprint in a request's `keyId`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub user_id: String,
    pub fingerprint: String,
    pub public_key_pem: String,
    pub time_created: Timestamp,
}

/// A group of users; each grant gives its members a compartment and its whole subtree.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: String,
    pub time_created: Timestamp,
}

/// Everything the first start on an empty store creates, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    pub tenancy: Compartment,
    pub admin: User,
    pub admin_key: ApiKey,
    pub admin_group: Group,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateCounts {
    pub security: i64,
    pub bug: i64,
    pub enhancement: i64,
    pub other: i64,
}

/// An agent silent for longer than this is shown `UNREACHABLE`.
pub const UNREACHABLE_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(5 * 60);

impl ManagedInstance {
    /// The status as seen at `now`: a host whose agent has been silent for more than
    /// [`UNREACHABLE_AFTER`] is `UNREACHABLE`, whatever it last reported.
    pub fn status_at(&self, now: Timestamp) -> ManagedInstanceStatus {
        match self.last_checkin {
            Some(t) if now - t <= UNREACHABLE_AFTER => self.status,
            _ => ManagedInstanceStatus::Unreachable,
        }
    }
}

impl UpdateCounts {
    pub fn total(&self) -> i64 {
        self.security + self.bug + self.enhancement + self.other
    }
}

/// A host whose agent enrolled. The API has no create or delete for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedInstance {
    pub id: String,
    pub compartment_id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub os_kernel_version: Option<String>,
    pub os_family: OsFamily,
    pub status: ManagedInstanceStatus,
    pub last_checkin: Option<Timestamp>,
    pub last_boot: Option<Timestamp>,
    pub is_reboot_required: bool,
    pub notification_topic_id: Option<String>,
    pub is_data_collection_authorized: bool,
    pub updates: UpdateCounts,
    pub time_created: Timestamp,
    pub version: i64,
}

/// The fields `UpdateManagedInstance` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedInstancePatch {
    pub notification_topic_id: Option<String>,
    pub is_data_collection_authorized: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManagedInstanceGroup {
    pub id: String,
    pub compartment_id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub os_family: OsFamily,
    pub lifecycle_state: LifecycleState,
    pub freeform_tags: FreeformTags,
    pub defined_tags: DefinedTags,
    pub time_created: Timestamp,
    pub version: i64,
    /// Number of member instances (filled by reads).
    pub member_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedInstanceGroupPatch {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub freeform_tags: Option<FreeformTags>,
    pub defined_tags: Option<DefinedTags>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompartmentPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub freeform_tags: Option<FreeformTags>,
    pub defined_tags: Option<DefinedTags>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledJob {
    pub id: String,
    pub compartment_id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub schedule_type: ScheduleType,
    pub time_next_execution: Option<Timestamp>,
    pub time_last_execution: Option<Timestamp>,
    pub interval_type: Option<IntervalType>,
    pub interval_value: Option<u32>,
    /// Targets: instances or groups (one of the two lists is non-empty).
    pub managed_instances: Vec<IdName>,
    pub managed_instance_groups: Vec<IdName>,
    pub operation_type: OperationType,
    pub update_type: Option<UpdateType>,
    pub package_names: Vec<String>,
    pub update_names: Vec<String>,
    pub lifecycle_state: LifecycleState,
    pub freeform_tags: FreeformTags,
    pub defined_tags: DefinedTags,
    pub os_family: OsFamily,
    pub is_restricted: bool,
    /// IANA time zone the recurrence is computed in (extension; UTC when absent).
    pub time_zone: Option<String>,
    pub time_created: Timestamp,
    pub version: i64,
}

/// The fields `UpdateScheduledJob` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduledJobPatch {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub schedule_type: Option<ScheduleType>,
    pub time_next_execution: Option<Timestamp>,
    pub interval_type: Option<IntervalType>,
    pub interval_value: Option<u32>,
    pub operation_type: Option<OperationType>,
    pub update_type: Option<UpdateType>,
    pub package_names: Option<Vec<String>>,
    pub update_names: Option<Vec<String>>,
    pub freeform_tags: Option<FreeformTags>,
    pub defined_tags: Option<DefinedTags>,
    pub time_zone: Option<String>,
}

impl ScheduledJob {
    /// The job with `patch` applied (validation is the caller's, on the result).
    pub fn patched(&self, patch: &ScheduledJobPatch) -> ScheduledJob {
        let mut job = self.clone();
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = &patch.$field { job.$field = v.clone(); } )* };
        }
        take!(
            display_name,
            schedule_type,
            operation_type,
            package_names,
            update_names,
            freeform_tags,
            defined_tags
        );
        if let Some(v) = &patch.description {
            job.description = Some(v.clone());
        }
        if let Some(v) = patch.time_next_execution {
            job.time_next_execution = Some(v);
        }
        if let Some(v) = patch.interval_type {
            job.interval_type = Some(v);
        }
        if let Some(v) = patch.interval_value {
            job.interval_value = Some(v);
        }
        if let Some(v) = patch.update_type {
            job.update_type = Some(v);
        }
        if let Some(v) = &patch.time_zone {
            job.time_zone = Some(v.clone());
        }
        if job.schedule_type == ScheduleType::Onetime {
            job.interval_type = None;
            job.interval_value = None;
        }
        job
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkRequestResource {
    pub entity_type: String,
    pub action_type: WorkRequestActionType,
    pub identifier: String,
    pub name: Option<String>,
    pub entity_uri: String,
}

/// What a work request asks the agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkAction {
    InstallPackage { names: Vec<String> },
    RemovePackage { names: Vec<String> },
    UpdatePackage { names: Vec<String> },
    UpdateAll { update_type: UpdateType },
    InstallWindowsUpdate { names: Vec<String> },
    InstallAllWindowsUpdates { update_type: UpdateType },
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkRequest {
    pub id: String,
    pub compartment_id: String,
    pub operation_type: OperationType,
    pub status: WorkRequestStatus,
    pub description: Option<String>,
    pub message: Option<String>,
    pub managed_instance: Option<IdName>,
    pub os_family: OsFamily,
    pub percent_complete: f32,
    pub time_accepted: Timestamp,
    pub time_started: Option<Timestamp>,
    pub time_finished: Option<Timestamp>,
    pub parent_id: Option<String>,
    pub scheduled_job_id: Option<String>,
    pub resources: Vec<WorkRequestResource>,
    /// Ids of child work requests (filled by single reads, empty in lists).
    pub children_ids: Vec<String>,
    /// What the agent is to do; `None` for a parent, which only gathers its children.
    pub action: Option<WorkAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkRequestLogEntry {
    pub message: String,
    pub timestamp: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkRequestError {
    pub code: String,
    pub message: String,
    pub timestamp: Timestamp,
}

/// A key agents enrol with; it places their instance in `compartment_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallKey {
    pub id: String,
    pub compartment_id: String,
    pub display_name: String,
    pub time_created: Timestamp,
    pub time_revoked: Option<Timestamp>,
}

/// What an agent reports about its host at each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentFacts {
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub os_kernel_version: Option<String>,
    pub last_boot: Option<Timestamp>,
    #[serde(default)]
    pub is_reboot_required: bool,
    /// Available updates by type, when the agent has scanned.
    pub updates: Option<UpdateCountsWire>,
}

/// Update counts as agents send them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCountsWire {
    pub security: i64,
    pub bug: i64,
    pub enhancement: i64,
    pub other: i64,
}

/// What became of one occurrence of a scheduled job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccurrenceOutcome {
    /// Its work requests were created.
    Fired,
    /// It came due while osmd was down, longer ago than the catch-up window: not run.
    Missed,
    /// An operator skipped it.
    Skipped,
    /// An extra occurrence an operator asked for (run now).
    RunNow,
}

impl OccurrenceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fired => "FIRED",
            Self::Missed => "MISSED",
            Self::Skipped => "SKIPPED",
            Self::RunNow => "RUN_NOW",
        }
    }
}

/// One occurrence the scheduler handled.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub job_id: String,
    pub time: Timestamp,
    pub outcome: OccurrenceOutcome,
    pub work_request_ids: Vec<String>,
}

/// An `opc-retry-token` as remembered by the store: who sent it, for which operation and
/// which request, and what it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRecord {
    pub principal_id: String,
    pub token: String,
    /// Operation and target, e.g. `CreateScheduledJob` or `AttachManagedInstance:<group>`.
    pub operation: String,
    /// Hash of the request body and parameters; a replay with another hash is a conflict.
    pub request_hash: String,
    /// Id of the resource the first request created or acted on.
    pub resource_id: String,
    pub time_created: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_agents_are_unreachable() {
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        let mut mi = ManagedInstance {
            id: "i".into(),
            compartment_id: "c".into(),
            display_name: "h".into(),
            description: None,
            os_name: None,
            os_version: None,
            os_kernel_version: None,
            os_family: OsFamily::Linux,
            status: ManagedInstanceStatus::Warning,
            last_checkin: Some(now - jiff::SignedDuration::from_secs(60)),
            last_boot: None,
            is_reboot_required: false,
            notification_topic_id: None,
            is_data_collection_authorized: false,
            updates: UpdateCounts::default(),
            time_created: now,
            version: 1,
        };
        assert_eq!(mi.status_at(now), ManagedInstanceStatus::Warning);
        mi.last_checkin = Some(now - UNREACHABLE_AFTER - jiff::SignedDuration::from_secs(1));
        assert_eq!(mi.status_at(now), ManagedInstanceStatus::Unreachable);
        mi.last_checkin = None;
        assert_eq!(mi.status_at(now), ManagedInstanceStatus::Unreachable);
    }
}
