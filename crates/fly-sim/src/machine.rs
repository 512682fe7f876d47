//! One simulated machine: state, scheduled transitions (applied lazily), JSON rendering.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::ids::{IdGen, SimClock};
use super::phases::{CRASHLOOP_BRANCH, EXIT_BRANCHES, STARTING_BODY};

/// How long a destroyed machine stays readable (`state: "destroyed"`) before GET answers 404.
pub(crate) const DESTROYED_VISIBLE_FOR: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MState {
    Created,
    Starting,
    Started,
    Stopping,
    Stopped,
    Suspending,
    Suspended,
    Restarting,
    Updating,
    Destroyed,
    Failed,
}

impl MState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MState::Created => "created",
            MState::Starting => "starting",
            MState::Started => "started",
            MState::Stopping => "stopping",
            MState::Stopped => "stopped",
            MState::Suspending => "suspending",
            MState::Suspended => "suspended",
            MState::Restarting => "restarting",
            MState::Updating => "updating",
            MState::Destroyed => "destroyed",
            MState::Failed => "failed",
        }
    }
}

/// The simulated runner's fate, keyed by the machine's env (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Healthy,
    RepoNotFound,
    NeverHealthy,
    /// The VM fails to boot: state `failed`.
    BootFailed,
    /// The runner starts, then exits with `code` (`oom_killed`: killed by the kernel for memory),
    /// leaving `body` as the `dev` check's output.
    Exits {
        code: i64,
        oom_killed: bool,
        body: &'static str,
    },
    /// The dev server serves, then crash-loops: the runner exits 7 after `FAILURE_LINGER`.
    CrashLoop,
}

impl Outcome {
    pub(crate) fn from_config(config: &Value) -> Self {
        let env = |key: &str| config.pointer(&format!("/env/{key}")).and_then(Value::as_str);
        if env("REPO_URL").is_some_and(|u| u.trim_end_matches('/').ends_with("/does-not-exist")) {
            Outcome::RepoNotFound
        } else if env("REPO_BRANCH") == Some("sim-never-healthy") {
            Outcome::NeverHealthy
        } else if env("REPO_BRANCH") == Some("sim-boot-failed") {
            Outcome::BootFailed
        } else if env("REPO_BRANCH") == Some(CRASHLOOP_BRANCH) {
            Outcome::CrashLoop
        } else if let Some(&(_, code, oom_killed, body)) =
            EXIT_BRANCHES.iter().find(|(b, ..)| env("REPO_BRANCH") == Some(*b))
        {
            Outcome::Exits { code, oom_killed, body }
        } else {
            Outcome::Healthy
        }
    }
}

/// A transition scheduled for a later instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Step {
    /// → `starting`.
    Starting,
    /// Boot finished: → `started`, or the process exits (runner outcome).
    Boot,
    /// Service checks turn `passing`.
    ChecksPass,
    /// The serving dev server starts crash-looping (`Outcome::CrashLoop`).
    CrashLoop,
    /// The started runner exits on its own (`Outcome::Exits`).
    Exit { code: i64, oom_killed: bool },
    /// → `state` with an event of `kind` from `source`.
    Settle(MState, &'static str, &'static str),
}

#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub id: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub source: &'static str,
    pub at: Instant,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Lease {
    pub nonce: String,
    pub expires: Instant,
    pub owner: String,
    pub description: String,
    pub version: String,
}

/// Timings and clock a machine needs to advance itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Env {
    pub create_to_start: Duration,
    pub boot_time: Duration,
    pub check_delay: Duration,
    pub clock: SimClock,
}

#[derive(Debug)]
pub(crate) struct Machine {
    pub id: String,
    pub name: String,
    pub app: String,
    pub region: String,
    pub private_ip: String,
    pub instance_id: String,
    pub old_versions: Vec<String>,
    pub config: Value,
    pub outcome: Outcome,
    pub state: MState,
    pub created: Instant,
    pub updated: Instant,
    pub events: Vec<Event>,
    pub pending: Vec<(Instant, Step)>,
    pub checks_passing: bool,
    pub check_output: &'static str,
    /// The runner's readiness body while its dev server does not serve (the `dev` check's
    /// output); `None` until the runner runs. Kept when the machine stops.
    pub dev_body: Option<String>,
    pub checks_updated: Instant,
    pub lease: Option<Lease>,
    pub destroyed_at: Option<Instant>,
    pub ids: IdGen,
}

