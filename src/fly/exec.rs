//! `POST /apps/{app}/machines/{id}/exec`: run a command inside a started machine and get its
//! exit code and output back (HTTP 200 even when the command fails).
//!
//! Sent exactly once (a command is not assumed idempotent). Rate-limited like any other
//! action: one bucket per machine id (Fly's default 1 req/s, bursts of 3). A 408 (flyd's
//! deadline) and a client-side timeout are [`FlyError::Timeout`]; the HTTP timeout is the
//! command's `timeout` plus [`EXEC_SLACK`], so the server's own deadline answers first.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::FlyError;
use super::client::FlyClient;
use super::lenient::{opt_i64, string};
use super::transport::{Action, Request};

/// HTTP timeout on top of the command's own `timeout`.
pub const EXEC_SLACK: Duration = Duration::from_secs(5);

/// The request body (the spec's `MachineExecRequest`; `cmd` is deprecated, `command` is sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecRequest<'a> {
    pub command: &'a [&'a str],
    /// Whole seconds, at least 1.
    pub timeout: u64,
}

/// The spec's `flydv1.ExecResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ExecResponse {
    #[serde(deserialize_with = "opt_i64")]
    pub exit_code: Option<i64>,
    #[serde(deserialize_with = "opt_i64")]
    pub exit_signal: Option<i64>,
    #[serde(deserialize_with = "string")]
    pub stdout: String,
    #[serde(deserialize_with = "string")]
    pub stderr: String,
}

/// Whole seconds for the request's `timeout`, rounded up, at least 1.
pub fn exec_secs(timeout: Duration) -> u64 {
    (timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)).max(1)
}

impl FlyClient {
    /// Runs `cmd` in machine `id` of `app`, waiting at most `timeout` for it to finish.
    pub async fn exec_machine(
        &self,
        app: &str,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<ExecResponse, FlyError> {
        let secs = exec_secs(timeout);
        let body = ExecRequest { command: cmd, timeout: secs };
        let path = ["apps", app, "machines", id, "exec"];
        let mut req = Request::new(Action::ExecMachine, Method::POST, &path, id).json(&body)?;
        req.timeout = Some(Duration::from_secs(secs) + EXEC_SLACK);
        self.transport().send(&req).await?.json("exec response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_never_zero() {
        assert_eq!(exec_secs(Duration::ZERO), 1);
        assert_eq!(exec_secs(Duration::from_millis(1500)), 2);
        assert_eq!(exec_secs(Duration::from_secs(10)), 10);
    }

    #[test]
    fn response_is_lenient() {
        let r: ExecResponse =
            serde_json::from_str(r#"{"exit_code":"3","stdout":null,"stderr":"x","extra":1}"#)
                .unwrap();
        assert_eq!((r.exit_code, r.stdout.as_str(), r.stderr.as_str()), (Some(3), "", "x"));
        let body = serde_json::to_value(ExecRequest { command: &["a", "b"], timeout: 2 }).unwrap();
        assert_eq!(body, serde_json::json!({"command": ["a", "b"], "timeout": 2}));
    }
}
