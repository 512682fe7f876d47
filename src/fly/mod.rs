//! Typed client for the Fly Machines REST API ("flaps").
//!
//! * [`FlyClient`] — one method per endpoint the controller uses, with client-side token
//!   buckets matching Fly's published limits, bounded retries for idempotent calls only,
//!   and metrics for every request.
//! * [`FlyError`] — every failure classified into a small set of kinds the reconciler can
//!   act on; each carries the HTTP status, the `fly-request-id` and a short message.
//! * [`types`] — lenient response/request types: unknown fields, unknown states and
//!   Go-style `null` collections never fail decoding.

mod action;
mod app_list;
pub mod breaker;
pub mod client;
pub mod error;
pub mod exec;
mod lenient;
mod ratelimit;
pub mod secrets;
mod streamed;
mod transport;
pub mod types;

use std::fmt;

pub use client::{FlyClient, FlyClientConfig, WaitOutcome};
pub use error::{ErrorInfo, FlyError};
pub use exec::{ExecRequest, ExecResponse};
pub use transport::bounded_waits;
pub use types::*;

/// An API token. `Debug` and `Display` print `***`; use [`Secret::expose`] to read it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw token. Only the transport layer should call this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("fm2_supersecret");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "fm2_supersecret");
        assert!(Secret::new("  ").is_empty());
    }
}
