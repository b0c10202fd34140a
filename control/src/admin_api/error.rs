//! The one place an admin API error becomes an HTTP response.
//!
//! Handlers return [`ApiError`]; `?` converts store and crypto errors; the
//! status and the JSON body (`{"error": "..."}`, as the CLI reads it) are
//! decided here and nowhere else.

use crate::http::Response;
use crate::store::StoreError;

/// Why an admin request failed, by whose fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// Malformed or invalid input (400).
    Invalid(String),
    /// No valid token (401).
    Unauthorized(String),
    /// Outside the token's scope (403).
    Forbidden(String),
    /// No such thing, or no such endpoint (404).
    NotFound(String),
    /// The method does not apply to the path (405).
    MethodNotAllowed(String),
    /// Exists already, or in use (409).
    Conflict(String),
    /// Shutting down, or not ready (503).
    Unavailable(String),
    /// Our own failure (500); logged when it becomes a response.
    Internal(String),
}

impl ApiError {
    fn status(&self) -> u16 {
        match self {
            ApiError::Invalid(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict(_) => 409,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    fn message(&self) -> &str {
        match self {
            ApiError::Invalid(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::Conflict(m)
            | ApiError::Unavailable(m)
            | ApiError::Internal(m) => m,
        }
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Response {
        if let ApiError::Internal(m) = &e {
            tracing::error!(error = %m, "admin request failed");
        }
        Response::error(e.status(), e.message())
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        Response::from(self).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let m = e.to_string();
        match e {
            StoreError::NotFound(_) => ApiError::NotFound(m),
            StoreError::Conflict(_) => ApiError::Conflict(m),
            StoreError::Invalid(_) => ApiError::Invalid(m),
            StoreError::Unavailable => ApiError::Unavailable(m),
            StoreError::Internal(_) => ApiError::Internal(m),
        }
    }
}

impl From<sluice_contract::crypto::CryptoError> for ApiError {
    fn from(e: sluice_contract::crypto::CryptoError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_the_body_the_cli_reads() {
        for (e, status) in [
            (ApiError::Invalid("x".into()), 400),
            (ApiError::Unauthorized("x".into()), 401),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::MethodNotAllowed("x".into()), 405),
            (ApiError::Conflict("x".into()), 409),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal("x".into()), 500),
        ] {
            let r = Response::from(e);
            assert_eq!(r.status, status);
            assert_eq!(r.body, br#"{"error":"x"}"#);
        }
        let r = axum::response::IntoResponse::into_response(ApiError::Forbidden("no".into()));
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["content-type"], "application/json");
        let from_store = ApiError::from(StoreError::Conflict("in use".into()));
        assert_eq!(Response::from(from_store).status, 409);
    }
}
