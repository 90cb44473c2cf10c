//! Building work requests: what an action on an instance looks like as a work request, and
//! what a scheduled job's occurrence asks of each instance it reaches.

use jiff::Timestamp;

use crate::enums::*;
use crate::ids::{ResourceKind, new_ocid};
use crate::model::*;

pub fn operation(action: &WorkAction) -> OperationType {
    match action {
        WorkAction::InstallPackage { .. } | WorkAction::InstallWindowsUpdate { .. } => {
            OperationType::Install
        }
        WorkAction::RemovePackage { .. } => OperationType::Remove,
        WorkAction::UpdatePackage { .. } => OperationType::Update,
        WorkAction::UpdateAll { .. } | WorkAction::InstallAllWindowsUpdates { .. } => {
            OperationType::UpdateAll
        }
    }
}

/// "Install package bash on web-01": the work request's description.
pub fn describe(action: &WorkAction, target: &str) -> String {
    match action {
        WorkAction::InstallPackage { names } => format!("Install {} on {target}", packages(names)),
        WorkAction::RemovePackage { names } => format!("Remove {} from {target}", packages(names)),
        WorkAction::UpdatePackage { names } => format!("Update {} on {target}", packages(names)),
        WorkAction::UpdateAll { update_type } => format!(
            "Install all {} package updates on {target}",
            kind(*update_type)
        ),
        WorkAction::InstallWindowsUpdate { names } => {
            format!(
                "Install Windows update{} {} on {target}",
                plural(names),
                names.join(", ")
            )
        }
        WorkAction::InstallAllWindowsUpdates { update_type } => {
            format!(
                "Install all {} Windows updates on {target}",
                kind(*update_type)
            )
        }
    }
}

fn packages(names: &[String]) -> String {
    format!("package{} {}", plural(names), names.join(", "))
}

fn plural(names: &[String]) -> &'static str {
    if names.len() == 1 { "" } else { "s" }
}

/// "security", "bugfix", … or "available" for ALL.
pub fn kind(t: UpdateType) -> String {
    match t {
        UpdateType::All => "available".into(),
        other => other.as_str().to_lowercase(),
    }
}

pub fn is_windows_action(action: &WorkAction) -> bool {
    matches!(
        action,
        WorkAction::InstallWindowsUpdate { .. } | WorkAction::InstallAllWindowsUpdates { .. }
    )
}

/// An `ACCEPTED` work request carrying `action` to `mi`.
pub fn work_request_for(
    mi: &ManagedInstance,
    action: &WorkAction,
    parent: Option<&str>,
    scheduled_job: Option<&str>,
    now: Timestamp,
) -> WorkRequest {
    WorkRequest {
        id: new_ocid(ResourceKind::WorkRequest),
        compartment_id: mi.compartment_id.clone(),
        operation_type: operation(action),
        status: WorkRequestStatus::Accepted,
        description: Some(describe(action, &mi.display_name)),
        message: None,
        managed_instance: Some(IdName {
            id: mi.id.clone(),
            display_name: mi.display_name.clone(),
        }),
        os_family: mi.os_family,
        percent_complete: 0.0,
        time_accepted: now,
        time_started: None,
        time_finished: None,
        parent_id: parent.map(str::to_string),
        scheduled_job_id: scheduled_job.map(str::to_string),
        resources: instance_resources(&mi.id, &mi.display_name),
        children_ids: vec![],
        action: Some(action.clone()),
    }
}

/// The resources of a work request acting on one managed instance: that instance. The store
/// keeps these implied by the request's instance instead of writing them out in each row.
pub fn instance_resources(id: &str, display_name: &str) -> Vec<WorkRequestResource> {
    vec![WorkRequestResource {
        entity_type: "MANAGED_INSTANCE".into(),
        action_type: WorkRequestActionType::InProgress,
        identifier: id.to_string(),
        name: Some(display_name.to_string()),
        entity_uri: format!("/20190801/managedInstances/{id}"),
    }]
}

/// What a scheduled job asks of an instance of the given family, or `None` when the job has
/// nothing for it (e.g. Linux package names on a Windows host).
pub fn job_action(job: &ScheduledJob, family: OsFamily) -> Option<WorkAction> {
    let windows = family == OsFamily::Windows;
    let update_type = job.update_type.unwrap_or(UpdateType::All);
    match (job.operation_type, windows) {
        (OperationType::UpdateAll, false) => Some(WorkAction::UpdateAll { update_type }),
        (OperationType::UpdateAll, true) => {
            Some(WorkAction::InstallAllWindowsUpdates { update_type })
        }
        (OperationType::Install, true) if !job.update_names.is_empty() => {
            Some(WorkAction::InstallWindowsUpdate {
                names: job.update_names.clone(),
            })
        }
        (_, true) => None,
        (_, false) if job.package_names.is_empty() => None,
        (OperationType::Install, false) => Some(WorkAction::InstallPackage {
            names: job.package_names.clone(),
        }),
        (OperationType::Remove, false) => Some(WorkAction::RemovePackage {
            names: job.package_names.clone(),
        }),
        (OperationType::Update, false) => Some(WorkAction::UpdatePackage {
            names: job.package_names.clone(),
        }),
        _ => None,
    }
}

/// The work requests an occurrence of `job` creates: one per instance it reaches (targets and
/// group members are expanded by the caller at fire time), with a first log line each.
pub fn occurrence_work(
    job: &ScheduledJob,
    instances: &[ManagedInstance],
    occurrence: Timestamp,
    now: Timestamp,
) -> (Vec<WorkRequest>, Vec<(String, WorkRequestLogEntry)>) {
    let mut wrs = vec![];
    let mut logs = vec![];
    for mi in instances {
        let Some(action) = job_action(job, mi.os_family) else {
            continue;
        };
        let wr = work_request_for(mi, &action, None, Some(&job.id), now);
        logs.push((
            wr.id.clone(),
            WorkRequestLogEntry {
                message: format!(
                    "Accepted: scheduled job {} ({}), occurrence of {}",
                    job.display_name,
                    job.id,
                    crate::time::format_rfc3339(occurrence)
                ),
                timestamp: now,
            },
        ));
        wrs.push(wr);
    }
    (wrs, logs)
}
