//! Request authentication: every request except `GET /healthz` carries an OCI HTTP signature
//! (draft-cavage, RSA-SHA256) from a registered API key. POST and PUT bodies are buffered
//! (within the size limit) so their digest can be checked before any handler runs.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use osm_core::httpsig::{self, HeaderSource};

use super::AppState;
use super::error::ApiError;

struct Headers<'a>(&'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Paths that answer without a signature.
pub fn is_public(method: &Method, path: &str) -> bool {
    path == "/healthz" && (method == Method::GET || method == Method::HEAD)
}

pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    match verify(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn verify(state: &AppState, req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::not_authenticated("the request is not signed: the Authorization header is missing"))?
        .to_str()
        .map_err(|_| ApiError::not_authenticated("the Authorization header is not printable ASCII"))?;
    let auth = httpsig::parse_authorization(value).map_err(|e| ApiError::not_authenticated(e.to_string()))?;
    let unknown_key = || {
        ApiError::not_authenticated(
            "the keyId of the signature does not name an API key registered with this server",
        )
    };
    if auth.key_id.tenancy != state.app.tenancy_id {
        return Err(unknown_key());
    }
    let key = state
        .app
        .verifying_key(&auth.key_id.user, &auth.key_id.fingerprint)
        .await?
        .ok_or_else(unknown_key)?;
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    httpsig::verify_with(
        &auth,
        parts.method.as_str(),
        target,
        &Headers(&parts.headers),
        &key,
        Timestamp::now(),
    )
    .map_err(|e| ApiError::not_authenticated(e.to_string()))?;

    let limit = state.settings.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        httpsig::verify_body(&Headers(&parts.headers), &bytes).map_err(|e| ApiError::not_authenticated(e.to_string()))?;
    }
    let principal = state.app.principal(&auth.key_id.user).await?;
    parts.extensions.insert(principal);
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
