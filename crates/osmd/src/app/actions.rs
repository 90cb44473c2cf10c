//! Asynchronous actions: each creates `ACCEPTED` work requests (one per instance; a group
//! action a parent with one child per member) and answers with the work request id at once.
//! Agents carry the work out; `cancel` stops it (an osm extension of the API).

use jiff::Timestamp;
use osm_core::enums::{OsFamily, UpdateType, WorkRequestActionType, WorkRequestStatus};
use osm_core::ids::{ResourceKind, new_ocid};
use osm_core::validate::check_package_name;
use osm_core::work::{describe, is_windows_action, kind, work_request_for};
use osm_core::{
    ManagedInstance, OperationType, WorkAction, WorkRequest, WorkRequestLogEntry,
    WorkRequestResource,
};
use osm_store::StoreError;

use super::{App, Principal, RetryKey};
use crate::http::error::{ApiError, ApiResult};

/// Checks the action's names before anything is stored.
pub fn check_action(action: &WorkAction) -> ApiResult<()> {
    match action {
        WorkAction::InstallPackage { names }
        | WorkAction::RemovePackage { names }
        | WorkAction::UpdatePackage { names } => names
            .iter()
            .try_for_each(|n| check_package_name("softwarePackageName", n))
            .map_err(ApiError::invalid),
        WorkAction::InstallWindowsUpdate { names } => names
            .iter()
            .try_for_each(|n| check_package_name("windowsUpdateName", n))
            .map_err(ApiError::invalid),
        WorkAction::UpdateAll { .. } | WorkAction::InstallAllWindowsUpdates { .. } => Ok(()),
    }
}

fn child(
    mi: &ManagedInstance,
    action: &WorkAction,
    parent: Option<&str>,
    now: Timestamp,
) -> WorkRequest {
    work_request_for(mi, action, parent, None, now)
}

impl App {
    /// Queues `action` on one instance; returns the work request id.
    pub async fn instance_action(
        &self,
        p: &Principal,
        instance_id: &str,
        action: WorkAction,
        retry: Option<RetryKey>,
    ) -> ApiResult<String> {
        if let Some(id) = self.retry_replay(p, retry.as_ref()).await? {
            return Ok(id);
        }
        check_action(&action)?;
        let mi = match self.store.managed_instance_get(instance_id).await? {
            Some(mi) if p.reaches(&mi.compartment_id) => mi,
            _ => return Err(ApiError::not_found("managed instance", instance_id)),
        };
        match (mi.os_family, is_windows_action(&action)) {
            (OsFamily::Windows, false) => {
                return Err(ApiError::invalid(format!(
                    "managed instance {} runs Windows; use the Windows update actions",
                    mi.display_name
                )));
            }
            (OsFamily::Linux, true) => {
                return Err(ApiError::invalid(format!(
                    "managed instance {} runs Linux; Windows updates do not apply",
                    mi.display_name
                )));
            }
            _ => {}
        }
        let now = Timestamp::now();
        let wr = child(&mi, &action, None, now);
        let log = (
            wr.id.clone(),
            WorkRequestLogEntry {
                message: format!("Accepted: {}", describe(&action, &mi.display_name)),
                timestamp: now,
            },
        );
        let record = retry.as_ref().map(|k| k.record(p, &wr.id));
        match self
            .store
            .work_request_submit(std::slice::from_ref(&wr), &[log], record.as_ref())
            .await
        {
            Ok(()) => {
                self.work_signal.notify_waiters();
                Ok(wr.id)
            }
            Err(e) => self.retry_after_race(p, retry.as_ref(), e).await,
        }
    }

