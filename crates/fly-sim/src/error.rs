//! Fly-shaped replies: success bodies and `{"error": …}` errors.

use serde_json::{Value, json};

/// A successful answer: status and optional JSON body (202/204 have none).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Self { status: 200, body: Some(body) }
    }

    pub(crate) fn with_status(status: u16, body: Value) -> Self {
        Self { status, body: Some(body) }
    }

    pub(crate) fn empty(status: u16) -> Self {
        Self { status, body: None }
    }
}

/// An error answer; the body is always a JSON object with an `error` string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub body: Value,
}

pub(crate) type ApiResult = Result<Reply, ApiError>;

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, body: json!({ "error": message.into() }) }
    }

    pub(crate) fn with_code(status: u16, message: impl Into<String>, code: &str) -> Self {
        Self { status, body: json!({ "error": message.into(), "status": code }) }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(401, "Authenticate: token validation error")
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(403, "unauthorized")
    }

    pub(crate) fn app_not_found() -> Self {
        Self::new(404, "app not found")
    }

    pub(crate) fn machine_not_found() -> Self {
        Self::new(404, "machine not found")
    }

    pub(crate) fn invalid(message: impl std::fmt::Display) -> Self {
        Self::new(400, format!("invalid_argument: {message}"))
    }

    pub(crate) fn precondition(message: impl std::fmt::Display) -> Self {
        Self::new(412, format!("failed_precondition: {message}"))
    }

    pub(crate) fn rate_limited() -> Self {
        Self::new(429, "rate limit exceeded")
    }

    pub(crate) fn insufficient_capacity() -> Self {
        Self::with_code(
            412,
            "aborted: insufficient resources available to fulfill request: could not reserve \
             resource for machine: insufficient memory available to fulfill request",
            "insufficient_capacity",
        )
    }

    /// The body an injected `Fault::Status(code)` answers with.
    pub(crate) fn injected(status: u16) -> Self {
        let message = match status {
            401 => "Authenticate: token validation error",
            403 => "unauthorized",
            404 => "not found",
            408 => "deadline_exceeded: context deadline exceeded",
            409 => "aborted: conflict",
            429 => "rate limit exceeded",
            500 => "internal: internal server error",
            502 => "bad gateway",
            503 => "unavailable: service unavailable",
            504 => "gateway timeout",
            _ => "injected fault",
        };
        Self::new(status, message)
    }
}