impl Machine {
    /// Applies every scheduled transition due at or before `now`, in time order.
    pub(crate) fn settle(&mut self, now: Instant, env: &Env) {
        while let Some(&(at, step)) = self.pending.first() {
            if at > now {
                break;
            }
            self.pending.remove(0);
            self.apply(at, step, env);
        }
        if self.lease.as_ref().is_some_and(|l| l.expires <= now) {
            self.lease = None;
        }
    }

    /// Instant of the next scheduled transition, if any.
    pub(crate) fn next_transition(&self) -> Option<Instant> {
        self.pending.first().map(|&(at, _)| at)
    }

    pub(crate) fn schedule(&mut self, at: Instant, step: Step) {
        let index = self.pending.partition_point(|&(t, _)| t <= at);
        self.pending.insert(index, (at, step));
    }

    fn apply(&mut self, at: Instant, step: Step, env: &Env) {
        match step {
            Step::Starting => {
                self.checks_passing = false;
                self.check_output = "connection refused";
                self.set_state(MState::Starting, at);
            }
            Step::Boot if self.outcome == Outcome::RepoNotFound => self.exit(at, 128, env),
            Step::Boot if self.outcome == Outcome::BootFailed => {
                self.set_state(MState::Failed, at);
                self.event("exit", "failed", "flyd", at, Some(1), env);
            }
            Step::Boot => self.booted(at, env),
            Step::ChecksPass if self.state == MState::Started => {
                self.checks_passing = true;
                self.checks_updated = at;
            }
            Step::CrashLoop => {
                self.crash_loop(at);
            }
            Step::Exit { code, oom_killed } if self.state == MState::Started => {
                self.exit(at, code, env);
                if let Some(e) = self.events.last_mut() {
                    e.oom_killed = oom_killed;
                }
            }
            Step::ChecksPass | Step::Exit { .. } => {}
            Step::Settle(state, kind, source) => {
                self.set_state(state, at);
                self.event(kind, state.as_str(), source, at, None, env);
                if state == MState::Destroyed {
                    self.destroyed_at = Some(at);
                    self.lease = None;
                }
            }
        }
    }

    /// Boot finished: `started`, the runner up, and what its outcome does next.
    fn booted(&mut self, at: Instant, env: &Env) {
        self.set_state(MState::Started, at);
        self.event("start", "started", "flyd", at, None, env);
        self.dev_body = Some(STARTING_BODY.to_owned());
        let later = at + env.check_delay;
        match self.outcome {
            Outcome::Healthy => self.schedule(later, Step::ChecksPass),
            Outcome::CrashLoop => {
                self.schedule(later, Step::ChecksPass);
                self.schedule(later + env.check_delay, Step::CrashLoop);
            }
            Outcome::Exits { code, oom_killed, body } => {
                if !body.is_empty() {
                    self.dev_body = Some(body.to_owned());
                }
                self.schedule(later, Step::Exit { code, oom_killed });
            }
            _ => {}
        }
    }

    pub(crate) fn set_state(&mut self, state: MState, at: Instant) {
        self.state = state;
        self.updated = at;
    }

    pub(crate) fn event(
        &mut self,
        kind: &'static str,
        status: &'static str,
        source: &'static str,
        at: Instant,
        exit_code: Option<i64>,
        env: &Env,
    ) {
        let id = self.ids.ulid(env.clock.unix_ms(at));
        self.events.push(Event { id, kind, status, source, at, exit_code, oom_killed: false });
    }

    /// The main process exited with `code`: exit event, state `stopped`, checks critical.
    pub(crate) fn exit(&mut self, at: Instant, code: i64, env: &Env) {
        self.pending.clear();
        self.checks_passing = false;
        self.checks_updated = at;
        self.check_output = if self.outcome == Outcome::RepoNotFound {
            "fatal: repository not found"
        } else {
            "connection refused"
        };
        self.set_state(MState::Stopped, at);
        self.event("exit", "stopped", "flyd", at, Some(code), env);
    }

    /// Destroyed and past the short window in which GET still shows it.
    pub(crate) fn is_gone(&self, now: Instant) -> bool {
        self.destroyed_at.is_some_and(|at| now >= at + DESTROYED_VISIBLE_FOR)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state != MState::Destroyed
    }

    pub(crate) fn last_event_id(&self) -> String {
        self.events.last().map(|e| e.id.clone()).unwrap_or_default()
    }

