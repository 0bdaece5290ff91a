//! The crate's one error enum, and [`HttpError`]: what a handler returns when it fails. An
//! `HttpError` carries the clean errors the client sees and, for server faults, the cause that
//! only the log sees.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use edgecap_model::{ApiError, Envelope, codes};

/// Everything that can go wrong inside the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration {version} ({name}): {source}")]
    Migrate {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
    #[error("database URL {url:?}: {reason}")]
    DatabaseUrl { url: String, reason: String },
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("destination {destination}: {source}")]
    Destination {
        destination: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("no account {0}")]
    NoAccount(String),
    #[error("agent connection: {0}")]
    Agent(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed request: an HTTP status, the envelope's `errors`, and for server faults the cause,
/// which is logged and never shown to the client.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub errors: Vec<ApiError>,
    cause: Option<Error>,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

impl HttpError {
    pub fn new(status: StatusCode, errors: Vec<ApiError>) -> Self {
        Self {
            status,
            errors,
            cause: None,
            retry_after: None,
        }
    }
    /// 400 with one or more field errors.
    pub fn bad_request(errors: Vec<ApiError>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, errors)
    }
    /// 400 naming one field.
    pub fn field(path: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request(vec![ApiError::field(path, reason)])
    }
    /// 400 with a code other than INVALID_FIELD, still pointing at the field.
    pub fn field_code(code: u32, path: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_request(vec![ApiError {
            code,
            ..ApiError::field(path, reason)
        }])
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            vec![ApiError::new(codes::NOT_FOUND, what.to_string())],
        )
    }
    pub fn unauthenticated(why: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            vec![ApiError::new(codes::UNAUTHENTICATED, why)],
        )
    }
    pub fn forbidden(why: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            vec![ApiError::new(codes::FORBIDDEN, why)],
        )
    }
    pub fn conflict(why: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            vec![ApiError::new(codes::CONFLICT, why)],
        )
    }
    /// 429 with `Retry-After` (code 971, as Cloudflare's rate limit).
    pub fn throttled(t: &crate::rate::Throttled) -> Self {
        let secs = t.retry_after_secs();
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            vec![ApiError::new(
                codes::RATE_LIMITED,
                format!(
                    "Please wait and consider throttling your request speed: {}; retry \
                     after {secs} s",
                    t.reason
                ),
            )],
        );
        e.retry_after = Some(secs);
        e
    }
    /// 503: the request ran out of time; what it did may or may not have taken effect.
    pub fn timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![ApiError::new(
                codes::TIMEOUT,
                format!(
                    "the request did not finish within the server's request timeout ({}); \
                     it may or may not have taken effect: read the resource to see",
                    crate::clock::human(limit)
                ),
            )],
        )
    }
    /// The same error with a `Retry-After` header of `secs` (if any).
    pub fn with_retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after = secs;
        self
    }
    pub fn body(status: StatusCode, why: impl Into<String>) -> Self {
        Self::new(status, vec![ApiError::new(codes::INVALID_BODY, why)])
    }
}

impl From<Error> for HttpError {
    fn from(cause: Error) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            errors: vec![ApiError::new(
                codes::INTERNAL,
                "internal error; the server log has the details",
            )],
            cause: Some(cause),
            retry_after: None,
        }
    }
}

impl From<sqlx::Error> for HttpError {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(e).into()
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match &self.cause {
            Some(cause) => tracing::error!(error = %cause, status = %self.status, "request failed"),
            None => {
                tracing::debug!(status = %self.status, errors = ?self.errors, "request refused")
            }
        }
        let mut response =
            (self.status, axum::Json(Envelope::<()>::err(self.errors))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
