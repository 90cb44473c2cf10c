//! Managed instances: read and the two fields `UpdateManagedInstance` may change. Instances
//! are created by agent enrolment, not through this API.

use osm_api::UpdateManagedInstanceDetails;
use osm_core::ids::check_ocid;
use osm_core::page::{Page, PageRequest};
use osm_core::{IdName, ManagedInstance, ManagedInstancePatch};
use osm_store::ManagedInstanceFilter;

use super::groups::version_error;
use super::{App, Principal, check_if_match};
use crate::http::error::{ApiError, ApiResult};

const WHAT: &str = "managed instance";

/// A managed instance with what its detailed view shows beside it.
pub struct InstanceView {
    pub instance: ManagedInstance,
    pub groups: Vec<IdName>,
    pub scheduled_job_count: i64,
    pub work_request_count: i64,
}

impl App {
    pub(super) async fn instance_visible(
        &self,
        p: &Principal,
        id: &str,
    ) -> ApiResult<ManagedInstance> {
        check_ocid("managedInstanceId", id).map_err(|_| ApiError::not_found(WHAT, id))?;
        match self.store.managed_instance_get(id).await? {
            Some(mi) if p.reaches(&mi.compartment_id) => Ok(mi),
            _ => Err(ApiError::not_found(WHAT, id)),
        }
    }

    async fn instance_view(&self, mut instance: ManagedInstance) -> ApiResult<InstanceView> {
        instance.status = instance.status_at(jiff::Timestamp::now());
        let groups = self.store.managed_instance_groups_of(&instance.id).await?;
        let (scheduled_job_count, work_request_count) =
            self.store.managed_instance_counts(&instance.id).await?;
        Ok(InstanceView {
            instance,
            groups,
            scheduled_job_count,
            work_request_count,
        })
    }

    pub async fn instance_get(&self, p: &Principal, id: &str) -> ApiResult<InstanceView> {
        let instance = self.instance_visible(p, id).await?;
        self.instance_view(instance).await
    }

    pub async fn instance_list(
        &self,
        p: &Principal,
        filter: &ManagedInstanceFilter,
        page: &PageRequest,
    ) -> ApiResult<Page<ManagedInstance>> {
        self.authorize(p, &filter.compartment_id)?;
        let now = jiff::Timestamp::now();
        Ok(self
            .store
            .managed_instance_list(filter, page)
            .await?
            .map(|mut mi| {
                mi.status = mi.status_at(now);
                mi
            }))
    }

    pub async fn instance_update(
        &self,
        p: &Principal,
        id: &str,
        details: UpdateManagedInstanceDetails,
        if_match: Option<&str>,
    ) -> ApiResult<InstanceView> {
        if let Some(topic) = &details.notification_topic_id {
            check_ocid("notificationTopicId", topic)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        let current = self.instance_visible(p, id).await?;
        let expected = check_if_match(if_match, WHAT, id, current.version)?;
        let patch = ManagedInstancePatch {
            notification_topic_id: details.notification_topic_id,
            is_data_collection_authorized: details.is_data_collection_authorized,
        };
        let updated = self
            .store
            .managed_instance_update(id, &patch, expected)
            .await
            .map_err(|e| version_error(e, id))?;
        self.instance_view(updated).await
    }
}
