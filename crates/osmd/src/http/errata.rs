//! OS Management 20190801 §3.7: list errata, get an erratum, list an instance's errata; and the
//! OSV import (osm extension, `POST /osm/v1/errata/import`).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use osm_core::enums::SortOrder;
use osm_core::errata::{ImportRecord, MAX_IMPORT_RECORDS, check_batch};
use osm_core::page::{Cursor, PageRequest, SortKey};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{Query, parse_json};
use super::{AppState, list_response};
use crate::app::Principal;
use crate::app::errata::ErratumListQuery;
use crate::app::packages::InstanceListQuery;

/// The import's path; its body may be larger than other calls' (`errata_max_body_bytes`).
pub const IMPORT_PATH: &str = "/osm/v1/errata/import";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/20190801/errata", get(list))
        .route("/20190801/errata/{erratum_id}", get(get_one))
        .route(
            "/20190801/managedInstances/{managed_instance_id}/errata",
            get(instance_errata),
        )
        .route(
            IMPORT_PATH,
            // The authentication layer bounds the body by `errata_max_body_bytes`.
            post(import).layer(DefaultBodyLimit::disable()),
        )
}

/// `sortBy` (`ISSUEDATE`, the default, or `ADVISORYNAME`), `sortOrder`, `limit`, `page` of
/// `ListErrata`. Dates sort newest first, names A–Z, unless `sortOrder` says otherwise.
fn errata_page(q: &Query) -> ApiResult<PageRequest> {
    let sort = match q.str("sortBy") {
        None | Some("ISSUEDATE") => SortKey::TimeCreated,
        Some("ADVISORYNAME") => SortKey::Name,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "invalid value {v:?} for sortBy; allowed values: ISSUEDATE, ADVISORYNAME"
            )));
        }
    };
    let order = q
        .enumeration::<SortOrder>("sortOrder")?
        .unwrap_or(match sort {
            SortKey::TimeCreated => SortOrder::Desc,
            SortKey::Name => SortOrder::Asc,
        });
    let after = q
        .str("page")
        .map(|t| Cursor::decode(t, sort, order).map_err(|e| ApiError::invalid(e.to_string())))
        .transpose()?;
    Ok(PageRequest {
        sort,
        order,
        limit: q.limit()?,
        after,
    })
}

async fn list(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let filter = ErratumListQuery {
        compartment_id: q.ocid("compartmentId")?,
        erratum_id: q.ocid("erratumId")?,
        advisory_name: q.string("advisoryName")?,
        issued_from: q.time("timeIssueDateStart")?,
        issued_to: q.time("timeIssueDateEnd")?,
    };
    let page = errata_page(&q)?;
    let result = s.app.erratum_list(&p, &filter, &page).await?;
    let items: Vec<osm_api::ErratumSummary> = result.items.iter().map(Into::into).collect();
    Ok(list_response(items, result.next))
}

async fn get_one(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let details = s.app.erratum_get(&p, &id).await?;
    Ok(Json(osm_api::Erratum::from(&details)).into_response())
}

async fn instance_errata(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let query = InstanceListQuery {
        compartment_id: q.ocid("compartmentId")?,
        display_name: q.string("displayName")?,
        page: q.page_request("DISPLAYNAME")?,
    };
    let page = s.app.instance_errata(&p, &id, &query).await?;
    let items: Vec<osm_api::ErratumSummary> = page.items.iter().map(Into::into).collect();
    Ok(list_response(items, page.next))
}

#[derive(Deserialize)]
struct ImportBody {
    records: Option<Vec<serde_json::Value>>,
}

/// Record `i` of a batch as an [`ImportRecord`], or a 400 naming the record and the field.
fn record(i: usize, value: &serde_json::Value) -> ApiResult<ImportRecord> {
    ImportRecord::from_value(value).map_err(|e| {
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .filter(|id| !id.trim().is_empty())
            .map(|id| format!(" ({})", id.chars().take(80).collect::<String>()))
            .unwrap_or_default();
        ApiError::invalid(format!("records[{i}]{id}: {e}"))
    })
}

/// `POST /osm/v1/errata/import`: `{"records": [OSV record, …]}`. Every record is checked
/// first (a 400 names the first bad one and its field, and nothing is stored); then all are
/// applied in one transaction. Answers what changed.
async fn import(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Response> {
    // Who may import is settled before the body is read.
    s.app.errata_import_allowed(&p)?;
    let ImportBody { records } = parse_json(&body)?;
    let values = records.ok_or_else(|| ApiError::missing("records"))?;
    if values.is_empty() {
        return Err(ApiError::invalid(
            "records is empty; send at least one OSV record",
        ));
    }
    if values.len() > MAX_IMPORT_RECORDS {
        return Err(ApiError::invalid(format!(
            "records has {} entries; at most {MAX_IMPORT_RECORDS} are imported at once",
            values.len()
        )));
    }
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i, v))
        .collect::<ApiResult<Vec<_>>>()?;
    check_batch(records.iter().map(|r| r.advisory.id.as_str()))
        .map_err(|(i, m)| ApiError::invalid(format!("records[{i}]: {m}")))?;
    let summary = s.app.errata_import(&p, &records).await?;
    Ok(Json(osm_api::ErrataImportSummary::from(&summary)).into_response())
}
