//! Identity: the compartment tree under the tenancy.

use jiff::Timestamp;
use osm_api::{CreateCompartmentDetails, UpdateCompartmentDetails};
use osm_core::enums::{AccessLevel, CompartmentState};
use osm_core::ids::{ResourceKind, check_ocid, new_ocid};
use osm_core::page::{Page, PageRequest};
use osm_core::{Compartment, CompartmentPatch};
use osm_store::{CompartmentFilter, StoreError};

use super::{App, Principal, RetryKey, check_if_match};
use crate::http::error::{ApiError, ApiResult};

/// Compartment names: 1–100 letters, digits, periods, hyphens and underscores (OCI's rule).
fn check_compartment_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "name {name:?} is not valid: use 1 to 100 letters, digits, '.', '-' or '_'"
        )))
    }
}

fn check_compartment_description(description: &str) -> ApiResult<()> {
    if description.trim().is_empty() || description.chars().count() > 400 {
        return Err(ApiError::invalid("description must be 1 to 400 characters"));
    }
    Ok(())
}

pub struct CompartmentListQuery {
    pub filter: CompartmentFilter,
    pub access_level: AccessLevel,
}

impl App {
    /// A compartment or the tenancy, if the caller reaches it or one of its descendants.
    pub async fn compartment_get(&self, p: &Principal, id: &str) -> ApiResult<Compartment> {
        let not_found = || ApiError::not_found("compartment", id);
        if !(p.reaches(id) || p.ancestors.contains(id)) {
            return Err(not_found());
        }
        self.store.compartment_get(id).await?.ok_or_else(not_found)
    }

    pub async fn compartment_list(
        &self,
        p: &Principal,
        q: &CompartmentListQuery,
        page: &PageRequest,
    ) -> ApiResult<Page<Compartment>> {
        let parent = &q.filter.parent_id;
        if !(p.reaches(parent) || p.ancestors.contains(parent)) {
            return Err(ApiError::not_found("compartment", parent));
        }
        if q.filter.in_subtree && *parent != self.tenancy_id {
            return Err(ApiError::invalid(
                "compartmentIdInSubtree=true is only allowed when compartmentId is the tenancy",
            ));
        }
        let everything_visible = p.reaches(parent);
        if everything_visible {
            return Ok(self.store.compartment_list(&q.filter, page).await?);
        }
        // The caller sees only the branches that lead to what it was granted; filter after
        // reading every row, then page in memory (such callers see few compartments).
        let all = self
            .store
            .compartment_list(
                &q.filter,
                &PageRequest {
                    limit: None,
                    after: None,
                    ..page.clone()
                },
            )
            .await?;
        let visible: Vec<Compartment> = all
            .items
            .into_iter()
            .filter(|c| p.reaches(&c.id) || p.ancestors.contains(&c.id))
            .collect();
        let start = match &page.after {
            Some(cursor) => visible
                .iter()
                .position(|c| c.id == cursor.id)
                .map_or(visible.len(), |i| i + 1),
            None => 0,
        };
        let rest: Vec<Compartment> = visible.into_iter().skip(start).collect();
        Ok(Page::from_rows(rest, page, |c| {
            let key = match page.sort {
                osm_core::page::SortKey::TimeCreated => {
                    osm_core::page::KeyValue::Micros(osm_core::time::to_micros(c.time_created))
                }
                osm_core::page::SortKey::Name => osm_core::page::KeyValue::Text(c.name.clone()),
            };
            (key, c.id.clone())
        }))
    }

