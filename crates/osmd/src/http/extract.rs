//! Request parsing with errors a person can act on: query parameters, JSON bodies and the
//! OCI request headers (`if-match`, `opc-retry-token`).

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use jiff::Timestamp;
use osm_core::enums::{SortOrder, UnknownVariant};
use osm_core::ids::check_ocid;
use osm_core::page::{Cursor, MAX_LIMIT, PageRequest, SortKey};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// Decoded query parameters. A parameter given twice is refused rather than guessed at.
pub struct Query(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut map = HashMap::new();
        if let Some(q) = parts.uri.query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if map.insert(k.to_string(), v.to_string()).is_some() {
                    return Err(ApiError::invalid(format!(
                        "the query parameter {k} is given more than once"
                    )));
                }
            }
        }
        Ok(Query(map))
    }
}

impl Query {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn string(&self, name: &str) -> ApiResult<Option<String>> {
        match self.str(name) {
            Some(v) if v.len() > 1024 => Err(ApiError::invalid(format!(
                "{name} is longer than 1024 characters"
            ))),
            Some(v) => Ok(Some(v.to_string())),
            None => Ok(None),
        }
    }

    pub fn ocid(&self, name: &'static str) -> ApiResult<Option<String>> {
        match self.str(name) {
            Some(v) => {
                check_ocid(name, v).map_err(|e| ApiError::invalid(e.to_string()))?;
                Ok(Some(v.to_string()))
            }
            None => Ok(None),
        }
    }

    pub fn required_ocid(&self, name: &'static str) -> ApiResult<String> {
        self.ocid(name)?.ok_or_else(|| ApiError::missing(name))
    }

    pub fn enumeration<T: FromStr<Err = UnknownVariant>>(
        &self,
        name: &str,
    ) -> ApiResult<Option<T>> {
        self.str(name)
            .map(|v| v.parse::<T>().map_err(|e| ApiError::invalid(e.to_string())))
            .transpose()
    }

    pub fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.str(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(format!(
                "{name} must be true or false, got {other:?}"
            ))),
        }
    }

    pub fn time(&self, name: &str) -> ApiResult<Option<Timestamp>> {
        self.str(name)
            .map(|v| {
                osm_core::time::parse_rfc3339(v)
                    .map_err(|e| ApiError::invalid(format!("{name}: {e}")))
            })
            .transpose()
    }

    /// `limit`: a whole number from 1 to [`MAX_LIMIT`]; absent means every row.
    pub fn limit(&self) -> ApiResult<Option<u32>> {
        match self.str("limit") {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=MAX_LIMIT as u64).contains(&n) => Ok(Some(n as u32)),
                _ => Err(ApiError::invalid(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, got {v:?}"
                ))),
            },
        }
    }

    /// `sortBy`/`sortOrder`/`limit`/`page` of a list. `name_key` is the sort key value that
    /// means "by name" (`DISPLAYNAME`, or `NAME` for compartments). Time sorts default to
    /// newest first, name sorts to A–Z, as the OCI documentation says.
    pub fn page_request(&self, name_key: &str) -> ApiResult<PageRequest> {
        let sort = match self.str("sortBy") {
            None | Some("TIMECREATED") => SortKey::TimeCreated,
            Some(v) if v == name_key => SortKey::Name,
            Some(v) => {
                return Err(ApiError::invalid(format!(
                    "invalid value {v:?} for sortBy; allowed values: TIMECREATED, {name_key}"
                )));
            }
        };
        let order = self
            .enumeration::<SortOrder>("sortOrder")?
            .unwrap_or(match sort {
                SortKey::TimeCreated => SortOrder::Desc,
                SortKey::Name => SortOrder::Asc,
            });
        let after = match self.str("page") {
            None => None,
            Some(token) => Some(
                Cursor::decode(token, sort, order).map_err(|e| ApiError::invalid(e.to_string()))?,
            ),
        };
        Ok(PageRequest {
            sort,
            order,
            limit: self.limit()?,
            after,
        })
    }
}

/// A JSON body parsed into `T`, with 400s that say what is wrong and where.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The authentication layer has already buffered the body within the size limit.
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::cannot_parse(format!("could not read the request body: {e}")))?;
        parse_json(&bytes).map(Json)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "MissingParameter",
            "a JSON request body is required",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::cannot_parse(format!("the request body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            ApiError::invalid(format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid value for {path}: {inner}"))
        }
    })
}

/// The `if-match` header, when present.
pub fn if_match(headers: &HeaderMap) -> ApiResult<Option<String>> {
    header_text(headers, "if-match")
}

/// The `opc-retry-token` header: 1–64 characters from `[A-Za-z0-9_-]`.
pub fn retry_token(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let token = header_text(headers, "opc-retry-token")?;
    if let Some(t) = &token
        && (t.is_empty()
            || t.len() > 64
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ApiError::invalid(
            "opc-retry-token must be 1 to 64 characters from A-Z, a-z, 0-9, '-' and '_'",
        ));
    }
    Ok(token)
}

fn header_text(headers: &HeaderMap, name: &str) -> ApiResult<Option<String>> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map(|s| s.trim().to_string()).map_err(|_| {
                ApiError::invalid(format!("the {name} header must be printable ASCII"))
            })
        })
        .transpose()
}