    /// Install all updates (of one type) on every member of a group: a parent work request with
    /// one child per member. Returns the parent's id.
    pub async fn group_update_all(
        &self,
        p: &Principal,
        group_id: &str,
        update_type: UpdateType,
        retry: Option<RetryKey>,
    ) -> ApiResult<String> {
        if let Some(id) = self.retry_replay(p, retry.as_ref()).await? {
            return Ok(id);
        }
        let (group, members) = self.group_get(p, group_id).await?;
        if group.lifecycle_state == osm_core::LifecycleState::Deleted {
            return Err(ApiError::not_found("managed instance group", group_id));
        }
        if members.is_empty() {
            // `Conflict`, not `IncorrectState`: waiting does not give the group members, and
            // the oci CLI retries `IncorrectState` for about a minute and a half.
            return Err(ApiError::conflict(format!(
                "managed instance group {} has no members; attach instances first",
                group.display_name
            )));
        }
        let now = Timestamp::now();
        let parent_id = new_ocid(ResourceKind::WorkRequest);
        let mut wrs = Vec::with_capacity(members.len() + 1);
        let mut logs = vec![];
        for m in &members {
            let Some(mi) = self.store.managed_instance_get(&m.id).await? else {
                continue;
            };
            let action = if mi.os_family == OsFamily::Windows {
                WorkAction::InstallAllWindowsUpdates { update_type }
            } else {
                WorkAction::UpdateAll { update_type }
            };
            wrs.push(child(&mi, &action, Some(&parent_id), now));
        }
        let parent = WorkRequest {
            id: parent_id.clone(),
            compartment_id: group.compartment_id.clone(),
            operation_type: OperationType::UpdateAll,
            status: WorkRequestStatus::Accepted,
            description: Some(format!(
                "Install all {} updates on group {}",
                kind(update_type),
                group.display_name
            )),
            message: None,
            managed_instance: None,
            os_family: group.os_family,
            percent_complete: 0.0,
            time_accepted: now,
            time_started: None,
            time_finished: None,
            parent_id: None,
            scheduled_job_id: None,
            resources: vec![WorkRequestResource {
                entity_type: "MANAGED_INSTANCE_GROUP".into(),
                action_type: WorkRequestActionType::InProgress,
                identifier: group.id.clone(),
                name: Some(group.display_name.clone()),
                entity_uri: format!("/20190801/managedInstanceGroups/{}", group.id),
            }],
            children_ids: vec![],
            action: None,
        };
        logs.push((
            parent_id.clone(),
            WorkRequestLogEntry {
                message: format!(
                    "Accepted: one work request for each of the {} members",
                    wrs.len()
                ),
                timestamp: now,
            },
        ));
        wrs.insert(0, parent);
        let record = retry.as_ref().map(|k| k.record(p, &parent_id));
        match self
            .store
            .work_request_submit(&wrs, &logs, record.as_ref())
            .await
        {
            Ok(()) => {
                self.work_signal.notify_waiters();
                Ok(parent_id)
            }
            Err(e) => self.retry_after_race(p, retry.as_ref(), e).await,
        }
    }

    /// Cancels a work request: `ACCEPTED` ends `CANCELED` at once, `IN_PROGRESS` becomes
    /// `CANCELLING` until its agent stops; a parent cancels its unfinished children.
    pub async fn work_request_cancel(&self, p: &Principal, id: &str) -> ApiResult<()> {
        let wr = self.work_request_get(p, id).await?;
        if wr.status.is_terminal() {
            return Err(ApiError::incorrect_state(format!(
                "work request {id} is already {}",
                wr.status
            )));
        }
        let targets = if wr.children_ids.is_empty() {
            vec![wr.id.clone()]
        } else {
            wr.children_ids.clone()
        };
        let now = Timestamp::now();
        for target in targets {
            let result = self
                .store
                .work_request_transition(
                    &target,
                    &[WorkRequestStatus::Accepted],
                    WorkRequestStatus::Canceled,
                    now,
                    Some("Canceled before it started"),
                )
                .await;
            match result {
                Ok(_) => continue,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match self
                .store
                .work_request_transition(
                    &target,
                    &[WorkRequestStatus::InProgress],
                    WorkRequestStatus::Cancelling,
                    now,
                    Some("Cancel requested; the agent stops at the next safe point"),
                )
                .await
            {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
