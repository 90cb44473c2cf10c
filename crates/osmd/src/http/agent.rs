//! The agent protocol (`/agent/v1/…`, osm's own; see docs/agent-protocol.md). Agents do not
//! hold user API keys: enrolment authenticates with an install key, every later call with an
//! HMAC-SHA256 signature made with the secret enrolment returned.
//!
//! `Authorization: OsmAgent <instance OCID>:<base64 HMAC>` over the string
//! `"<date>\n<method> <path?query>\n<x-content-sha256>"`; `date` must be within 5 minutes and
//! `x-content-sha256` must match the body.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use osm_core::httpsig::{body_digest, parse_imf_fixdate};
use osm_core::{AgentFacts, OsFamily};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::parse_json;
use crate::app::agents::{Outcome, Report};

const INVENTORY_PATH: &str = "/agent/v1/inventory";

/// The enrolled instance a request comes from.
#[derive(Debug, Clone)]
pub struct Agent {
    pub instance_id: String,
}

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/agent/v1/enroll", post(enroll))
        .route("/agent/v1/heartbeat", post(heartbeat))
        .route("/agent/v1/work/poll", post(poll))
        .route("/agent/v1/work/{work_request_id}/log", post(log))
        .route("/agent/v1/work/{work_request_id}/complete", post(complete))
        .route("/agent/v1/work/complete", post(complete_batch))
        .route("/agent/v1/work/exchange", post(exchange))
        .route(INVENTORY_PATH, post(super::packages::upload_inventory))
        // `verify` already bounds every agent body by `agent_max_body_bytes`; axum's own 2 MB
        // default would refuse large inventories and batches below that.
        .layer(DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// The string an agent signs.
pub fn signing_string(date: &str, method: &str, target: &str, digest: &str) -> String {
    format!("{date}\n{} {target}\n{digest}", method.to_ascii_lowercase())
}

/// HMAC-SHA256 of `message` with the agent's secret, base64.
pub fn sign(secret: &str, message: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    B64.encode(aws_lc_rs::hmac::sign(&key, message.as_bytes()).as_ref())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match verify(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn verify(state: &AppState, req: Request) -> ApiResult<Request> {
    let (mut parts, body) = req.into_parts();
    let limit = state.settings.agent_max_body_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let auth = header(&parts.headers, "authorization")
        .ok_or_else(|| ApiError::not_authenticated("the Authorization header is missing"))?;
    if parts.uri.path() == "/agent/v1/enroll" {
        let key = auth.strip_prefix("OsmInstallKey ").ok_or_else(|| {
            ApiError::not_authenticated(
                "enrolment needs 'Authorization: OsmInstallKey <install key>'",
            )
        })?;
        parts
            .extensions
            .insert(InstallKeyHeader(key.trim().to_string()));
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    }
    let value = auth.strip_prefix("OsmAgent ").ok_or_else(|| {
        ApiError::not_authenticated(
            "agent calls need 'Authorization: OsmAgent <instance>:<signature>'",
        )
    })?;
    let (instance_id, signature) = value.split_once(':').ok_or_else(|| {
        ApiError::not_authenticated("the OsmAgent credential must be <instance>:<signature>")
    })?;
    let date = header(&parts.headers, "date")
        .ok_or_else(|| ApiError::not_authenticated("the date header is missing"))?;
    let when = parse_imf_fixdate(date)
        .ok_or_else(|| ApiError::not_authenticated("the date header is not an HTTP date"))?;
    if (Timestamp::now() - when).abs() > osm_core::httpsig::MAX_SKEW {
        return Err(ApiError::not_authenticated(
            "the date header is more than 5 minutes away from the server's clock",
        ));
    }
    let digest = header(&parts.headers, "x-content-sha256")
        .ok_or_else(|| ApiError::not_authenticated("the x-content-sha256 header is missing"))?;
    if digest != body_digest(&bytes) {
        return Err(ApiError::not_authenticated(
            "x-content-sha256 does not match the request body",
        ));
    }
    let unknown = || {
        ApiError::not_authenticated(
            "unknown agent or wrong signature; enrol again if the instance was removed",
        )
    };
    let secret = state
        .app
        .store
        .agent_secret(instance_id)
        .await?
        .ok_or_else(unknown)?;
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let expected = sign(
        &secret,
        &signing_string(date, parts.method.as_str(), target, digest),
    );
    let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_bytes(),
        signature.as_bytes(),
    )
    .is_ok();
    if !matches {
        return Err(unknown());
    }
    parts.extensions.insert(Agent {
        instance_id: instance_id.to_string(),
    });
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[derive(Clone)]
struct InstallKeyHeader(String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnrollRequest {
    hostname: String,
    os_family: OsFamily,
    /// A compartment in the install key's subtree (the key's own when absent).
    #[serde(default)]
    compartment_id: Option<String>,
    #[serde(default)]
    facts: AgentFacts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnrollResponse {
    instance_id: String,
    compartment_id: String,
    secret: String,
    heartbeat_seconds: u64,
    lease_seconds: i64,
}

async fn enroll(
    State(s): State<AppState>,
    Extension(key): Extension<InstallKeyHeader>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: EnrollRequest = parse_json(&body)?;
    let e = s
        .app
        .agent_enroll(
            &key.0,
            &req.hostname,
            req.os_family,
            req.compartment_id.as_deref(),
            &req.facts,
        )
        .await?;
    let resp = EnrollResponse {
        instance_id: e.instance.id,
        compartment_id: e.instance.compartment_id,
        secret: e.secret,
        heartbeat_seconds: s.app.heartbeat_secs(),
        lease_seconds: s.app.lease.as_secs(),
    };
    Ok((StatusCode::OK, Json(resp)).into_response())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InFlight {
    id: String,
    status: osm_core::WorkRequestStatus,
}

async fn heartbeat(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    body: Bytes,
) -> ApiResult<Response> {
    let facts: AgentFacts = if body.is_empty() {
        AgentFacts::default()
    } else {
        parse_json(&body)?
    };
    let in_flight = s.app.agent_heartbeat(&a.instance_id, &facts).await?;
    let inventory_revision = s.app.agent_inventory_revision(&a.instance_id).await?;
    let items: Vec<InFlight> = in_flight
        .into_iter()
        .map(|(id, status)| InFlight { id, status })
        .collect();
    Ok(Json(serde_json::json!({
        "inFlight": items,
        "heartbeatSeconds": s.app.heartbeat_secs(),
        "inventoryRevision": inventory_revision,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PollRequest {
    #[serde(default)]
    wait_seconds: u64,
    #[serde(default)]
    max: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Work {
    id: String,
    description: Option<String>,
    action: Option<osm_core::WorkAction>,
    lease_seconds: i64,
}

async fn poll(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: PollRequest = if body.is_empty() {
        PollRequest::default()
    } else {
        parse_json(&body)?
    };
    let claimed = s
        .app
        .agent_poll(
            &a.instance_id,
            req.max.unwrap_or(10),
            Duration::from_secs(req.wait_seconds.min(30)),
        )
        .await?;
    Ok(Json(work_of(&s, claimed)).into_response())
}

fn work_of(s: &AppState, claimed: Vec<osm_store::ClaimedWork>) -> Vec<Work> {
    claimed
        .into_iter()
        .map(|w| Work {
            id: w.id,
            description: w.description,
            action: w.action,
            lease_seconds: s.app.lease.as_secs(),
        })
        .collect()
}

#[derive(Deserialize)]
struct LogRequest {
    lines: Vec<String>,
}

async fn log(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: LogRequest = parse_json(&body)?;
    if req.lines.len() > 1000 || req.lines.iter().any(|l| l.len() > 8192) {
        return Err(ApiError::invalid(
            "send at most 1000 lines of at most 8192 bytes each per call",
        ));
    }
    let lines = req.lines.into_iter().map(storable).collect();
    s.app.agent_log(&a.instance_id, &id, lines).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: String,
    message: String,
}

/// The end of one work request, as an agent reports it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteItem {
    /// Present in a batch; the path names it in the single-item call.
    #[serde(default)]
    id: Option<String>,
    outcome: Outcome,
    #[serde(default)]
    errors: Vec<ErrorEntry>,
    #[serde(default)]
    log: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBatch {
    items: Vec<CompleteItem>,
}

/// Most reports in one batched completion.
const MAX_BATCH: usize = 1000;

/// Checks one report; bad input fails the whole call before anything changes.
fn report(item: CompleteItem, id: String) -> ApiResult<Report> {
    if item.outcome == Outcome::Failed && item.errors.is_empty() {
        return Err(ApiError::invalid(format!(
            "work request {id}: a FAILED outcome needs at least one error saying what went wrong"
        )));
    }
    if item.errors.len() > 100
        || item
            .errors
            .iter()
            .any(|e| e.code.is_empty() || e.code.len() > 255 || e.message.len() > 8192)
    {
        return Err(ApiError::invalid(format!(
            "work request {id}: send at most 100 errors, each with a code of 1 to 255 bytes and a message of at most 8192 bytes"
        )));
    }
    if item.log.len() > 1000 || item.log.iter().any(|l| l.len() > 8192) {
        return Err(ApiError::invalid(format!(
            "work request {id}: send at most 1000 log lines of at most 8192 bytes each"
        )));
    }
    Ok(Report {
        id,
        outcome: item.outcome,
        errors: item
            .errors
            .into_iter()
            .map(|e| (storable(e.code), storable(e.message)))
            .collect(),
        log: item.log.into_iter().map(storable).collect(),
    })
}

/// `text` with each NUL character replaced by U+FFFD: command output can hold them, and
/// PostgreSQL text cannot (the log would become unreadable there), so it is kept visibly
/// rather than refused and retried forever.
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

async fn complete(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let item: CompleteItem = parse_json(&body)?;
    if item.id.as_ref().is_some_and(|i| *i != id) {
        return Err(ApiError::invalid("the body's id differs from the path's"));
    }
    let report = report(item, id)?;
    let done = s
        .app
        .agent_complete(&a.instance_id, vec![report])
        .await?
        .pop()
        .expect("one answer per report")?;
    Ok(Json(serde_json::json!({ "id": done.id, "status": done.status })).into_response())
}

/// Many completions in one call and one transaction; each item answers on its own.
async fn complete_batch(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    body: Bytes,
) -> ApiResult<Response> {
    let batch: CompleteBatch = parse_json(&body)?;
    if batch.items.is_empty() {
        return Err(ApiError::invalid(format!(
            "send between 1 and {MAX_BATCH} items per call"
        )));
    }
    let reports = reports("items", batch.items)?;
    let ids: Vec<String> = reports.iter().map(|r| r.id.clone()).collect();
    let answers = s.app.agent_complete(&a.instance_id, reports).await?;
    Ok(Json(answers_of(ids, answers)).into_response())
}

/// Checks a list of reports (each naming its work request) before anything changes.
fn reports(field: &str, items: Vec<CompleteItem>) -> ApiResult<Vec<Report>> {
    if items.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "send at most {MAX_BATCH} items in {field}"
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(n, item)| {
            let id = item
                .id
                .clone()
                .ok_or_else(|| ApiError::missing(&format!("{field}[{n}].id")))?;
            report(item, id)
        })
        .collect()
}

/// Each report's answer: its new status, or the error that refused it.
fn answers_of(
    ids: Vec<String>,
    answers: Vec<ApiResult<osm_store::Completed>>,
) -> Vec<serde_json::Value> {
    ids.into_iter()
        .zip(answers)
        .map(|(id, answer)| match answer {
            Ok(done) => serde_json::json!({ "id": id, "status": done.status }),
            Err(e) => {
                serde_json::json!({ "id": id, "error": { "code": e.code, "message": e.message } })
            }
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExchangeRequest {
    /// Outcomes of earlier work, recorded first.
    #[serde(default)]
    report: Vec<CompleteItem>,
    #[serde(default)]
    wait_seconds: u64,
    #[serde(default)]
    max: Option<u32>,
}

/// Reports outcomes and claims the next work in one call and one transaction: an agent that
/// runs batches sends this once per batch instead of a report and a poll.
async fn exchange(
    State(s): State<AppState>,
    Extension(a): Extension<Agent>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: ExchangeRequest = parse_json(&body)?;
    let reports = reports("report", req.report)?;
    let ids: Vec<String> = reports.iter().map(|r| r.id.clone()).collect();
    let (answers, claimed) = s
        .app
        .agent_exchange(
            &a.instance_id,
            reports,
            req.max.unwrap_or(10),
            Duration::from_secs(req.wait_seconds.min(30)),
        )
        .await?;
    Ok(Json(serde_json::json!({
        "reported": answers_of(ids, answers),
        "work": work_of(&s, claimed),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::storable;

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert_eq!(storable("a\0b\0".into()), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable("plain".into()), "plain");
    }
}