    pub async fn compartment_create(
        &self,
        p: &Principal,
        details: CreateCompartmentDetails,
        retry: Option<RetryKey>,
    ) -> ApiResult<Compartment> {
        if let Some(id) = self.retry_replay(p, retry.as_ref()).await? {
            return self.compartment_get(p, &id).await;
        }
        let parent = details
            .compartment_id
            .ok_or_else(|| ApiError::missing("compartmentId"))?;
        check_ocid("compartmentId", &parent).map_err(|e| ApiError::invalid(e.to_string()))?;
        let name = details.name.ok_or_else(|| ApiError::missing("name"))?;
        check_compartment_name(&name)?;
        let description = details
            .description
            .ok_or_else(|| ApiError::missing("description"))?;
        check_compartment_description(&description)?;
        self.authorize(p, &parent)?;
        let compartment = Compartment {
            id: new_ocid(ResourceKind::Compartment),
            parent_id: Some(parent),
            name,
            description,
            lifecycle_state: CompartmentState::Active,
            time_created: Timestamp::now(),
            freeform_tags: details.freeform_tags.unwrap_or_default(),
            defined_tags: details.defined_tags.unwrap_or_default(),
            version: 1,
        };
        let record = retry.as_ref().map(|k| k.record(p, &compartment.id));
        match self
            .store
            .compartment_create(&compartment, record.as_ref())
            .await
        {
            Ok(()) => {
                self.invalidate_tree();
                Ok(compartment)
            }
            Err(StoreError::Conflict(_)) => Err(ApiError::already_exists(format!(
                "a compartment named {:?} already exists in this parent",
                compartment.name
            ))),
            Err(e @ StoreError::RetryTokenUsed) => {
                let id = self.retry_after_race(p, retry.as_ref(), e).await?;
                self.invalidate_tree();
                self.compartment_get(p, &id).await
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn compartment_update(
        &self,
        p: &Principal,
        id: &str,
        details: UpdateCompartmentDetails,
        if_match: Option<&str>,
    ) -> ApiResult<Compartment> {
        if let Some(name) = &details.name {
            check_compartment_name(name)?;
        }
        if let Some(d) = &details.description {
            check_compartment_description(d)?;
        }
        let current = self.compartment_get(p, id).await?;
        if !p.reaches(id) {
            return Err(ApiError::not_found("compartment", id));
        }
        if current.lifecycle_state == CompartmentState::Deleted {
            return Err(ApiError::incorrect_state(format!(
                "compartment {id} is deleted"
            )));
        }
        let expected = check_if_match(if_match, "compartment", id, current.version)?;
        let patch = CompartmentPatch {
            name: details.name,
            description: details.description,
            freeform_tags: details.freeform_tags,
            defined_tags: details.defined_tags,
        };
        match self.store.compartment_update(id, &patch, expected).await {
            Ok(c) => Ok(c),
            Err(StoreError::Conflict(_)) => Err(ApiError::already_exists(
                "a compartment with that name already exists in this parent",
            )),
            Err(StoreError::VersionMismatch) => Err(ApiError::no_etag_match("compartment", id)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn compartment_delete(
        &self,
        p: &Principal,
        id: &str,
        if_match: Option<&str>,
    ) -> ApiResult<()> {
        if id == self.tenancy_id {
            return Err(ApiError::conflict(
                "the tenancy (root compartment) cannot be deleted",
            ));
        }
        let current = self.compartment_get(p, id).await?;
        if !p.reaches(id) {
            return Err(ApiError::not_found("compartment", id));
        }
        if current.lifecycle_state == CompartmentState::Deleted {
            return Ok(());
        }
        let expected = check_if_match(if_match, "compartment", id, current.version)?;
        match self.store.compartment_delete(id, expected).await {
            Ok(()) => {
                self.invalidate_tree();
                Ok(())
            }
            Err(StoreError::VersionMismatch) => Err(ApiError::no_etag_match("compartment", id)),
            Err(StoreError::Conflict(m)) => Err(ApiError::conflict(format!(
                "compartment {id} cannot be deleted: {m}"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

impl App {
    /// Authorises the caller on a compartment that must exist and be active (the target of a
    /// create or a move).
    pub async fn active_compartment(&self, p: &Principal, id: &str) -> ApiResult<()> {
        self.authorize(p, id)?;
        match self.store.compartment_get(id).await? {
            Some(c) if c.lifecycle_state == CompartmentState::Active => Ok(()),
            Some(_) => Err(ApiError::incorrect_state(format!(
                "compartment {id} is not active"
            ))),
            None => Err(ApiError::not_found("compartment", id)),
        }
    }
}
