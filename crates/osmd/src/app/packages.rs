//! Package inventory: agents upload what their host has; operators read installed and
//! installable packages, available updates and Windows updates of the instances they reach.

use jiff::Timestamp;
use osm_core::inventory::{
    InventoryApplied, InventoryUpload, ListedUpdate, Package, Reported, WindowsUpdate,
    WindowsUpdateInfo,
};
use osm_core::page::{Page, PageRequest};
use osm_core::validate::check_package_name;
use osm_store::{PackageList, StoreError, WindowsUpdateFilter};

use super::{App, Principal};
use crate::http::error::{ApiError, ApiResult};

/// What the per-instance lists take besides the instance.
#[derive(Debug, Clone)]
pub struct InstanceListQuery {
    /// Only rows of an instance in this compartment (none otherwise).
    pub compartment_id: Option<String>,
    pub display_name: Option<String>,
    pub page: PageRequest,
}

fn empty<T>() -> Page<T> {
    Page {
        items: vec![],
        next: None,
    }
}

impl App {
    /// Stores an agent's upload for its own instance (checked here: 400 naming the first bad
    /// field, nothing stored).
    pub async fn agent_inventory_upload(
        &self,
        instance_id: &str,
        mut upload: InventoryUpload,
    ) -> ApiResult<InventoryApplied> {
        upload.check().map_err(ApiError::invalid)?;
        let applied = self
            .store
            .inventory_apply(instance_id, &self.tenancy_id, &upload, Timestamp::now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("managed instance", instance_id),
                other => other.into(),
            })?;
        let (mode, outcome) = match (&upload, applied) {
            (InventoryUpload::Full(_), _) => ("full", "stored"),
            (InventoryUpload::Diff(_), InventoryApplied::Stored { .. }) => ("diff", "stored"),
            (InventoryUpload::Diff(_), InventoryApplied::RevisionMismatch { .. }) => {
                ("diff", "revision_mismatch")
            }
        };
        metrics::counter!("osm_inventory_uploads_total", "mode" => mode, "outcome" => outcome)
            .increment(1);
        Ok(applied)
    }

    /// The revision of the inventory osmd holds for the instance (0: none yet).
    pub async fn agent_inventory_revision(&self, instance_id: &str) -> ApiResult<i64> {
        Ok(self
            .store
            .inventory_state(instance_id)
            .await?
            .map_or(0, |s| s.revision))
    }

    /// The instance, if the caller reaches it and it lies in the `compartmentId` asked for.
    async fn inventory_of(
        &self,
        p: &Principal,
        instance_id: &str,
        q: &InstanceListQuery,
    ) -> ApiResult<bool> {
        let mi = self.instance_visible(p, instance_id).await?;
        Ok(q.compartment_id
            .as_deref()
            .is_none_or(|c| c == mi.compartment_id))
    }

    pub async fn instance_packages(
        &self,
        p: &Principal,
        instance_id: &str,
        list: PackageList,
        q: &InstanceListQuery,
    ) -> ApiResult<Page<Reported<Package>>> {
        if !self.inventory_of(p, instance_id, q).await? {
            return Ok(empty());
        }
        Ok(self
            .store
            .instance_package_list(instance_id, list, q.display_name.as_deref(), &q.page)
            .await?)
    }

    pub async fn instance_updates(
        &self,
        p: &Principal,
        instance_id: &str,
        q: &InstanceListQuery,
    ) -> ApiResult<Page<ListedUpdate>> {
        if !self.inventory_of(p, instance_id, q).await? {
            return Ok(empty());
        }
        Ok(self
            .store
            .instance_update_list(instance_id, q.display_name.as_deref(), &q.page)
            .await?)
    }

    pub async fn instance_windows_updates(
        &self,
        p: &Principal,
        instance_id: &str,
        installed: bool,
        q: &InstanceListQuery,
        installable: Option<osm_core::Installable>,
    ) -> ApiResult<Page<Reported<WindowsUpdate>>> {
        if !self.inventory_of(p, instance_id, q).await? {
            return Ok(empty());
        }
        let filter = WindowsUpdateFilter {
            display_name: q.display_name.clone(),
            installable,
        };
        Ok(self
            .store
            .instance_windows_update_list(instance_id, installed, &filter, &q.page)
            .await?)
    }

    /// Windows updates reported by instances in `compartment_id`, or in every compartment the
    /// caller reaches when none is given.
    pub async fn windows_update_list(
        &self,
        p: &Principal,
        compartment_id: Option<&str>,
        filter: &WindowsUpdateFilter,
        page: &PageRequest,
    ) -> ApiResult<Page<WindowsUpdateInfo>> {
        let compartments = match compartment_id {
            Some(c) => {
                self.authorize(p, c)?;
                vec![c.to_string()]
            }
            None => p.reach.iter().cloned().collect(),
        };
        Ok(self
            .store
            .windows_update_list(&compartments, filter, page)
            .await?)
    }

    /// A Windows update some instance the caller reaches reported, or 404.
    pub async fn windows_update_get(
        &self,
        p: &Principal,
        name: &str,
    ) -> ApiResult<WindowsUpdateInfo> {
        let not_found = || ApiError::not_found("Windows update", name);
        check_package_name("windowsUpdate", name).map_err(|_| not_found())?;
        let compartments: Vec<String> = p.reach.iter().cloned().collect();
        self.store
            .windows_update_get(name, &compartments)
            .await?
            .ok_or_else(not_found)
    }
}
