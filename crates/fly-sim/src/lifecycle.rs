//! Machine lifecycle operations: create, start, stop, suspend, restart, update, destroy,
//! plus the behind-the-back events (crash, autostop).

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::ApiError;
use super::ids::IdGen;
use super::machine::{Env, MState, Machine, Outcome, Step};

/// What a create request asks for.
#[derive(Debug)]
pub(crate) struct NewMachine {
    pub app: String,
    pub name: String,
    pub region: String,
    pub config: Value,
    pub skip_launch: bool,
}

fn refuse(verb: &str, state: MState) -> ApiError {
    ApiError::precondition(format!(
        "unable to {verb} machine from current state: '{}'",
        state.as_str()
    ))
}

impl Machine {
    /// A new machine in `created` with a `launch` event; unless `skip_launch`, it boots on its
    /// own: `starting` after `create_to_start`, `started` after a further `boot_time`.
    pub(crate) fn launch(new: NewMachine, now: Instant, env: &Env, ids: &mut IdGen) -> Machine {
        let mut m = Machine {
            id: ids.machine_id(),
            name: new.name,
            app: new.app,
            region: new.region,
            private_ip: ids.private_ip(),
            instance_id: ids.ulid(env.clock.unix_ms(now)),
            old_versions: Vec::new(),
            outcome: Outcome::from_config(&new.config),
            config: new.config,
            state: MState::Created,
            created: now,
            updated: now,
            events: Vec::new(),
            pending: Vec::new(),
            checks_passing: false,
            check_output: "connection refused",
            dev_body: None,
            checks_updated: now,
            lease: None,
            destroyed_at: None,
            ids: ids.child(),
        };
        m.event("launch", "created", "user", now, None, env);
        if !new.skip_launch {
            m.boot(now + env.create_to_start, env);
        }
        m
    }

    /// Schedules `starting` at `at` and the end of boot `boot_time` later.
    fn boot(&mut self, at: Instant, env: &Env) {
        self.schedule(at, Step::Starting);
        self.schedule(at + env.boot_time, Step::Boot);
    }

