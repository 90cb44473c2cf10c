//! Managed instance groups and their membership.

use jiff::Timestamp;
use osm_api::{CreateManagedInstanceGroupDetails, UpdateManagedInstanceGroupDetails};
use osm_core::enums::{LifecycleState, OsFamily};
use osm_core::ids::{ResourceKind, check_ocid, new_ocid};
use osm_core::page::{Page, PageRequest};
use osm_core::validate::{check_description, check_name};
use osm_core::{IdName, ManagedInstanceGroup, ManagedInstanceGroupPatch};
use osm_store::{GroupFilter, StoreError};

use super::{App, Principal, RetryKey, check_if_match};
use crate::http::error::{ApiError, ApiResult};

const WHAT: &str = "managed instance group";

impl App {
    pub async fn group_get(
        &self,
        p: &Principal,
        id: &str,
    ) -> ApiResult<(ManagedInstanceGroup, Vec<IdName>)> {
        let group = self.group_visible(p, id).await?;
        let members = self.store.managed_instance_group_members(id).await?;
        Ok((group, members))
    }

    /// The group if it exists and lies in the caller's reach; 404 otherwise.
    async fn group_visible(&self, p: &Principal, id: &str) -> ApiResult<ManagedInstanceGroup> {
        check_ocid("managedInstanceGroupId", id).map_err(|_| ApiError::not_found(WHAT, id))?;
        match self.store.managed_instance_group_get(id).await? {
            Some(g) if p.reaches(&g.compartment_id) => Ok(g),
            _ => Err(ApiError::not_found(WHAT, id)),
        }
    }

    async fn group_live(&self, p: &Principal, id: &str) -> ApiResult<ManagedInstanceGroup> {
        let g = self.group_visible(p, id).await?;
        if g.lifecycle_state == LifecycleState::Deleted {
            return Err(ApiError::not_found(WHAT, id));
        }
        Ok(g)
    }

    pub async fn group_list(
        &self,
        p: &Principal,
        filter: &GroupFilter,
        page: &PageRequest,
    ) -> ApiResult<Page<ManagedInstanceGroup>> {
        self.authorize(p, &filter.compartment_id)?;
        Ok(self.store.managed_instance_group_list(filter, page).await?)
    }

    pub async fn group_create(
        &self,
        p: &Principal,
        details: CreateManagedInstanceGroupDetails,
        retry: Option<RetryKey>,
    ) -> ApiResult<(ManagedInstanceGroup, Vec<IdName>)> {
        if let Some(id) = self.retry_replay(p, retry.as_ref()).await? {
            return self.group_get(p, &id).await;
        }
        let compartment_id = details
            .compartment_id
            .ok_or_else(|| ApiError::missing("compartmentId"))?;
        check_ocid("compartmentId", &compartment_id)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let display_name = details
            .display_name
            .ok_or_else(|| ApiError::missing("displayName"))?;
        check_name("displayName", &display_name).map_err(ApiError::invalid)?;
        if let Some(d) = &details.description {
            check_description("description", d).map_err(ApiError::invalid)?;
        }
        self.active_compartment(p, &compartment_id).await?;
        let group = ManagedInstanceGroup {
            id: new_ocid(ResourceKind::ManagedInstanceGroup),
            compartment_id,
            display_name,
            description: details.description,
            os_family: details.os_family.unwrap_or(OsFamily::Linux),
            lifecycle_state: LifecycleState::Active,
            freeform_tags: details.freeform_tags.unwrap_or_default(),
            defined_tags: details.defined_tags.unwrap_or_default(),
            time_created: Timestamp::now(),
            version: 1,
            member_count: 0,
        };
        let record = retry.as_ref().map(|k| k.record(p, &group.id));
        match self
            .store
            .managed_instance_group_create(&group, record.as_ref())
            .await
        {
            Ok(()) => Ok((group, vec![])),
            Err(e) => {
                let id = self.retry_after_race(p, retry.as_ref(), e).await?;
                self.group_get(p, &id).await
            }
        }
    }

    pub async fn group_update(
        &self,
        p: &Principal,
        id: &str,
        details: UpdateManagedInstanceGroupDetails,
        if_match: Option<&str>,
    ) -> ApiResult<(ManagedInstanceGroup, Vec<IdName>)> {
        if let Some(n) = &details.display_name {
            check_name("displayName", n).map_err(ApiError::invalid)?;
        }
        if let Some(d) = &details.description {
            check_description("description", d).map_err(ApiError::invalid)?;
        }
        let current = self.group_live(p, id).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        let patch = ManagedInstanceGroupPatch {
            display_name: details.display_name,
            description: details.description,
            freeform_tags: details.freeform_tags,
            defined_tags: details.defined_tags,
        };
        let group = self
            .store
            .managed_instance_group_update(id, &patch, expected)
            .await
            .map_err(|e| version_error(e, id))?;
        let members = self.store.managed_instance_group_members(id).await?;
        Ok((group, members))
    }

    pub async fn group_delete(
        &self,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
    ) -> ApiResult<()> {
        let current = self.group_live(p, id).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        self.store
            .managed_instance_group_delete(id, expected)
            .await
            .map_err(|e| version_error(e, id))
    }

    pub async fn group_change_compartment(
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
        let current = self.group_live(p, id).await?;
        self.active_compartment(p, &target).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        let record = retry.as_ref().map(|k| k.record(p, id));
        match self
            .store
            .managed_instance_group_change_compartment(id, &target, expected, record.as_ref())
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

    /// Attach (`attach = true`) or detach an instance.
    pub async fn group_membership(
        &self,
        p: &Principal,
        group_id: &str,
        instance_id: &str,
        attach: bool,
        retry: Option<RetryKey>,
    ) -> ApiResult<()> {
        if self.retry_replay(p, retry.as_ref()).await?.is_some() {
            return Ok(());
        }
        self.group_live(p, group_id).await?;
        check_ocid("managedInstanceId", instance_id)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        match self.store.managed_instance_get(instance_id).await? {
            Some(mi) if p.reaches(&mi.compartment_id) => {}
            _ => {
                return Err(ApiError::related_not_found(format!(
                    "managed instance {instance_id} does not exist or you are not authorized to access it"
                )));
            }
        }
        let record = retry.as_ref().map(|k| k.record(p, group_id));
        let result = if attach {
            self.store
                .managed_instance_group_attach(group_id, instance_id, record.as_ref())
                .await
        } else {
            self.store
                .managed_instance_group_detach(group_id, instance_id, record.as_ref())
                .await
        };
        match result {
            Ok(()) => Ok(()),
            Err(e @ StoreError::RetryTokenUsed) => self
                .retry_after_race(p, retry.as_ref(), e)
                .await
                .map(|_| ()),
            Err(StoreError::Conflict(m)) => Err(ApiError::conflict(m)),
            Err(StoreError::MissingReference(m)) => Err(ApiError::related_not_found(m)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Store errors of a version-guarded change to `id`, in the caller's words.
pub(crate) fn version_error(e: StoreError, id: &str) -> ApiError {
    match e {
        StoreError::VersionMismatch => ApiError::no_etag_match("resource", id),
        StoreError::NotFound => ApiError::not_found("resource", id),
        other => other.into(),
    }
}
