//! Scheduled jobs: definition, validation and targets. Firing them is the scheduler's job.

use jiff::Timestamp;
use osm_api::{CreateScheduledJobDetails, UpdateScheduledJobDetails};
use osm_core::enums::{LifecycleState, OsFamily, ScheduleType};
use osm_core::ids::{ResourceKind, check_ocid, new_ocid};
use osm_core::page::{Page, PageRequest};
use osm_core::validate::{check_scheduled_job, parse_interval_value};
use osm_core::{IdName, ScheduledJob, ScheduledJobPatch};
use osm_store::{ScheduledJobFilter, StoreError};

use super::groups::version_error;
use super::{App, Principal, RetryKey, check_if_match};
use crate::http::error::{ApiError, ApiResult};

const WHAT: &str = "scheduled job";

impl App {
    async fn job_visible(&self, p: &Principal, id: &str) -> ApiResult<ScheduledJob> {
        check_ocid("scheduledJobId", id).map_err(|_| ApiError::not_found(WHAT, id))?;
        match self.store.scheduled_job_get(id).await? {
            Some(j) if p.reaches(&j.compartment_id) => Ok(j),
            _ => Err(ApiError::not_found(WHAT, id)),
        }
    }

    async fn job_live(&self, p: &Principal, id: &str) -> ApiResult<ScheduledJob> {
        let job = self.job_visible(p, id).await?;
        if job.lifecycle_state == LifecycleState::Deleted {
            return Err(ApiError::not_found(WHAT, id));
        }
        Ok(job)
    }

    /// The job with the work requests its occurrences created.
    pub async fn job_get(&self, p: &Principal, id: &str) -> ApiResult<(ScheduledJob, Vec<IdName>)> {
        let job = self.job_visible(p, id).await?;
        let wrs = self.store.scheduled_job_work_requests(id).await?;
        Ok((job, wrs))
    }

    pub async fn job_list(
        &self,
        p: &Principal,
        filter: &ScheduledJobFilter,
        page: &PageRequest,
    ) -> ApiResult<Page<ScheduledJob>> {
        self.authorize(p, &filter.compartment_id)?;
        Ok(self.store.scheduled_job_list(filter, page).await?)
    }

