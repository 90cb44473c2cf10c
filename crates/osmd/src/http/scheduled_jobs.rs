//! OS Management 20190801: scheduled jobs.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use osm_store::ScheduledJobFilter;

use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query, if_match, parse_json, retry_token};
use super::{AppState, list_response, no_content, resource_response};
use crate::app::{Principal, RetryKey, etag};

const BASE: &str = "/20190801/scheduledJobs";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/upcomingSchedules"), get(upcoming))
        .route(
            &format!("{BASE}/{{scheduled_job_id}}"),
            get(read).put(update).delete(remove),
        )
        .route(
            &format!("{BASE}/{{scheduled_job_id}}/actions/changeCompartment"),
            post(change_compartment),
        )
        .route(
            &format!("{BASE}/{{scheduled_job_id}}/actions/runNow"),
            post(run_now),
        )
        .route(
            &format!("{BASE}/{{scheduled_job_id}}/actions/skipNextExecution"),
            post(skip_next),
        )
}

fn respond(job: &osm_core::ScheduledJob, work_requests: Vec<osm_core::IdName>) -> Response {
    let wire = osm_api::ScheduledJob::from_domain(job, work_requests);
    resource_response(StatusCode::OK, &wire, &etag(&job.id, job.version))
}

fn filter(q: &Query) -> ApiResult<ScheduledJobFilter> {
    Ok(ScheduledJobFilter {
        compartment_id: q.required_ocid("compartmentId")?,
        display_name: q.string("displayName")?,
        managed_instance_id: q.ocid("managedInstanceId")?,
        managed_instance_group_id: q.ocid("managedInstanceGroupId")?,
        operation_type: q.enumeration("operationType")?,
        lifecycle_state: q.enumeration("lifecycleState")?,
        os_family: q.enumeration("osFamily")?,
        is_restricted: q.boolean("isRestricted")?,
        next_execution_before: None,
    })
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let filter = filter(&q)?;
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.job_list(&p, &filter, &page).await?;
    let items: Vec<_> = result
        .items
        .iter()
        .map(osm_api::ScheduledJobSummary::from)
        .collect();
    Ok(list_response(items, result.next))
}

/// `ListUpcomingScheduledJobs`: active jobs whose next run falls before `timeEnd`.
async fn upcoming(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let time_end = q
        .time("timeEnd")?
        .ok_or_else(|| ApiError::missing("timeEnd"))?;
    let mut filter = filter(&q)?;
    filter.next_execution_before = Some(time_end);
    if let (Some(_), None) | (None, Some(_)) = (q.str("tagName"), q.str("tagValue")) {
        return Err(ApiError::invalid(
            "tagName and tagValue must be given together",
        ));
    }
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.job_list(&p, &filter, &page).await?;
    let tag = q.str("tagName").zip(q.str("tagValue"));
    let items: Vec<_> = result
        .items
        .iter()
        .filter(|j| tag.is_none_or(|(k, v)| j.freeform_tags.get(k).is_some_and(|x| x == v)))
        .map(osm_api::ScheduledJobSummary::from)
        .collect();
    Ok(list_response(items, result.next))
}

async fn create(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let details = parse_json(&body)?;
    let retry = RetryKey::new(retry_token(&headers)?, "CreateScheduledJob", &[&body]);
    let (job, wrs) = s.app.job_create(&p, details, retry).await?;
    Ok(respond(&job, wrs))
}

async fn read(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (job, wrs) = s.app.job_get(&p, &id).await?;
    Ok(respond(&job, wrs))
}

async fn update(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(details): Json<osm_api::UpdateScheduledJobDetails>,
) -> ApiResult<Response> {
    let (job, wrs) = s
        .app
        .job_update(&p, &id, details, if_match(&headers)?.as_deref())
        .await?;
    Ok(respond(&job, wrs))
}

async fn remove(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.app
        .job_delete(&p, &id, if_match(&headers)?.as_deref())
        .await?;
    Ok(no_content())
}

async fn change_compartment(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let details: osm_api::ChangeScheduledJobCompartmentDetails = parse_json(&body)?;
    let retry = RetryKey::new(
        retry_token(&headers)?,
        format!("ChangeScheduledJobCompartment:{id}"),
        &[&body],
    );
    s.app
        .job_change_compartment(
            &p,
            &id,
            details.compartment_id,
            if_match(&headers)?.as_deref(),
            retry,
        )
        .await?;
    Ok(no_content())
}

async fn run_now(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let retry = RetryKey::new(
        retry_token(&headers)?,
        format!("RunScheduledJobNow:{id}"),
        &[],
    );
    s.app
        .job_run_now(&p, &id, if_match(&headers)?.as_deref(), retry)
        .await?;
    let (job, _) = s.app.job_get(&p, &id).await?;
    Ok(with_etag(&job))
}

async fn skip_next(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let retry = RetryKey::new(
        retry_token(&headers)?,
        format!("SkipNextScheduledJobExecution:{id}"),
        &[],
    );
    s.app
        .job_skip_next(&p, &id, if_match(&headers)?.as_deref(), retry)
        .await?;
    let (job, _) = s.app.job_get(&p, &id).await?;
    Ok(with_etag(&job))
}

/// `204` with the job's new etag (the actions answer no body).
fn with_etag(job: &osm_core::ScheduledJob) -> Response {
    let mut resp = no_content();
    if let Ok(v) = axum::http::HeaderValue::from_str(&etag(&job.id, job.version)) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    resp
}
