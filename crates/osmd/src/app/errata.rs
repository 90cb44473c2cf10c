//! Errata: the catalogue of advisories (what agents report and imported OSV records make),
//! which of them apply to an instance, and the OSV import (API and `errata_dir`).
//!
//! Who sees what: the catalogue lives in the tenancy. A caller who reaches the tenancy sees
//! every entry; a caller who reaches only some compartments sees the entries that apply to an
//! instance there. `affectedInstances` lists only instances the caller reaches. Anything else
//! answers 404.

use std::path::Path;

use jiff::Timestamp;
use osm_core::errata::{ErratumDetails, ErratumInfo, ImportRecord, ImportSummary, read_osv_files};
use osm_core::ids::check_ocid;
use osm_core::page::{Page, PageRequest};
use osm_store::{ErratumFilter, Store, StoreError};

use super::packages::InstanceListQuery;
use super::{App, Principal};
use crate::http::error::{ApiError, ApiResult};

/// The filters of `ListErrata`.
#[derive(Debug, Clone, Default)]
pub struct ErratumListQuery {
    pub compartment_id: Option<String>,
    pub erratum_id: Option<String>,
    pub advisory_name: Option<String>,
    pub issued_from: Option<Timestamp>,
    pub issued_to: Option<Timestamp>,
}

/// Reads every `*.json` file of `dir` (in name order) as one OSV record each, through the
/// reader `osmctl errata import` uses too ([`osm_core::errata::read_osv_files`]). The first bad
/// file stops it: `FILE:LINE:COLUMN: what is wrong`.
pub fn read_osv_dir(dir: &Path) -> Result<Vec<ImportRecord>, String> {
    let listing: std::io::Result<Vec<std::path::PathBuf>> =
        std::fs::read_dir(dir).and_then(|entries| entries.map(|e| e.map(|e| e.path())).collect());
    read_osv_files(dir, listing, |p| std::fs::read_to_string(p))
}

/// Imports the OSV files of `dir` into the tenancy's catalogue, all or none (osmd start).
pub async fn import_dir(
    store: &dyn Store,
    tenancy_id: &str,
    dir: &Path,
) -> anyhow::Result<ImportSummary> {
    let records = read_osv_dir(dir).map_err(anyhow::Error::msg)?;
    let summary = store
        .errata_import(tenancy_id, &records, Timestamp::now())
        .await
        .map_err(|e| anyhow::anyhow!("storing the OSV records of {}: {e}", dir.display()))?;
    Ok(summary)
}

impl App {
    /// The visibility of catalogue entries for `p`, narrowed to `compartment_id` (404 when the
    /// caller does not reach it).
    fn errata_scope(
        &self,
        p: &Principal,
        compartment_id: Option<&str>,
    ) -> ApiResult<ErratumFilter> {
        let compartments: Vec<String> = match compartment_id {
            Some(c) => {
                self.authorize(p, c)?;
                vec![c.to_string()]
            }
            None => {
                let mut all: Vec<String> = p.reach.iter().cloned().collect();
                all.sort();
                all
            }
        };
        Ok(ErratumFilter {
            catalogue_in: compartments.clone(),
            applying_in: compartments,
            ..Default::default()
        })
    }

    pub async fn erratum_list(
        &self,
        p: &Principal,
        q: &ErratumListQuery,
        page: &PageRequest,
    ) -> ApiResult<Page<ErratumInfo>> {
        if let (Some(from), Some(to)) = (q.issued_from, q.issued_to)
            && from > to
        {
            return Err(ApiError::invalid(
                "timeIssueDateStart is after timeIssueDateEnd; give a start at or before the end",
            ));
        }
        let filter = ErratumFilter {
            erratum_id: q.erratum_id.clone(),
            advisory_name: q.advisory_name.clone(),
            issued_from: q.issued_from,
            issued_to: q.issued_to,
            ..self.errata_scope(p, q.compartment_id.as_deref())?
        };
        Ok(self.store.erratum_list(&filter, page).await?)
    }

    /// An erratum the caller may see, or 404.
    pub async fn erratum_get(&self, p: &Principal, id: &str) -> ApiResult<ErratumDetails> {
        let not_found = || ApiError::not_found("erratum", id);
        check_ocid("erratumId", id).map_err(|_| not_found())?;
        let scope = self.errata_scope(p, None)?;
        self.store
            .erratum_get(id, &scope)
            .await?
            .ok_or_else(not_found)
    }

    /// The errata that apply to an instance the caller reaches (404 otherwise); none when
    /// `compartmentId` is not the instance's.
    pub async fn instance_errata(
        &self,
        p: &Principal,
        instance_id: &str,
        q: &InstanceListQuery,
    ) -> ApiResult<Page<ErratumInfo>> {
        let mi = self.instance_visible(p, instance_id).await?;
        if q.compartment_id
            .as_deref()
            .is_some_and(|c| c != mi.compartment_id)
        {
            return Ok(Page {
                items: vec![],
                next: None,
            });
        }
        Ok(self
            .store
            .instance_errata_list(instance_id, q.display_name.as_deref(), &q.page)
            .await?)
    }

    /// Whether `p` may import OSV records: the catalogue and every instance's updates change,
    /// so the caller must reach the tenancy (404 otherwise). The handler asks before it reads
    /// the body, so a caller who may not import learns nothing from a parse error.
    pub fn errata_import_allowed(&self, p: &Principal) -> ApiResult<()> {
        self.authorize(p, &self.tenancy_id)
    }

    /// Imports checked OSV records into the catalogue, all or none (see
    /// [`Self::errata_import_allowed`], checked again here).
    pub async fn errata_import(
        &self,
        p: &Principal,
        records: &[ImportRecord],
    ) -> ApiResult<ImportSummary> {
        self.errata_import_allowed(p)?;
        let summary = self
            .store
            .errata_import(&self.tenancy_id, records, Timestamp::now())
            .await
            .map_err(|e| match e {
                StoreError::MissingReference(m) => ApiError::related_not_found(m),
                other => other.into(),
            })?;
        metrics::counter!("osm_errata_imported_records_total")
            .increment((summary.created + summary.updated) as u64);
        Ok(summary)
    }
}
