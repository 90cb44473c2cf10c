//! Agent install keys (an osm extension, signed like the rest of the API): create one for a
//! compartment (the secret is shown once), list them, revoke one.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use osm_core::InstallKey;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Query};
use super::no_content;
use crate::app::Principal;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/osm/v1/installKeys", get(list).post(create))
        .route("/osm/v1/installKeys/{install_key_id}", delete(revoke))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InstallKeyView {
    id: String,
    compartment_id: String,
    display_name: String,
    time_created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_revoked: Option<String>,
    /// Only in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

fn view(k: InstallKey, key: Option<String>) -> InstallKeyView {
    InstallKeyView {
        id: k.id,
        compartment_id: k.compartment_id,
        display_name: k.display_name,
        time_created: osm_core::time::format_rfc3339(k.time_created),
        time_revoked: k.time_revoked.map(osm_core::time::format_rfc3339),
        key,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInstallKey {
    compartment_id: Option<String>,
    display_name: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Body(req): Body<CreateInstallKey>,
) -> ApiResult<Response> {
    let compartment = req
        .compartment_id
        .ok_or_else(|| ApiError::missing("compartmentId"))?;
    let name = req.display_name.unwrap_or_else(|| "install key".into());
    let (key, secret) = s.app.install_key_create(&p, &compartment, &name).await?;
    Ok(Json(view(key, Some(secret))).into_response())
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let compartment = q.required_ocid("compartmentId")?;
    let keys = s.app.install_key_list(&p, &compartment).await?;
    Ok(Json(keys.into_iter().map(|k| view(k, None)).collect::<Vec<_>>()).into_response())
}

async fn revoke(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    s.app.install_key_revoke(&p, &id).await?;
    Ok(no_content())
}