    /// Resolves targets to existing, reachable instances and live groups, with their names.
    async fn resolve_targets(
        &self,
        p: &Principal,
        instances: &[IdName],
        groups: &[IdName],
    ) -> ApiResult<(Vec<IdName>, Vec<IdName>)> {
        let mut resolved_instances = Vec::with_capacity(instances.len());
        for t in instances {
            check_ocid("managedInstances.id", &t.id)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            match self.store.managed_instance_get(&t.id).await? {
                Some(mi) if p.reaches(&mi.compartment_id) => resolved_instances.push(IdName {
                    id: mi.id,
                    display_name: mi.display_name,
                }),
                _ => {
                    return Err(ApiError::related_not_found(format!(
                        "managed instance {} does not exist or you are not authorized to access it",
                        t.id
                    )));
                }
            }
        }
        let mut resolved_groups = Vec::with_capacity(groups.len());
        for t in groups {
            check_ocid("managedInstanceGroups.id", &t.id)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            match self.store.managed_instance_group_get(&t.id).await? {
                Some(g)
                    if p.reaches(&g.compartment_id)
                        && g.lifecycle_state != LifecycleState::Deleted =>
                {
                    resolved_groups.push(IdName {
                        id: g.id,
                        display_name: g.display_name,
                    })
                }
                _ => {
                    return Err(ApiError::related_not_found(format!(
                        "managed instance group {} does not exist or you are not authorized to access it",
                        t.id
                    )));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = resolved_instances
            .iter()
            .chain(&resolved_groups)
            .find(|t| !seen.insert(t.id.clone()))
        {
            return Err(ApiError::invalid(format!(
                "target {} is listed more than once",
                dup.id
            )));
        }
        Ok((resolved_instances, resolved_groups))
    }

    pub async fn job_create(
        &self,
        p: &Principal,
        d: CreateScheduledJobDetails,
        retry: Option<RetryKey>,
    ) -> ApiResult<(ScheduledJob, Vec<IdName>)> {
        if let Some(id) = self.retry_replay(p, retry.as_ref()).await? {
            return self.job_get(p, &id).await;
        }
        let now = Timestamp::now();
        let compartment_id = d
            .compartment_id
            .ok_or_else(|| ApiError::missing("compartmentId"))?;
        check_ocid("compartmentId", &compartment_id)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let job = ScheduledJob {
            id: new_ocid(ResourceKind::ScheduledJob),
            compartment_id,
            display_name: d
                .display_name
                .ok_or_else(|| ApiError::missing("displayName"))?,
            description: d.description,
            schedule_type: d
                .schedule_type
                .ok_or_else(|| ApiError::missing("scheduleType"))?,
            time_next_execution: Some(
                d.time_next_execution
                    .ok_or_else(|| ApiError::missing("timeNextExecution"))?,
            ),
            time_last_execution: None,
            interval_type: d.interval_type,
            interval_value: d
                .interval_value
                .as_deref()
                .map(parse_interval_value)
                .transpose()
                .map_err(ApiError::invalid)?,
            managed_instances: ids(d.managed_instances)?,
            managed_instance_groups: ids(d.managed_instance_groups)?,
            operation_type: d
                .operation_type
                .ok_or_else(|| ApiError::missing("operationType"))?,
            update_type: d.update_type,
            package_names: d
                .package_names
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.name.ok_or_else(|| ApiError::missing("packageNames.name")))
                .collect::<ApiResult<_>>()?,
            update_names: d.update_names.unwrap_or_default(),
            lifecycle_state: LifecycleState::Active,
            freeform_tags: d.freeform_tags.unwrap_or_default(),
            defined_tags: d.defined_tags.unwrap_or_default(),
            os_family: d.os_family.unwrap_or(OsFamily::Linux),
            is_restricted: false,
            time_zone: d.time_zone,
            time_created: now,
            version: 1,
        };
        let mut job = normalise(job);
        check_scheduled_job(&job, true, now).map_err(ApiError::invalid)?;
        self.active_compartment(p, &job.compartment_id).await?;
        let (instances, groups) = self
            .resolve_targets(p, &job.managed_instances, &job.managed_instance_groups)
            .await?;
        job.managed_instances = instances;
        job.managed_instance_groups = groups;
        let record = retry.as_ref().map(|k| k.record(p, &job.id));
        match self.store.scheduled_job_create(&job, record.as_ref()).await {
            Ok(()) => {
                self.scheduler_wake.notify_one();
                Ok((job, vec![]))
            }
            Err(StoreError::MissingReference(m)) => Err(ApiError::related_not_found(m)),
            Err(e) => {
                let id = self.retry_after_race(p, retry.as_ref(), e).await?;
                self.job_get(p, &id).await
            }
        }
    }

    pub async fn job_update(
        &self,
        p: &Principal,
        id: &str,
        d: UpdateScheduledJobDetails,
        if_match: Option<&str>,
    ) -> ApiResult<(ScheduledJob, Vec<IdName>)> {
        let patch = ScheduledJobPatch {
            display_name: d.display_name,
            description: d.description,
            schedule_type: d.schedule_type,
            time_next_execution: d.time_next_execution,
            interval_type: d.interval_type,
            interval_value: d
                .interval_value
                .as_deref()
                .map(parse_interval_value)
                .transpose()
                .map_err(ApiError::invalid)?,
            operation_type: d.operation_type,
            update_type: d.update_type,
            package_names: d
                .package_names
                .map(|names| {
                    names
                        .into_iter()
                        .map(|p| p.name.ok_or_else(|| ApiError::missing("packageNames.name")))
                        .collect::<ApiResult<Vec<_>>>()
                })
                .transpose()?,
            update_names: d.update_names,
            freeform_tags: d.freeform_tags,
            defined_tags: d.defined_tags,
            time_zone: d.time_zone,
        };
        let current = self.job_live(p, id).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        let job = normalise(current.patched(&patch));
        let time_changed = patch.time_next_execution.is_some();
        check_scheduled_job(&job, time_changed, Timestamp::now()).map_err(ApiError::invalid)?;
        let job = self
            .store
            .scheduled_job_replace(&job, Some(expected.unwrap_or(current.version)))
            .await
            .map_err(|e| match (e, expected) {
                // Without if-match a concurrent change is reported as a conflict to retry.
                (StoreError::VersionMismatch, None) => ApiError::conflict(format!(
                    "scheduled job {id} was changed by another request; retry"
                )),
                (e, _) => version_error(e, id),
            })?;
        self.scheduler_wake.notify_one();
        let wrs = self.store.scheduled_job_work_requests(id).await?;
        Ok((job, wrs))
    }

    pub async fn job_delete(
        &self,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
    ) -> ApiResult<()> {
        let current = self.job_live(p, id).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        self.store
            .scheduled_job_delete(id, expected)
            .await
            .map_err(|e| version_error(e, id))
    }

    /// Fires an extra occurrence now; the recurrence stays as it is.
    pub async fn job_run_now(
        &self,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
        retry: Option<RetryKey>,
    ) -> ApiResult<osm_core::Occurrence> {
        let current = self.job_live(p, id).await?;
        check_if_match(if_match, WHAT, id, current.version)?;
        if self.retry_replay(p, retry.as_ref()).await?.is_some() {
            return Ok(osm_core::Occurrence {
                job_id: id.into(),
                time: Timestamp::now(),
                outcome: osm_core::OccurrenceOutcome::RunNow,
                work_request_ids: vec![],
            });
        }
        let record = retry.as_ref().map(|k| k.record(p, id));
        match self
            .store
            .scheduled_job_run_now(id, Timestamp::now(), record.as_ref())
            .await
        {
            Ok(o) => Ok(o),
            Err(StoreError::Conflict(m)) => Err(ApiError::incorrect_state(m)),
            Err(e @ StoreError::RetryTokenUsed) => {
                self.retry_after_race(p, retry.as_ref(), e).await?;
                Ok(osm_core::Occurrence {
                    job_id: id.into(),
                    time: Timestamp::now(),
                    outcome: osm_core::OccurrenceOutcome::RunNow,
                    work_request_ids: vec![],
                })
            }
            Err(e) => Err(version_error(e, id)),
        }
    }

    /// Skips the next occurrence of a recurring job (409 for a one-time job).
    pub async fn job_skip_next(
        &self,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
        retry: Option<RetryKey>,
    ) -> ApiResult<()> {
        let current = self.job_live(p, id).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        if self.retry_replay(p, retry.as_ref()).await?.is_some() {
            return Ok(());
        }
        let record = retry.as_ref().map(|k| k.record(p, id));
        match self
            .store
            .scheduled_job_skip_next(id, Timestamp::now(), expected, record.as_ref())
            .await
        {
            Ok(_) => {
                self.scheduler_wake.notify_one();
                Ok(())
            }
            // A one-time job (or one without a next run) never becomes skippable: `Conflict`,
            // which no client retries. `IncorrectState` would make the oci SDK's default retry
            // strategy, and so the oci CLI, repeat the call for about a minute and a half.
            Err(StoreError::Conflict(m)) => Err(ApiError::conflict(m)),
            Err(e @ StoreError::RetryTokenUsed) => self
                .retry_after_race(p, retry.as_ref(), e)
                .await
                .map(|_| ()),
            Err(e) => Err(version_error(e, id)),
        }
    }

    pub async fn job_change_compartment(
        &self,
        p: &Principal,
        id: &str,
        compartment_id: Option<String>,
        if_match: Option<&str>,
        retry: Option<RetryKey>,
    ) -> ApiResult<()> {
        if self.retry_replay(p, retry.as_ref()).await?.is_some() {
            return Ok(());
        }
        let target = compartment_id.ok_or_else(|| ApiError::missing("compartmentId"))?;
        check_ocid("compartmentId", &target).map_err(|e| ApiError::invalid(e.to_string()))?;
        let current = self.job_live(p, id).await?;
        self.active_compartment(p, &target).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        let record = retry.as_ref().map(|k| k.record(p, id));
        match self
            .store
            .scheduled_job_change_compartment(id, &target, expected, record.as_ref())
            .await
        {
            Ok(()) => Ok(()),
            Err(e @ StoreError::RetryTokenUsed) => self
                .retry_after_race(p, retry.as_ref(), e)
                .await
                .map(|_| ()),
            Err(e) => Err(version_error(e, id)),
        }
    }
}

/// A ONETIME job carries no interval.
fn normalise(mut job: ScheduledJob) -> ScheduledJob {
    if job.schedule_type == ScheduleType::Onetime {
        job.interval_type = None;
        job.interval_value = None;
    }
    job
}

fn ids(list: Option<Vec<osm_api::Id>>) -> ApiResult<Vec<IdName>> {
    list.unwrap_or_default()
        .into_iter()
        .map(|i| {
            Ok(IdName {
                id: i.id.ok_or_else(|| ApiError::missing("id of a target"))?,
                display_name: i.display_name.unwrap_or_default(),
            })
        })
        .collect()
}
