//! Error classification for Fly Machines API calls.
//!
//! Every failure becomes one [`FlyError`] variant carrying an [`ErrorInfo`]: the HTTP status
//! (when there was a response), the `fly-request-id` header, the body's `status` code (e.g.
//! `name_taken`, `insufficient_capacity`) and a short, token-free message.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Longest message kept from a response body or transport error.
const MAX_MESSAGE: usize = 300;
/// Legacy (pre-2026) marker of an app name collision.
const NAME_TAKEN_TEXT: &str = "Name has already been taken";
/// Upper bound on a parsed `Retry-After` (absurd values are clamped).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Context common to every error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// HTTP status, when a response was received.
    pub status: Option<u16>,
    /// The `fly-request-id` response header, for support tickets and logs.
    pub request_id: Option<String>,
    /// The body's `status` field (`name_taken`, `insufficient_capacity`, …).
    pub code: Option<String>,
    /// Short human-readable message (body `message`, else `error`, else raw text).
    pub message: String,
    /// The call that failed (`create_app`, `get_machine`, …: the rate-limit action names),
    /// set by the transport; `None` for errors made outside a request.
    pub call: Option<&'static str>,
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(call) = self.call {
            write!(f, "{call}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [fly-request-id {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FlyError {
    #[error("not found: {0}")]
    NotFound(ErrorInfo),
    #[error("app name already taken: {0}")]
    NameTaken(ErrorInfo),
    #[error("forbidden: {0}")]
    Forbidden(ErrorInfo),
    #[error("unauthorized: {0}")]
    Unauthorized(ErrorInfo),
    /// 409/412: a lease is held by someone else or a precondition (version) failed.
    #[error("lease conflict: {0}")]
    LeaseConflict(ErrorInfo),
    #[error("rate limited: {info}")]
    RateLimited { retry_after: Option<Duration>, info: ErrorInfo },
    /// HTTP 408 or a client-side request timeout.
    #[error("timed out: {0}")]
    Timeout(ErrorInfo),
    /// 5xx, connection failures: retrying later may succeed.
    #[error("transient error: {0}")]
    Transient(ErrorInfo),
    /// Any other 4xx: retrying the same request will fail again.
    #[error("request rejected: {0}")]
    Permanent(ErrorInfo),
    /// Machine create hit 408/5xx/connection loss/timeout: the machine may or may not exist.
    /// Resolve by listing machines for the launch marker before creating again.
    #[error("machine create outcome unknown: {0}")]
    AmbiguousCreate(ErrorInfo),
    /// A 2xx response whose body could not be decoded.
    #[error("undecodable response: {0}")]
    Decode(ErrorInfo),
    /// The client could not be built or a request could not be formed.
    #[error("client configuration error: {0}")]
    Config(ErrorInfo),
    /// Not sent: the Fly API is failing platform-wide (the breaker is open).
    #[error("Fly API unavailable: {0}")]
    Unavailable(ErrorInfo),
}

/// How a response status should be read for a given call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Classify {
    /// Machine create: 408/5xx/transport loss mean "may have happened".
    pub ambiguous: bool,
    /// App create: a bare 409 is the duplicate-name race.
    pub create_app: bool,
}

impl FlyError {
    pub fn info(&self) -> &ErrorInfo {
        match self {
            FlyError::NotFound(i)
            | FlyError::NameTaken(i)
            | FlyError::Forbidden(i)
            | FlyError::Unauthorized(i)
            | FlyError::LeaseConflict(i)
            | FlyError::Timeout(i)
            | FlyError::Transient(i)
            | FlyError::Permanent(i)
            | FlyError::AmbiguousCreate(i)
            | FlyError::Decode(i)
            | FlyError::Config(i)
            | FlyError::Unavailable(i) => i,
            FlyError::RateLimited { info, .. } => info,
        }
    }

