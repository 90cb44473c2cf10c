//! OS Management 20190801: packages, updates and Windows updates of managed instances (read
//! from the inventory agents report), and the agent call that reports it
//! (`POST /agent/v1/inventory`, routed with the other agent calls).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use osm_core::inventory::{InventoryApplied, InventoryUpload};
use osm_store::{PackageList, WindowsUpdateFilter};
use serde::Deserialize;

use super::agent::Agent;
use super::error::{ApiError, ApiResult};
use super::extract::{Query, parse_json};
use super::{AppState, list_response};
use crate::app::Principal;
use crate::app::packages::InstanceListQuery;

pub fn routes() -> Router<AppState> {
    let instance = "/20190801/managedInstances/{managed_instance_id}";
    Router::new()
        .route(&format!("{instance}/packages"), get(installed))
        .route(&format!("{instance}/packages/available"), get(available))
        .route(&format!("{instance}/packages/updates"), get(updates))
        .route(
            &format!("{instance}/updates/available"),
            get(windows_available),
        )
        .route(
            &format!("{instance}/updates/installed"),
            get(windows_installed),
        )
        .route("/20190801/updates", get(windows_list))
        .route("/20190801/updates/{windows_update}", get(windows_get))
}

fn instance_query(q: &Query) -> ApiResult<InstanceListQuery> {
    Ok(InstanceListQuery {
        compartment_id: q.ocid("compartmentId")?,
        display_name: q.string("displayName")?,
        page: q.page_request("DISPLAYNAME")?,
    })
}

async fn installed(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let q = instance_query(&q)?;
    let page = s
        .app
        .instance_packages(&p, &id, PackageList::Installed, &q)
        .await?;
    let items: Vec<osm_api::InstalledPackageSummary> = page.items.iter().map(Into::into).collect();
    Ok(list_response(items, page.next))
}

async fn available(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let q = instance_query(&q)?;
    let page = s
        .app
        .instance_packages(&p, &id, PackageList::Available, &q)
        .await?;
    let items: Vec<osm_api::InstallablePackageSummary> =
        page.items.iter().map(Into::into).collect();
    Ok(list_response(items, page.next))
}

async fn updates(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let q = instance_query(&q)?;
    let page = s.app.instance_updates(&p, &id, &q).await?;
    let items: Vec<osm_api::AvailableUpdateSummary> = page.items.iter().map(Into::into).collect();
    Ok(list_response(items, page.next))
}

async fn windows_available(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let installable = q.enumeration("isEligibleForInstallation")?;
    let q = instance_query(&q)?;
    let page = s
        .app
        .instance_windows_updates(&p, &id, false, &q, installable)
        .await?;
    let items: Vec<osm_api::AvailableWindowsUpdateSummary> =
        page.items.iter().map(Into::into).collect();
    Ok(list_response(items, page.next))
}

async fn windows_installed(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let q = instance_query(&q)?;
    let page = s
        .app
        .instance_windows_updates(&p, &id, true, &q, None)
        .await?;
    let items: Vec<osm_api::InstalledWindowsUpdateSummary> =
        page.items.iter().map(Into::into).collect();
    Ok(list_response(items, page.next))
}

async fn windows_list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let compartment = q.ocid("compartmentId")?;
    let filter = WindowsUpdateFilter {
        display_name: q.string("displayName")?,
        installable: None,
    };
    let page = q.page_request("DISPLAYNAME")?;
    let result = s
        .app
        .windows_update_list(&p, compartment.as_deref(), &filter, &page)
        .await?;
    let items: Vec<osm_api::WindowsUpdateSummary> = result.items.iter().map(Into::into).collect();
    Ok(list_response(items, result.next))
}

async fn windows_get(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let update = s.app.windows_update_get(&p, &name).await?;
    Ok(Json(osm_api::WindowsUpdate::from(&update)).into_response())
}

/// Only the `mode` of an upload, read first so the body is then parsed as exactly one shape
/// (and a bad field is named by its path).
#[derive(Deserialize)]
struct UploadMode {
    mode: Option<String>,
}

/// `POST /agent/v1/inventory`: a full or diff upload of the agent's own instance.
pub async fn upload_inventory(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    body: Bytes,
) -> ApiResult<Response> {
    let UploadMode { mode } = parse_json(&body)?;
    let upload = match mode.as_deref() {
        Some("full") => InventoryUpload::Full(parse_json(&body)?),
        Some("diff") => InventoryUpload::Diff(parse_json(&body)?),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "mode must be \"full\" or \"diff\", got {other:?}"
            )));
        }
        None => {
            return Err(ApiError::invalid(
                "mode is required: \"full\" (replaces the inventory) or \"diff\" (with baseRevision)",
            ));
        }
    };
    let base = match &upload {
        InventoryUpload::Diff(d) => d.base_revision,
        InventoryUpload::Full(_) => 0,
    };
    match s.app.agent_inventory_upload(&a.instance_id, upload).await? {
        InventoryApplied::Stored { revision } => {
            Ok(Json(serde_json::json!({ "revision": revision })).into_response())
        }
        InventoryApplied::RevisionMismatch { current } => Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "code": "InventoryRevisionMismatch",
                "message": format!("baseRevision {base} is not the revision osmd holds ({current}); send a full upload"),
                "revision": current,
            })),
        )
            .into_response()),
    }
}
