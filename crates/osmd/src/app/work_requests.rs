//! Work requests: read-only here; the engine that creates and runs them is elsewhere.

use osm_core::ids::check_ocid;
use osm_core::page::{Page, PageRequest};
use osm_core::{WorkRequest, WorkRequestError, WorkRequestLogEntry};
use osm_store::WorkRequestFilter;

use super::{App, Principal};
use crate::http::error::{ApiError, ApiResult};

const WHAT: &str = "work request";

impl App {
    pub async fn work_request_get(&self, p: &Principal, id: &str) -> ApiResult<WorkRequest> {
        check_ocid("workRequestId", id).map_err(|_| ApiError::not_found(WHAT, id))?;
        match self.store.work_request_get(id).await? {
            Some(wr) if p.reaches(&wr.compartment_id) => Ok(wr),
            _ => Err(ApiError::not_found(WHAT, id)),
        }
    }

    pub async fn work_request_list(
        &self,
        p: &Principal,
        filter: &WorkRequestFilter,
        page: &PageRequest,
    ) -> ApiResult<Page<WorkRequest>> {
        self.authorize(p, &filter.compartment_id)?;
        Ok(self.store.work_request_list(filter, page).await?)
    }

    pub async fn work_request_logs(
        &self,
        p: &Principal,
        id: &str,
        page: &PageRequest,
    ) -> ApiResult<Page<WorkRequestLogEntry>> {
        self.work_request_get(p, id).await?;
        Ok(self.store.work_request_logs(id, page).await?)
    }

    pub async fn work_request_errors(
        &self,
        p: &Principal,
        id: &str,
        page: &PageRequest,
    ) -> ApiResult<Page<WorkRequestError>> {
        self.work_request_get(p, id).await?;
        Ok(self.store.work_request_errors(id, page).await?)
    }
}
