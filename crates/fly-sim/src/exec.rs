//! `POST …/machines/{id}/exec`: runs a command in a started machine.
//!
//! As on Fly: HTTP 200 with `{exit_code, exit_signal, stdout, stderr}` whatever the command's
//! exit code; a command still running when the request's `timeout` (seconds) passes answers
//! **408** `deadline_exceeded`; a machine that is not `started` answers **412**
//! `failed_precondition` (exec never wakes a stopped or suspended machine).
//!
//! Commands: the preview runner's `node …/entrypoint.mjs sync [--timeout Ns]` is simulated
//! (see [`SyncFault`]; its answer carries the runner's `dev` status), and so is
//! `node …/entrypoint.mjs status` (the runner's status JSON, exit 0 only while the dev server
//! serves); `echo …` prints its arguments; `true` exits 0; anything else exits 127.
//! The simulated machine serves the latest revision pushed for its app with
//! [`crate::SimHandle::push_revision`] as of its last sync.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult, Reply};
use super::machine::MState;
use super::revisions::SyncFault;
use super::shared::{Shared, lock};

/// Default run time of a simulated `sync` (a `git fetch` + reset of a small change).
pub const DEFAULT_SYNC_TIME: Duration = Duration::from_millis(20);
/// Exec `timeout` when the request has none.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// A parsed exec request.
struct ExecCall {
    argv: Vec<String>,
    timeout: Duration,
}

