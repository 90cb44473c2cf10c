//! OS Management 20190801: work requests, their logs and errors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use osm_store::WorkRequestFilter;

use super::error::ApiResult;
use super::extract::Query;
use super::{AppState, list_response, resource_response};
use crate::app::{Principal, etag};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/20190801/workRequests", get(list))
        .route(
            "/20190801/workRequests/{work_request_id}",
            get(read).delete(cancel),
        )
        .route("/20190801/workRequests/{work_request_id}/logs", get(logs))
        .route(
            "/20190801/workRequests/{work_request_id}/errors",
            get(errors),
        )
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let filter = WorkRequestFilter {
        compartment_id: q.required_ocid("compartmentId")?,
        display_name: q.string("displayName")?,
        managed_instance_id: q.ocid("managedInstanceId")?,
        os_family: q.enumeration("osFamily")?,
    };
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.work_request_list(&p, &filter, &page).await?;
    let items: Vec<_> = result
        .items
        .iter()
        .map(osm_api::WorkRequestSummary::from)
        .collect();
    Ok(list_response(items, result.next))
}

async fn read(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let wr = s.app.work_request_get(&p, &id).await?;
    // A work request changes as it runs: its etag follows its state and progress.
    let version = wr.status as i64 * 1000 + wr.percent_complete as i64;
    Ok(resource_response(
        StatusCode::OK,
        &osm_api::WorkRequest::from(&wr),
        &etag(&wr.id, version),
    ))
}

/// Cancel (an osm extension): `202`, then follow the work request to `CANCELED`.
async fn cancel(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    s.app.work_request_cancel(&p, &id).await?;
    Ok(super::actions::accepted(&id))
}

async fn logs(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.work_request_logs(&p, &id, &page).await?;
    let items: Vec<_> = result
        .items
        .iter()
        .map(osm_api::WorkRequestLogEntry::from)
        .collect();
    Ok(list_response(items, result.next))
}

async fn errors(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.work_request_errors(&p, &id, &page).await?;
    let items: Vec<_> = result
        .items
        .iter()
        .map(osm_api::WorkRequestError::from)
        .collect();
    Ok(list_response(items, result.next))
}
