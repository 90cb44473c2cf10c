//! The one external error type. Every failure leaves osmd as `{code, message}` with the OCI
//! status code; internal details go to the log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use osm_store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    pub fn missing(param: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("the parameter {param} is required"),
        )
    }

    pub fn cannot_parse(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "CannotParseRequest", message)
    }

    pub fn related_not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "RelatedResourceNotAuthorizedOrNotFound",
            message,
        )
    }

    pub fn not_authenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "NotAuthenticated", message)
    }

    /// A resource that does not exist or that the caller may not see (the two are not told apart).
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotAuthorizedOrNotFound",
            format!("{what} {id} does not exist or you are not authorized to access it"),
        )
    }

    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("there is no operation {method} {path}"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    pub fn incorrect_state(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "IncorrectState", message)
    }

    pub fn no_etag_match(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "NoEtagMatch",
            format!(
                "the if-match etag does not match the current version of {what} {id}; read it again and retry"
            ),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// A compliance report with details that would list more updates than the server holds
    /// for one request.
    pub fn report_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ReportTooLarge",
            format!(
                "the report would list more than {limit} missing updates with details=true; \
                 narrow it (a compartment or group, a CVE filter, a higher severity) or ask \
                 without details (the counts have no limit)"
            ),
        )
    }

    /// The caller may read nothing at all (told apart from a resource out of reach only by
    /// the message, which names no resource).
    pub fn nothing_granted(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotAuthorizedOrNotFound", message)
    }

    /// A create or rename that would duplicate a unique name.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "NotAuthorizedOrResourceAlreadyExists",
            message,
        )
    }

    /// An `opc-retry-token` already used for another request.
    pub fn retry_token_reused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "InvalidatedRetryToken", message)
    }

    /// An unexpected failure: logged with its cause, reported without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "an internal error occurred; the opc-request-id identifies it in the server log",
        )
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "service unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the service is temporarily unavailable; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// Store failures that reach a handler unmapped: the ones a request can cause become 4xx.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "NotAuthorizedOrNotFound",
                "the resource does not exist or you are not authorized to access it",
            ),
            StoreError::VersionMismatch => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "NoEtagMatch",
                "the resource was changed by another request; read it again and retry",
            ),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::MissingReference(m) => ApiError::related_not_found(m),
            StoreError::RetryTokenUsed => ApiError::new(
                StatusCode::CONFLICT,
                "InvalidatedRetryToken",
                "the opc-retry-token was already used for another request",
            ),
            other if other.is_busy() => ApiError::unavailable(other),
            other => ApiError::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
