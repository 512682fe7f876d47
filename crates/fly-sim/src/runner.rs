//! The simulated preview runner as Fly shows it: its phases, the `dev` check's output (the
//! runner's `GET /__preview/ready` body, kept after the machine stops), the check list of a
//! machine, and the `status` JSON its exec answers with (deploy/runner's contract).

use std::time::Duration;

use serde_json::{Value, json};

use super::ids::SimClock;
use super::machine::{MState, Machine};
use super::phases::{CRASHLOOP_BODY, STARTING_BODY};

/// The top-level check that carries the runner's readiness (and its output).
pub(crate) const DEV_CHECK: &str = "dev";

/// `FAILURE_LINGER` of the machine's env (runner syntax `500ms`, `20s`, `1m`; default 20 s).
pub(crate) fn linger(config: &Value) -> Duration {
    let raw = config.pointer("/env/FAILURE_LINGER").and_then(Value::as_str).unwrap_or("20s");
    let (num, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = num.parse().unwrap_or(20);
    match unit {
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        _ => Duration::from_secs(n),
    }
}

/// A commit as the runner names it: its first 12 characters.
pub(crate) fn sha12(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn has_dev_check(config: &Value) -> bool {
    config.get("checks").and_then(|c| c.get(DEV_CHECK)).is_some()
}

impl Machine {
    /// The runner process is up (the status page answers) though the dev server may not be.
    fn runner_alive(&self) -> bool {
        self.state == MState::Started && self.dev_body.is_some()
    }

    /// `checks[]` as Fly reports them: service checks pass while the runner answers, the
    /// `dev` check only while the dev server serves; a failing `dev` check shows the runner's
    /// last readiness body, also after the machine stopped.
    pub(crate) fn checks_json(&self, clock: &SimClock) -> Vec<Value> {
        let dev_checked = has_dev_check(&self.config);
        let updated = clock.rfc3339(self.checks_updated);
        check_names(&self.config)
            .into_iter()
            .map(|name| {
                let is_dev = name == DEV_CHECK;
                let (status, output) = if self.checks_passing {
                    ("passing", if is_dev { "serving: the dev server answers" } else { "Success" })
                } else if is_dev {
                    ("critical", self.dev_body.as_deref().unwrap_or(self.check_output))
                } else if dev_checked && self.runner_alive() {
                    ("passing", "ok")
                } else {
                    ("critical", self.check_output)
                };
                json!({"name": name, "status": status, "output": output, "updated_at": updated})
            })
            .collect()
    }

    /// The runner's `status` JSON and the exec's exit code (0 only while serving).
    pub(crate) fn runner_status(&self, clock: &SimClock, revision: &str) -> (i64, Value) {
        let body = if self.checks_passing {
            "serving: the dev server answers"
        } else {
            self.dev_body.as_deref().unwrap_or(STARTING_BODY)
        };
        let mut lines = body.lines();
        let first = lines.next().unwrap_or_default();
        let (phase, message) = first.split_once(": ").unwrap_or(("starting", first));
        let restarts = if phase == "crashloop" { 5 } else { 0 };
        let status = json!({
            "phase": phase, "since": clock.rfc3339(self.checks_updated), "message": message,
            "lines": lines.collect::<Vec<_>>(), "restarts": restarts,
            "revision": sha12(revision),
        });
        (i64::from(phase != "serving"), status)
    }

    /// The dev server crash-loops: the `dev` check turns critical with the crash-loop body, and
    /// the runner exits 7 after `FAILURE_LINGER`. Only a started machine.
    pub(crate) fn crash_loop(&mut self, now: tokio::time::Instant) -> bool {
        if self.state != MState::Started {
            return false;
        }
        self.pending.clear();
        self.checks_passing = false;
        self.checks_updated = now;
        self.dev_body = Some(CRASHLOOP_BODY.to_owned());
        let exit = super::machine::Step::Exit { code: 7, oom_killed: false };
        self.schedule(now + linger(&self.config), exit);
        true
    }
}

/// Names Fly gives checks: `servicecheck-00-http-3000` for service checks, map keys for
/// top-level `checks`.
pub(crate) fn check_names(config: &Value) -> Vec<String> {
    let mut names = Vec::new();
    let services = config.get("services").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    for service in services {
        let internal_port = service.get("internal_port").and_then(Value::as_i64).unwrap_or(0);
        let checks = service.get("checks").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        for check in checks {
            let kind = check.get("type").and_then(Value::as_str).unwrap_or("tcp");
            let port = check.get("port").and_then(Value::as_i64).unwrap_or(internal_port);
            names.push(format!("servicecheck-{:02}-{kind}-{port}", names.len()));
        }
    }
    if let Some(top) = config.get("checks").and_then(Value::as_object) {
        names.extend(top.keys().cloned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_reads_runner_durations() {
        assert_eq!(
            linger(&json!({"env": {"FAILURE_LINGER": "500ms"}})),
            Duration::from_millis(500)
        );
        assert_eq!(linger(&json!({"env": {"FAILURE_LINGER": "2m"}})), Duration::from_secs(120));
        assert_eq!(linger(&json!({})), Duration::from_secs(20));
    }
}
