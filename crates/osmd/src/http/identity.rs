//! Identity 20160918: compartments and the tenancy.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use osm_core::enums::{AccessLevel, CompartmentState};
use osm_store::CompartmentFilter;

use super::error::{ApiError, ApiResult};
use super::extract::{Json, Query, if_match, retry_token};
use super::{AppState, list_response, no_content, resource_response};
use crate::app::compartments::CompartmentListQuery;
use crate::app::{Principal, RetryKey, etag};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/20160918/compartments", get(list).post(create))
        .route(
            "/20160918/compartments/{compartment_id}",
            get(read).put(update).delete(remove),
        )
        .route("/20160918/tenancies/{tenancy_id}", get(tenancy))
}

fn wire(c: &osm_core::Compartment, tenancy_id: &str) -> osm_api::Compartment {
    osm_api::Compartment::from_domain(c, tenancy_id)
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let parent_id = q.required_ocid("compartmentId")?;
    let query = CompartmentListQuery {
        filter: CompartmentFilter {
            parent_id,
            in_subtree: q.boolean("compartmentIdInSubtree")?.unwrap_or(false),
            name: q.string("name")?,
            lifecycle_state: lifecycle_state(&q)?,
        },
        access_level: q
            .enumeration::<AccessLevel>("accessLevel")?
            .unwrap_or(AccessLevel::Any),
    };
    let page = q.page_request("NAME")?;
    let result = s.app.compartment_list(&p, &query, &page).await?;
    let items = result
        .items
        .iter()
        .map(|c| wire(c, &s.app.tenancy_id))
        .collect();
    Ok(list_response(items, result.next))
}

/// The service matches `lifecycleState` case-insensitively (Identity documentation).
fn lifecycle_state(q: &Query) -> ApiResult<Option<CompartmentState>> {
    q.str("lifecycleState")
        .map(|v| {
            v.to_ascii_uppercase()
                .parse::<CompartmentState>()
                .map_err(|e| ApiError::invalid(e.to_string()))
        })
        .transpose()
}

async fn read(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = s.app.compartment_get(&p, &id).await?;
    Ok(resource_response(
        StatusCode::OK,
        &wire(&c, &s.app.tenancy_id),
        &etag(&c.id, c.version),
    ))
}

async fn create(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let Json(details) = super::extract::parse_json(&body).map(Json)?;
    let retry = RetryKey::new(retry_token(&headers)?, "CreateCompartment", &[&body]);
    let c = s.app.compartment_create(&p, details, retry).await?;
    Ok(resource_response(
        StatusCode::OK,
        &wire(&c, &s.app.tenancy_id),
        &etag(&c.id, c.version),
    ))
}

async fn update(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(details): Json<osm_api::UpdateCompartmentDetails>,
) -> ApiResult<Response> {
    let c = s
        .app
        .compartment_update(&p, &id, details, if_match(&headers)?.as_deref())
        .await?;
    Ok(resource_response(
        StatusCode::OK,
        &wire(&c, &s.app.tenancy_id),
        &etag(&c.id, c.version),
    ))
}

async fn remove(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.app
        .compartment_delete(&p, &id, if_match(&headers)?.as_deref())
        .await?;
    Ok(no_content())
}

async fn tenancy(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if id != s.app.tenancy_id {
        return Err(ApiError::not_found("tenancy", &id));
    }
    let c = s.app.compartment_get(&p, &id).await?;
    let t = osm_api::Tenancy::from_domain(&c, &s.app.home_region_key);
    Ok(resource_response(
        StatusCode::OK,
        &t,
        &etag(&c.id, c.version),
    ))
}
