//! OS Management 20190801: managed instances.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use osm_store::ManagedInstanceFilter;

use super::error::ApiResult;
use super::extract::{Json, Query, if_match};
use super::{AppState, list_response, resource_response};
use crate::app::instances::InstanceView;
use crate::app::{Principal, etag};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/20190801/managedInstances", get(list))
        .route(
            "/20190801/managedInstances/{managed_instance_id}",
            get(read).put(update),
        )
}

fn respond(v: InstanceView) -> Response {
    let wire = osm_api::ManagedInstance::from_domain(
        &v.instance,
        v.groups,
        v.scheduled_job_count,
        v.work_request_count,
    );
    resource_response(
        StatusCode::OK,
        &wire,
        &etag(&v.instance.id, v.instance.version),
    )
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let filter = ManagedInstanceFilter {
        compartment_id: q.required_ocid("compartmentId")?,
        display_name: q.string("displayName")?,
        os_family: q.enumeration("osFamily")?,
    };
    let page = q.page_request("DISPLAYNAME")?;
    let result = s.app.instance_list(&p, &filter, &page).await?;
    let items: Vec<_> = result
        .items
        .iter()
        .map(osm_api::ManagedInstanceSummary::from)
        .collect();
    Ok(list_response(items, result.next))
}

async fn read(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(respond(s.app.instance_get(&p, &id).await?))
}

async fn update(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(details): Json<osm_api::UpdateManagedInstanceDetails>,
) -> ApiResult<Response> {
    Ok(respond(
        s.app
            .instance_update(&p, &id, details, if_match(&headers)?.as_deref())
            .await?,
    ))
}