    /// This error with the response it came with (a body that failed mid-read).
    pub(crate) fn with_response(mut self, status: u16, request_id: Option<String>) -> Self {
        let info = self.info_mut();
        info.status = Some(status);
        info.request_id = request_id;
        self
    }

    pub(crate) fn info_mut(&mut self) -> &mut ErrorInfo {
        match self {
            FlyError::NotFound(i)
            | FlyError::NameTaken(i)
            | FlyError::Forbidden(i)
            | FlyError::Unauthorized(i)
            | FlyError::LeaseConflict(i)
            | FlyError::Timeout(i)
            | FlyError::Transient(i)
            | FlyError::Permanent(i)
            | FlyError::AmbiguousCreate(i)
            | FlyError::Decode(i)
            | FlyError::Config(i)
            | FlyError::Unavailable(i) => i,
            FlyError::RateLimited { info, .. } => info,
        }
    }

    /// True when repeating the same (idempotent) request later may succeed.
    /// `AmbiguousCreate` is false: it must be resolved by listing, not by a blind retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FlyError::RateLimited { .. } | FlyError::Timeout(_) | FlyError::Transient(_))
    }

    /// Fixed snake_case label for metrics and structured logs.
    pub fn kind(&self) -> &'static str {
        match self {
            FlyError::NotFound(_) => "not_found",
            FlyError::NameTaken(_) => "name_taken",
            FlyError::Forbidden(_) => "forbidden",
            FlyError::Unauthorized(_) => "unauthorized",
            FlyError::LeaseConflict(_) => "lease_conflict",
            FlyError::RateLimited { .. } => "rate_limited",
            FlyError::Timeout(_) => "timeout",
            FlyError::Transient(_) => "transient",
            FlyError::Permanent(_) => "permanent",
            FlyError::AmbiguousCreate(_) => "ambiguous_create",
            FlyError::Decode(_) => "decode",
            FlyError::Config(_) => "config",
            FlyError::Unavailable(_) => "unavailable",
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        self.info().request_id.as_deref()
    }

    pub fn status(&self) -> Option<u16> {
        self.info().status
    }

    pub fn message(&self) -> &str {
        &self.info().message
    }

    /// The body's `status` code, e.g. `insufficient_capacity`.
    pub fn code(&self) -> Option<&str> {
        self.info().code.as_deref()
    }

    /// `Retry-After` sent with a 429, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FlyError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Classify a non-2xx response. `token` is redacted from the message.
    pub(crate) fn from_response(
        status: u16,
        request_id: Option<String>,
        retry_after: Option<Duration>,
        body: &[u8],
        how: Classify,
        token: &str,
    ) -> FlyError {
        let parsed = ParsedBody::parse(body, token);
        let taken = parsed.code.as_deref() == Some("name_taken") || parsed.raw_has_taken;
        let info = ErrorInfo {
            status: Some(status),
            request_id,
            code: parsed.code,
            message: parsed.message,
            call: None,
        };
        match status {
            409 | 422 if taken => FlyError::NameTaken(info),
            409 if how.create_app => FlyError::NameTaken(info),
            401 => FlyError::Unauthorized(info),
            403 => FlyError::Forbidden(info),
            404 => FlyError::NotFound(info),
            408 | 500..=599 if how.ambiguous => FlyError::AmbiguousCreate(info),
            408 => FlyError::Timeout(info),
            409 | 412 => FlyError::LeaseConflict(info),
            429 => FlyError::RateLimited { retry_after, info },
            500..=599 => FlyError::Transient(info),
            _ => FlyError::Permanent(info),
        }
    }

    /// Classify a transport failure (no complete response).
    pub(crate) fn from_transport(err: &reqwest::Error, how: Classify, token: &str) -> FlyError {
        let info = ErrorInfo {
            status: err.status().map(|s| s.as_u16()),
            message: sanitize(&error_chain(err), token),
            ..ErrorInfo::default()
        };
        if err.is_connect() {
            // Nothing was sent: safe to call transient even for creates.
            FlyError::Transient(info)
        } else if how.ambiguous {
            FlyError::AmbiguousCreate(info)
        } else if err.is_timeout() {
            FlyError::Timeout(info)
        } else {
            FlyError::Transient(info)
        }
    }

    pub(crate) fn decode(
        status: u16,
        request_id: Option<String>,
        what: &str,
        err: &serde_json::Error,
    ) -> FlyError {
        FlyError::Decode(ErrorInfo {
            status: Some(status),
            request_id,
            code: None,
            message: format!("decoding {what}: {err}"),
            call: None,
        })
    }

    pub fn unavailable() -> FlyError {
        FlyError::Unavailable(ErrorInfo {
            message: "the Fly API is failing platform-wide; request not sent".into(),
            ..ErrorInfo::default()
        })
    }

    /// Not sent: this client's share of a Fly budget for `call` is spent for `wait` (the
    /// caller may not wait that long in place).
    pub(crate) fn budget_spent(call: &'static str, wait: Duration) -> FlyError {
        FlyError::RateLimited {
            retry_after: Some(wait),
            info: ErrorInfo {
                message: "Fly's rate limit for this call is used up; request not sent".into(),
                call: Some(call),
                ..ErrorInfo::default()
            },
        }
    }

    /// A client-side refusal by [`FlyError::budget_spent`] (no HTTP status: never sent).
    pub fn is_unsent_throttle(&self) -> bool {
        matches!(self, FlyError::RateLimited { info, .. } if info.status.is_none())
    }

    /// A failure of the platform rather than of this request: 5xx, timeouts, lost
    /// connections, or not sent because the breaker is open.
    pub fn is_platform_failure(&self) -> bool {
        matches!(self, FlyError::Unavailable(_))
            || super::breaker::Signal::of(self, false) == super::breaker::Signal::PlatformFailure
    }

    pub(crate) fn config(message: impl Into<String>) -> FlyError {
        FlyError::Config(ErrorInfo { message: message.into(), ..ErrorInfo::default() })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    error: Option<serde_json::Value>,
    message: Option<String>,
    status: Option<String>,
}

