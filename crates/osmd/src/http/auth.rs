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
    (path == "/healthz" && (method == Method::GET || method == Method::HEAD))
        // Agents authenticate with their own scheme (see http::agent).
        || path.starts_with("/agent/v1/")
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
        .ok_or_else(|| {
            ApiError::not_authenticated(
                "the request is not signed: the Authorization header is missing",
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::not_authenticated("the Authorization header is not printable ASCII")
        })?;
    let auth = httpsig::parse_authorization(value)
        .map_err(|e| ApiError::not_authenticated(e.to_string()))?;
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

    let limit = if parts.uri.path() == super::errata::IMPORT_PATH {
        state.settings.errata_max_body_bytes
    } else {
        state.settings.max_body_bytes
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        drain(body).await;
        return Err(ApiError::too_large(limit));
    }
    let bytes: Bytes = read_limited(body, limit).await?;
    if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
        httpsig::verify_body(&Headers(&parts.headers), &bytes)
            .map_err(|e| ApiError::not_authenticated(e.to_string()))?;
    }
    let principal = state.app.principal(&auth.key_id.user).await?;
    parts.extensions.insert(principal);
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Reads the body, or answers 413 once it passes `limit` (after draining the rest, so the
/// client reads the answer instead of a reset connection).
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::cannot_parse(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            drain_stream(stream).await;
            return Err(ApiError::too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Bodies larger than this are not drained; the connection is closed instead.
const DRAIN_CAP: usize = 16 * 1024 * 1024;

async fn drain(body: Body) {
    drain_stream(body.into_data_stream()).await
}

async fn drain_stream(mut stream: axum::body::BodyDataStream) {
    use futures::StreamExt;
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > DRAIN_CAP {
            break;
        }
    }
}
