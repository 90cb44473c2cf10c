//! OS Management 20190801: asynchronous actions on instances and groups. Each answers `202`
//! with no body and the new work request's id in `opc-work-request-id`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use osm_core::{UpdateType, WorkAction};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Query, retry_token};
use crate::app::{Principal, RetryKey};

const MI: &str = "/20190801/managedInstances/{managed_instance_id}/actions";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{MI}/packages/install"), post(install_package))
        .route(&format!("{MI}/packages/remove"), post(remove_package))
        .route(&format!("{MI}/packages/update"), post(update_package))
        .route(&format!("{MI}/packages/updateAll"), post(update_all))
        .route(
            &format!("{MI}/updates/install"),
            post(install_windows_update),
        )
        .route(
            &format!("{MI}/updates/installAll"),
            post(install_all_windows_updates),
        )
        .route(
            "/20190801/managedInstanceGroups/{group_id}/actions/updates/installAll",
            post(group_update_all),
        )
}

/// `202 Accepted` with the work request id.
pub fn accepted(work_request_id: &str) -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(work_request_id) {
        resp.headers_mut().insert("opc-work-request-id", v);
    }
    resp
}

fn required(q: &Query, name: &str) -> ApiResult<String> {
    q.string(name)?.ok_or_else(|| ApiError::missing(name))
}

fn update_type(q: &Query) -> ApiResult<UpdateType> {
    Ok(q.enumeration::<UpdateType>("updateType")?
        .unwrap_or(UpdateType::All))
}

async fn run(
    s: AppState,
    p: Principal,
    id: String,
    headers: HeaderMap,
    op: &str,
    action: WorkAction,
) -> ApiResult<Response> {
    let request = serde_json::to_vec(&action).unwrap_or_default();
    let retry = RetryKey::new(retry_token(&headers)?, format!("{op}:{id}"), &[&request]);
    let wr = s.app.instance_action(&p, &id, action, retry).await?;
    Ok(accepted(&wr))
}

async fn install_package(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let name = required(&q, "softwarePackageName")?;
    run(
        s,
        p,
        id,
        headers,
        "InstallPackage",
        WorkAction::InstallPackage { names: vec![name] },
    )
    .await
}

async fn remove_package(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let name = required(&q, "softwarePackageName")?;
    run(
        s,
        p,
        id,
        headers,
        "RemovePackage",
        WorkAction::RemovePackage { names: vec![name] },
    )
    .await
}

async fn update_package(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let name = required(&q, "softwarePackageName")?;
    run(
        s,
        p,
        id,
        headers,
        "UpdatePackage",
        WorkAction::UpdatePackage { names: vec![name] },
    )
    .await
}

async fn update_all(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let update_type = update_type(&q)?;
    run(
        s,
        p,
        id,
        headers,
        "InstallAllPackageUpdates",
        WorkAction::UpdateAll { update_type },
    )
    .await
}

async fn install_windows_update(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let name = required(&q, "windowsUpdateName")?;
    run(
        s,
        p,
        id,
        headers,
        "InstallWindowsUpdate",
        WorkAction::InstallWindowsUpdate { names: vec![name] },
    )
    .await
}

async fn install_all_windows_updates(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let update_type = update_type(&q)?;
    run(
        s,
        p,
        id,
        headers,
        "InstallAllWindowsUpdates",
        WorkAction::InstallAllWindowsUpdates { update_type },
    )
    .await
}

async fn group_update_all(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let update_type = update_type(&q)?;
    let retry = RetryKey::new(
        retry_token(&headers)?,
        format!("InstallAllUpdatesOnGroup:{id}"),
        &[update_type.as_str().as_bytes()],
    );
    let wr = s.app.group_update_all(&p, &id, update_type, retry).await?;
    Ok(accepted(&wr))
}