struct ParsedBody {
    message: String,
    code: Option<String>,
    raw_has_taken: bool,
}

impl ParsedBody {
    fn parse(body: &[u8], token: &str) -> ParsedBody {
        let raw = String::from_utf8_lossy(body);
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let error_text = match parsed.error {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let message = parsed
            .message
            .filter(|m| !m.is_empty())
            .or(error_text)
            .unwrap_or_else(|| raw.to_string());
        let message = if message.trim().is_empty() { "(empty body)".to_owned() } else { message };
        ParsedBody {
            message: sanitize(&message, token),
            code: parsed.status.filter(|s| !s.is_empty()).map(|s| sanitize(&s, token)),
            raw_has_taken: raw.contains(NAME_TAKEN_TEXT),
        }
    }
}

/// Redact the token (and anything that looks like one), flatten whitespace and truncate.
pub(crate) fn sanitize(text: &str, token: &str) -> String {
    let mut s = text.to_owned();
    for needle in token_needles(token) {
        s = s.replace(needle, "***");
    }
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out: String = flat.trim().chars().take(MAX_MESSAGE).collect();
    if flat.trim().chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

/// The whole token plus each comma-separated part (long enough to be a credential).
fn token_needles(token: &str) -> Vec<&str> {
    let token = token.trim();
    let bare =
        token.strip_prefix("FlyV1 ").or_else(|| token.strip_prefix("Bearer ")).unwrap_or(token);
    let mut v: Vec<&str> = vec![token, bare];
    v.extend(bare.split(',').map(str::trim));
    v.retain(|n| n.len() >= 6);
    v.sort_by_key(|n| std::cmp::Reverse(n.len()));
    v
}

fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// `Retry-After` as delay-seconds or an HTTP date; clamped to one hour.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let d = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