    /// The machine as `GET /machines/{id}` returns it.
    pub(crate) fn to_json(&self, env: &Env, summary: bool) -> Value {
        let clock = &env.clock;
        let mut m = json!({
            "id": self.id,
            "name": self.name,
            "state": self.state.as_str(),
            "region": self.region,
            "instance_id": self.instance_id,
            "version": self.instance_id,
            "private_ip": self.private_ip,
            "image_ref": image_ref(self.config.get("image").and_then(Value::as_str)),
            "created_at": clock.rfc3339(self.created),
            "updated_at": clock.rfc3339(self.updated),
            "host_status": "ok",
        });
        if !summary {
            m["config"] = self.config.clone();
            let events: Vec<Value> =
                self.events.iter().rev().map(|e| event_json(e, clock)).collect();
            m["events"] = Value::Array(events);
            let checks = self.checks_json(clock);
            if !checks.is_empty() {
                m["checks"] = Value::Array(checks);
            }
        }
        m
    }
}

fn event_json(e: &Event, clock: &SimClock) -> Value {
    let mut v = json!({"id": e.id, "type": e.kind, "status": e.status, "source": e.source,
                       "timestamp": clock.unix_ms(e.at)});
    if let Some(code) = e.exit_code {
        v["request"] = json!({"exit_event": {
            "exit_code": code, "guest_exit_code": code, "oom_killed": e.oom_killed,
            "requested_stop": false, "restarting": false, "exited_at": clock.rfc3339(e.at),
        }});
    }
    v
}

/// `image_ref` split from `config.image`, e.g. `registry.fly.io/app:tag@sha256:…`.
fn image_ref(image: Option<&str>) -> Value {
    let Some(image) = image else { return Value::Null };
    let (name, digest) = image.split_once('@').unwrap_or((image, ""));
    let (name, tag) = match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (name, if digest.is_empty() { "latest" } else { "" }),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((r, rest)) if r.contains('.') || r.contains(':') || r == "localhost" => (r, rest),
        _ => ("docker-hub-mirror.fly.io", name),
    };
    let mut labels = Map::new();
    labels.insert("fly.sim".into(), Value::from("true"));
    json!({"registry": registry, "repository": repository, "tag": tag, "digest": digest,
           "labels": labels})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_and_check_names_follow_config() {
        let config = json!({
            "image": "nginx",
            "env": {"REPO_URL": "https://github.com/acme/does-not-exist", "REPO_BRANCH": "main"},
            "services": [{"internal_port": 3000, "checks": [{"type": "http", "path": "/"}]}],
            "checks": {"alive": {"type": "tcp", "port": 3000}},
        });
        assert_eq!(Outcome::from_config(&config), Outcome::RepoNotFound);
        assert_eq!(
            super::super::runner::check_names(&config),
            ["servicecheck-00-http-3000", "alive"]
        );
        let never = json!({"env": {"REPO_URL": "x", "REPO_BRANCH": "sim-never-healthy"}});
        assert_eq!(Outcome::from_config(&never), Outcome::NeverHealthy);
        let oom = json!({"env": {"REPO_URL": "x", "REPO_BRANCH": "sim-oom"}});
        assert!(matches!(
            Outcome::from_config(&oom),
            Outcome::Exits { code: 137, oom_killed: true, .. }
        ));
        let slow = json!({"env": {"REPO_URL": "x", "REPO_BRANCH": "sim-install-timeout"}});
        assert!(matches!(
            Outcome::from_config(&slow),
            Outcome::Exits { code: 6, oom_killed: false, .. }
        ));
        let crash = json!({"env": {"REPO_URL": "x", "REPO_BRANCH": "sim-crashloop"}});
        assert_eq!(Outcome::from_config(&crash), Outcome::CrashLoop);
        assert_eq!(Outcome::from_config(&json!({})), Outcome::Healthy);
    }

    #[test]
    fn image_refs_are_split() {
        let r = image_ref(Some("registry.fly.io/runner:v1@sha256:abc"));
        assert_eq!(r["registry"], "registry.fly.io");
        assert_eq!(r["repository"], "runner");
        assert_eq!(r["tag"], "v1");
        assert_eq!(r["digest"], "sha256:abc");
        let r = image_ref(Some("nginx"));
        assert_eq!((r["repository"].as_str(), r["tag"].as_str()), (Some("nginx"), Some("latest")));
    }
}
