//! osm extension: `GET /osm/v1/reports/compliance`, the compliance report of a compartment
//! (`compartmentIdInSubtree=true` for its subtree), a group, or (neither given) every
//! compartment the caller may read, computed in one store snapshot.
//! Filters: `severity` (an update classification, `SECURITY` by default), `cve` (a
//! comma-separated list of CVE ids), `details=true` for each instance's missing updates.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use osm_core::UpdateClassification;
use osm_core::report::{ComplianceFilter, MAX_CVE_FILTER, check_cve};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use crate::app::Principal;
use crate::app::report::ComplianceQuery;

pub fn routes() -> Router<AppState> {
    Router::new().route("/osm/v1/reports/compliance", get(compliance))
}

/// `cve=CVE-2024-1,CVE-2024-2`: upper-cased, each checked.
fn cve_filter(q: &Query) -> ApiResult<BTreeSet<String>> {
    let Some(text) = q.str("cve") else {
        return Ok(BTreeSet::new());
    };
    let cves = text
        .split(',')
        .map(|c| check_cve(c).map_err(|e| ApiError::invalid(format!("cve: {e}"))))
        .collect::<ApiResult<BTreeSet<String>>>()?;
    if cves.len() > MAX_CVE_FILTER {
        return Err(ApiError::invalid(format!(
            "cve lists {} CVEs; give at most {MAX_CVE_FILTER}",
            cves.len()
        )));
    }
    Ok(cves)
}

/// `severity`: an update classification (osm stores no CVSS or vendor severity).
fn severity(q: &Query) -> ApiResult<UpdateClassification> {
    match q.str("severity") {
        None => Ok(UpdateClassification::Security),
        Some(v) => v.parse().map_err(|_| {
            ApiError::invalid(format!(
                "severity must be an update classification, SECURITY, BUG, ENHANCEMENT or OTHER \
                 (the least severe one counted), got {v:?}"
            ))
        }),
    }
}

fn query(q: &Query) -> ApiResult<ComplianceQuery> {
    Ok(ComplianceQuery {
        compartment_id: q.ocid("compartmentId")?,
        in_subtree: q.boolean("compartmentIdInSubtree")?.unwrap_or(false),
        group_id: q.ocid("managedInstanceGroupId")?,
        filter: ComplianceFilter {
            severity: severity(q)?,
            cves: cve_filter(q)?,
            details: q.boolean("details")?.unwrap_or(false),
        },
    })
}

async fn compliance(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Query,
) -> ApiResult<Response> {
    let q = query(&q)?;
    let report = s.app.compliance_report(&p, &q).await?;
    Ok(Json(osm_api::ComplianceReport::from(report)).into_response())
}