fn parse(body: &Value) -> Result<ExecCall, ApiError> {
    let argv: Vec<String> = match (body.get("command"), body.get("cmd")) {
        (Some(Value::Array(a)), _) => {
            a.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        (_, Some(Value::String(s))) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if argv.is_empty() {
        return Err(ApiError::invalid("command is required"));
    }
    let secs = match body.get("timeout") {
        None | Some(Value::Null) => DEFAULT_TIMEOUT_SECS,
        Some(t) => {
            t.as_u64().filter(|t| *t > 0).ok_or_else(|| ApiError::invalid("invalid timeout"))?
        }
    };
    Ok(ExecCall { argv, timeout: Duration::from_secs(secs) })
}

/// The command is the runner's `verb` (`node …/entrypoint.mjs <verb> …`).
fn is_runner(argv: &[String], verb: &str) -> bool {
    argv.iter().any(|a| a.ends_with("entrypoint.mjs")) && argv.iter().any(|a| a == verb)
}

/// The runner's `sync --timeout` (default 10 s), if the command is the runner's `sync`.
fn runner_sync(argv: &[String]) -> Option<Duration> {
    if !is_runner(argv, "sync") {
        return None;
    }
    let t = argv.iter().position(|a| a == "--timeout").and_then(|i| argv.get(i + 1));
    let secs = t.and_then(|t| t.trim_end_matches('s').parse::<u64>().ok()).unwrap_or(10);
    Some(Duration::from_secs(secs))
}

fn output(exit_code: i64, stdout: &str, stderr: &str) -> ApiResult {
    Ok(Reply::ok(
        json!({ "exit_code": exit_code, "exit_signal": 0, "stdout": stdout, "stderr": stderr }),
    ))
}

fn deadline(timeout: Duration) -> ApiError {
    ApiError::new(
        408,
        format!("deadline_exceeded: exec did not finish within {}s", timeout.as_secs()),
    )
}

/// Handles the exec request (after latency, auth, faults and rate limits).
pub(crate) async fn exec(shared: &Shared, app: &str, id: &str, body: &Value) -> ApiResult {
    let call = parse(body)?;
    let served = lock(&shared.exec).served(app, id);
    let (status_code, dev) = {
        let mut world = lock(&shared.world);
        let clock = world.env.clock;
        let machine = world.machine(app, id, Instant::now())?;
        if machine.state != MState::Started {
            return Err(ApiError::precondition(format!(
                "machine {id} is not running (state {})",
                machine.state.as_str()
            )));
        }
        machine.runner_status(&clock, &served)
    };
    if is_runner(&call.argv, "status") {
        return output(status_code, &line(&dev), "");
    }
    let Some(runner_timeout) = runner_sync(&call.argv) else {
        return plain(&call.argv);
    };
    let (fault, run) = {
        let st = lock(&shared.exec);
        (st.faults.get(app).copied(), st.sync_time.unwrap_or(DEFAULT_SYNC_TIME))
    };
    if fault == Some(SyncFault::Wedged) {
        tokio::time::sleep(call.timeout).await;
        return Err(deadline(call.timeout));
    }
    if fault == Some(SyncFault::Hang) {
        let wait = runner_timeout.min(call.timeout);
        tokio::time::sleep(wait).await;
        if call.timeout <= runner_timeout {
            return Err(deadline(call.timeout));
        }
        let msg = format!("no answer within {}s", runner_timeout.as_secs());
        return output(1, &line(&json!({"ok": false, "error": "timeout", "message": msg})), "");
    }
    if run > call.timeout {
        tokio::time::sleep(call.timeout).await;
        return Err(deadline(call.timeout));
    }
    tokio::time::sleep(run).await;
    Ok(sync_answer(shared, app, id, fault, dev))
}

fn sync_answer(
    shared: &Shared,
    app: &str,
    id: &str,
    fault: Option<SyncFault>,
    dev: Value,
) -> Reply {
    let mut st = lock(&shared.exec);
    let served = st.served(app, id);
    let (code, value) = match fault {
        Some(SyncFault::FetchFailed) => (
            1,
            json!({"ok": false, "error": "fetch_failed",
            "message": "fatal: unable to access 'https://github.com/': simulated", "revision": served}),
        ),
        Some(SyncFault::NotRunning) => (
            3,
            json!({"ok": false, "error": "not_running",
            "message": "no runner listening on /app/.runner.sock (ENOENT)"}),
        ),
        Some(SyncFault::Stale) => (0, json!({"ok": true, "revision": served})),
        Some(SyncFault::Installing) => {
            let next = st.pushed.get(app).cloned().unwrap_or_else(|| served.clone());
            (0, json!({"ok": true, "revision": served, "installing": next}))
        }
        _ => {
            let now = st.pushed.get(app).cloned().unwrap_or(served);
            st.served.insert(id.to_owned(), now.clone());
            (0, json!({"ok": true, "revision": now}))
        }
    };
    let mut value = value;
    let mut dev = dev;
    if let Some(sha) = value.get("revision").and_then(Value::as_str) {
        dev["revision"] = json!(super::runner::sha12(sha));
    }
    value["dev"] = dev;
    let body = json!({ "exit_code": code, "exit_signal": 0, "stdout": line(&value), "stderr": "" });
    Reply::ok(body)
}

fn line(v: &Value) -> String {
    format!("{v}\n")
}

fn plain(argv: &[String]) -> ApiResult {
    match argv.first().map(String::as_str) {
        Some("true") => output(0, "", ""),
        Some("echo") => output(0, &format!("{}\n", argv[1..].join(" ")), ""),
        Some(cmd) => output(127, "", &format!("exec: {cmd:?}: executable file not found in $PATH")),
        None => Err(ApiError::invalid("command is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn recognises_the_runner_sync() {
        let cmd = argv("node /usr/local/lib/runner/entrypoint.mjs sync --timeout 7s");
        assert_eq!(runner_sync(&cmd), Some(Duration::from_secs(7)));
        assert_eq!(runner_sync(&argv("node entrypoint.mjs sync")), Some(Duration::from_secs(10)));
        assert_eq!(runner_sync(&argv("echo sync")), None);
    }

    #[test]
    fn parses_command_and_cmd() {
        let c = parse(&json!({"command": ["echo", "hi"], "timeout": 3})).unwrap();
        assert_eq!((c.argv, c.timeout), (argv("echo hi"), Duration::from_secs(3)));
        assert_eq!(parse(&json!({"cmd": "true"})).unwrap().timeout, Duration::from_secs(30));
        assert_eq!(parse(&json!({})).err().map(|e| e.status), Some(400));
        assert_eq!(parse(&json!({"cmd": "x", "timeout": 0})).err().map(|e| e.status), Some(400));
    }

    #[test]
    fn initial_revision_is_a_sha() {
        let r = super::super::revisions::ExecState::initial("app-a");
        assert_eq!(r.len(), 40);
        assert!(r.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(r, super::super::revisions::ExecState::initial("app-b"));
    }
}
