//! OS Management 20190801: managed instance groups.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use osm_core::enums::LifecycleState;
use osm_store::GroupFilter;

use super::error::ApiResult;
use super::extract::{Json, Query, if_match, parse_json, retry_token};
use super::{AppState, list_response, no_content, resource_response};
use crate::app::{Principal, RetryKey, etag};

const BASE: &str = "/20190801/managedInstanceGroups";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list).post(create))
        .route(
            &format!("{BASE}/{{group_id}}"),
            get(read).put(update).delete(remove),
        )
        .route(
            &format!("{BASE}/{{group_id}}/actions/changeCompartment"),
            post(change_compartment),
        )
        .route(
            &format!("{BASE}/{{group_id}}/actions/attachManagedInstance"),
            post(attach),
        )
        .route(
            &format!("{BASE}/{{group_id}}/actions/detachManagedInstance"),
            post(detach),
        )
}

fn respond(
    status: StatusCode,
    g: &osm_core::ManagedInstanceGroup,
    members: Vec<osm_core::IdName>,
) -> Response {
    let wire = osm_api::ManagedInstanceGroup::from_domain(g, members);
    resource_response(status, &wire, &etag(&g.id, g.version))
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let filter = GroupFilter {
        compartment_id: q.required_ocid("compartmentId")?,
        display_name: q.string("displayName")?,
        lifecycle_state: q.enumeration::<LifecycleState>("lifecycleState")?,
        os_family: q.enumeration("osFamily")?,
    };
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.group_list(&p, &filter, &page).await?;
    let items: Vec<_> = result
        .items
        .iter()
        .map(osm_api::ManagedInstanceGroupSummary::from)
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
    let retry = RetryKey::new(
        retry_token(&headers)?,
        "CreateManagedInstanceGroup",
        &[&body],
    );
    let (g, members) = s.app.group_create(&p, details, retry).await?;
    Ok(respond(StatusCode::OK, &g, members))
}

async fn read(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (g, members) = s.app.group_get(&p, &id).await?;
    Ok(respond(StatusCode::OK, &g, members))
}

async fn update(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(details): Json<osm_api::UpdateManagedInstanceGroupDetails>,
) -> ApiResult<Response> {
    let (g, members) = s
        .app
        .group_update(&p, &id, details, if_match(&headers)?.as_deref())
        .await?;
    Ok(respond(StatusCode::OK, &g, members))
}

async fn remove(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.app
        .group_delete(&p, &id, if_match(&headers)?.as_deref())
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
    let details: osm_api::ChangeManagedInstanceGroupCompartmentDetails = parse_json(&body)?;
    let retry = RetryKey::new(
        retry_token(&headers)?,
        format!("ChangeManagedInstanceGroupCompartment:{id}"),
        &[&body],
    );
    s.app
        .group_change_compartment(
            &p,
            &id,
            details.compartment_id,
            if_match(&headers)?.as_deref(),
            retry,
        )
        .await?;
    Ok(no_content())
}

async fn attach(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    membership(state, principal, path, headers, q, true).await
}

async fn detach(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    membership(state, principal, path, headers, q, false).await
}

async fn membership(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
    attach: bool,
) -> ApiResult<Response> {
    let instance_id = q.required_ocid("managedInstanceId")?;
    let op = if attach {
        "AttachManagedInstance"
    } else {
        "DetachManagedInstance"
    };
    let retry = RetryKey::new(
        retry_token(&headers)?,
        format!("{op}:{id}"),
        &[instance_id.as_bytes()],
    );
    s.app
        .group_membership(&p, &id, &instance_id, attach, retry)
        .await?;
    Ok(no_content())
}
