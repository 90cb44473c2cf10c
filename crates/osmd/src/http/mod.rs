//! The HTTP surface: OCI OS Management (`/20190801`), the Identity subset (`/20160918`), the
//! osm extensions (`/osm/v1`), `/healthz`, `/metrics` and `/openapi.json`. Handlers only
//! parse, call [`crate::app`] and convert; errors leave as [`error::ApiError`].

mod actions;
pub mod agent;
pub mod auth;
pub mod errata;
pub mod error;
pub mod extract;
mod groups;
mod identity;
mod install_keys;
mod instances;
mod observe;
pub mod openapi;
mod packages;
mod report;
mod scheduled_jobs;
mod work_requests;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use osm_core::page::Cursor;
use serde::Serialize;

use crate::app::App;
use crate::config::Settings;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub settings: Arc<Settings>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(actions::routes())
        .merge(agent::routes(state.clone()))
        .merge(errata::routes())
        .merge(identity::routes())
        .merge(groups::routes())
        .merge(instances::routes())
        .merge(install_keys::routes())
        .merge(packages::routes())
        .merge(report::routes())
        .merge(scheduled_jobs::routes())
        .merge(work_requests::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    // Gauges that describe the store are read when scraped.
    if let Ok(stats) = state.app.store.work_request_stats().await {
        // Every pair is set each time, so a count that drops to zero shows as zero.
        for status in osm_core::WorkRequestStatus::ALL {
            for op in osm_core::OperationType::ALL {
                let n = stats
                    .iter()
                    .find(|(s, o, _)| s == status && o == op)
                    .map_or(0, |(_, _, n)| *n);
                metrics::gauge!("osm_work_requests", "status" => status.as_str(), "operation" => op.as_str()).set(n as f64);
            }
        }
        let queued: i64 = stats
            .iter()
            .filter(|(s, _, _)| *s == osm_core::WorkRequestStatus::Accepted)
            .map(|(_, _, n)| n)
            .sum();
        metrics::gauge!("osm_work_request_queue_depth").set(queued as f64);
    }
    let recent = jiff::Timestamp::now()
        - jiff::SignedDuration::from_secs(2 * crate::app::agents::HEARTBEAT_SECS as i64 + 30);
    if let Ok(n) = state.app.store.agents_seen_since(recent).await {
        metrics::gauge!("osm_agents_connected").set(n as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
        .into_response()
}

async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{} is not allowed on {}", method, uri.path()),
    )
}

/// A list response: the bare JSON array, and `opc-next-page` only when a next page exists.
pub fn list_response<T: Serialize>(items: Vec<T>, next: Option<Cursor>) -> Response {
    let mut resp = axum::Json(items).into_response();
    if let Some(cursor) = next
        && let Ok(v) = HeaderValue::from_str(&cursor.encode())
    {
        resp.headers_mut().insert("opc-next-page", v);
    }
    resp
}

/// A single resource with its `etag`.
pub fn resource_response<T: Serialize>(status: StatusCode, value: &T, etag: &str) -> Response {
    let mut resp = (status, axum::Json(value)).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// An action or delete that answers without a body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