    /// Mutations while another client holds the lease need its nonce.
    pub(crate) fn check_lease(&self, nonce: Option<&str>, env: &Env) -> Result<(), ApiError> {
        match &self.lease {
            Some(lease) if nonce != Some(lease.nonce.as_str()) => Err(ApiError::new(
                409,
                format!(
                    "machine ID {} lease currently held by {}, expires at {}",
                    self.id,
                    lease.owner,
                    env.clock.wall(lease.expires).format("%Y-%m-%dT%H:%M:%SZ")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `POST …/start`. Starting a running machine is a no-op; starting one whose launch is still
    /// in progress is refused like Fly does.
    pub(crate) fn start(&mut self, now: Instant, env: &Env) -> Result<Value, ApiError> {
        let previous = self.state;
        match previous {
            MState::Started | MState::Starting => {}
            MState::Created if !self.pending.is_empty() => return Err(refuse("start", previous)),
            MState::Created | MState::Stopped | MState::Suspended | MState::Failed => {
                self.pending.clear();
                self.schedule(now, Step::Starting);
                let boot =
                    if previous == MState::Suspended { env.boot_time / 4 } else { env.boot_time };
                self.schedule(now + boot, Step::Boot);
                self.settle(now, env);
            }
            _ => return Err(refuse("start", previous)),
        }
        Ok(json!({"previous_state": previous.as_str(), "migrated": false, "new_host": ""}))
    }

    /// `POST …/stop`: `stopping`, then `stopped` after `create_to_start`.
    pub(crate) fn stop(&mut self, now: Instant, env: &Env) -> Result<Value, ApiError> {
        match self.state {
            MState::Stopped | MState::Stopping => {}
            MState::Started
            | MState::Starting
            | MState::Restarting
            | MState::Updating
            | MState::Suspending
            | MState::Suspended
            | MState::Failed => {
                self.pending.clear();
                self.checks_passing = false;
                self.set_state(MState::Stopping, now);
                let settle = Step::Settle(MState::Stopped, "stop", "user");
                self.schedule(now + env.create_to_start, settle);
                self.settle(now, env);
            }
            other => return Err(refuse("stop", other)),
        }
        Ok(json!({"ok": true}))
    }

    /// `POST …/suspend`: only a started machine can be suspended.
    pub(crate) fn suspend(&mut self, now: Instant, env: &Env) -> Result<Value, ApiError> {
        match self.state {
            MState::Suspended | MState::Suspending => {}
            MState::Started => {
                self.pending.clear();
                self.set_state(MState::Suspending, now);
                let settle = Step::Settle(MState::Suspended, "suspend", "user");
                self.schedule(now + env.create_to_start, settle);
                self.settle(now, env);
            }
            other => return Err(refuse("suspend", other)),
        }
        Ok(json!({"ok": true}))
    }

    /// `POST …/restart`: `restarting`, then a normal boot.
    pub(crate) fn restart(&mut self, now: Instant, env: &Env) -> Result<Value, ApiError> {
        match self.state {
            MState::Started | MState::Failed => {
                self.pending.clear();
                self.checks_passing = false;
                self.set_state(MState::Restarting, now);
                self.event("restart", "restarting", "user", now, None, env);
                self.boot(now + env.create_to_start, env);
                self.settle(now, env);
                Ok(json!({"ok": true}))
            }
            other => Err(refuse("restart", other)),
        }
    }

    /// `DELETE …/machines/{id}`: without force only idle machines may be destroyed.
    pub(crate) fn destroy(
        &mut self,
        now: Instant,
        force: bool,
        env: &Env,
    ) -> Result<Value, ApiError> {
        let idle = matches!(
            self.state,
            MState::Stopped | MState::Suspended | MState::Created | MState::Failed
        );
        if !force && !idle {
            return Err(ApiError::precondition("unable to destroy machine, not currently stopped"));
        }
        self.pending.clear();
        self.destroy_now(now, "user", env);
        Ok(json!({"ok": true}))
    }

    pub(crate) fn destroy_now(&mut self, now: Instant, source: &'static str, env: &Env) {
        self.pending.clear();
        self.schedule(now, Step::Settle(MState::Destroyed, "destroy", source));
        self.settle(now, env);
    }

    /// `POST …/machines/{id}`: new config and version; `updating`, then boots again (or settles
    /// back to `created`/`stopped` with `skip_launch`).
    pub(crate) fn update(
        &mut self,
        now: Instant,
        config: Value,
        skip_launch: bool,
        env: &Env,
    ) -> Result<(), ApiError> {
        let previous = self.state;
        if previous == MState::Destroyed {
            return Err(ApiError::machine_not_found());
        }
        let version = self.ids.ulid(env.clock.unix_ms(now));
        self.old_versions.push(std::mem::replace(&mut self.instance_id, version));
        self.outcome = Outcome::from_config(&config);
        self.config = config;
        self.pending.clear();
        self.checks_passing = false;
        self.check_output = "connection refused";
        self.set_state(MState::Updating, now);
        self.event("update", "updating", "user", now, None, env);
        let at = now + env.create_to_start;
        if skip_launch {
            let target =
                if previous == MState::Created { MState::Created } else { MState::Stopped };
            self.schedule(at, Step::Settle(target, "update", "flyd"));
        } else {
            self.boot(at, env);
        }
        self.settle(now, env);
        Ok(())
    }

    /// The main process dies on its own (behind the API's back).
    pub(crate) fn crash(&mut self, now: Instant, exit_code: i64, env: &Env) -> bool {
        let running = matches!(self.state, MState::Started | MState::Starting | MState::Restarting);
        if running {
            self.exit(now, exit_code, env);
        }
        running
    }

    /// Fly Proxy autostop: an idle started machine is suspended or stopped. Healthy, not drift.
    pub(crate) fn idle_stop(&mut self, now: Instant, suspend: bool, env: &Env) -> bool {
        if self.state != MState::Started {
            return false;
        }
        self.pending.clear();
        let (state, kind) =
            if suspend { (MState::Suspended, "suspend") } else { (MState::Stopped, "stop") };
        self.schedule(now, Step::Settle(state, kind, "fly-proxy"));
        self.settle(now, env);
        true
    }

    /// A machine that was started long ago (for apps created "by hand").
    pub(crate) fn mark_running(&mut self, now: Instant, env: &Env) {
        self.pending.clear();
        self.set_state(MState::Started, now);
        self.event("start", "started", "flyd", now, None, env);
        self.checks_passing = true;
        self.checks_updated = now;
    }
}
