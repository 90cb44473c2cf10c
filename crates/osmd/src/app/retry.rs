//! `opc-retry-token` idempotency. A token names one request of one caller for 24 hours: a
//! repeat of the same request returns what the first one produced, without doing it again;
//! the same token on a different request is refused with `409 InvalidatedRetryToken`.

use jiff::Timestamp;
use osm_core::RetryRecord;
use osm_store::StoreError;

use super::{App, Principal};
use crate::http::error::{ApiError, ApiResult};

/// Tokens older than this are forgotten.
pub const RETRY_TOKEN_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// A retry token with what identifies the request it came with.
#[derive(Debug, Clone)]
pub struct RetryKey {
    pub token: String,
    /// Operation and target, e.g. `CreateManagedInstanceGroup`.
    pub operation: String,
    /// Digest of the request body and parameters.
    pub request_hash: String,
}

impl RetryKey {
    pub fn new(
        token: Option<String>,
        operation: impl Into<String>,
        request: &[&[u8]],
    ) -> Option<RetryKey> {
        let token = token?;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in request {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let hash: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(RetryKey {
            token,
            operation: operation.into(),
            request_hash: hash,
        })
    }

    pub fn record(&self, p: &Principal, resource_id: &str) -> RetryRecord {
        RetryRecord {
            principal_id: p.user_id.clone(),
            token: self.token.clone(),
            operation: self.operation.clone(),
            request_hash: self.request_hash.clone(),
            resource_id: resource_id.to_string(),
            time_created: Timestamp::now(),
        }
    }
}

impl App {
    /// The resource id a still-valid earlier use of this token produced, if any; an error when
    /// the token was used for another request.
    pub async fn retry_replay(
        &self,
        p: &Principal,
        key: Option<&RetryKey>,
    ) -> ApiResult<Option<String>> {
        let Some(key) = key else { return Ok(None) };
        let Some(rec) = self.store.retry_record_get(&p.user_id, &key.token).await? else {
            return Ok(None);
        };
        if rec.time_created < Timestamp::now() - RETRY_TOKEN_LIFETIME {
            return Ok(None);
        }
        if rec.operation != key.operation || rec.request_hash != key.request_hash {
            return Err(ApiError::retry_token_reused(
                "this opc-retry-token was already used for a different request; use a new token",
            ));
        }
        Ok(Some(rec.resource_id))
    }

    /// After a store call failed with `RetryTokenUsed` (a concurrent request with the same
    /// token won the race): the winner's resource id.
    pub async fn retry_after_race(
        &self,
        p: &Principal,
        key: Option<&RetryKey>,
        err: StoreError,
    ) -> ApiResult<String> {
        match (err, key) {
            (StoreError::RetryTokenUsed, Some(_)) => {
                self.retry_replay(p, key).await?.ok_or_else(|| {
                    ApiError::conflict(
                        "a concurrent request with the same opc-retry-token is in progress",
                    )
                })
            }
            (other, _) => Err(other.into()),
        }
    }
}
