//! Inspection and behind-the-back controls on a running simulator.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::lifecycle::NewMachine;
use super::machine::{Env, Machine};
use super::shared::lock;
use super::{SimHandle, SimStats};

impl SimHandle {
    /// Runs `f` on a machine (ignoring visibility windows); `None` if it does not exist.
    fn with_machine<R>(
        &self,
        app: &str,
        id: &str,
        f: impl FnOnce(&mut Machine, Instant, &Env) -> R,
    ) -> Option<R> {
        let now = Instant::now();
        let result = {
            let mut world = lock(&self.shared.world);
            let env = world.env;
            let machine = world.apps.get_mut(app)?.machines.get_mut(id)?;
            machine.settle(now, &env);
            f(machine, now, &env)
        };
        self.shared.changed.notify_waiters();
        Some(result)
    }

    /// Counters, with "alive" figures computed now.
    pub fn stats(&self) -> SimStats {
        let now = Instant::now();
        let mut world = lock(&self.shared.world);
        world.settle_all(now);
        let counters = world.counters;
        let active: Vec<usize> = world.apps.values().map(|a| a.active_machines()).collect();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        SimStats {
            apps_created_total: counters.apps_created_total,
            apps_alive: count(world.apps.len()),
            machines_created_total: counters.machines_created_total,
            machines_alive: count(active.iter().sum()),
            duplicate_apps: counters.duplicate_apps,
            apps_with_multiple_machines: count(active.iter().filter(|n| **n > 1).count()),
            requests_total: self.shared.requests_total.load(Ordering::Relaxed),
            rate_limited_total: self.shared.rate_limited_total.load(Ordering::Relaxed),
            faults_injected_total: self.shared.faults_injected_total.load(Ordering::Relaxed),
        }
    }

    /// The private network each app was created on (`default` when none was asked for).
    pub fn app_networks(&self) -> Vec<(String, String)> {
        let world = lock(&self.shared.world);
        world.apps.values().map(|a| (a.name.clone(), a.network.clone())).collect()
    }

    /// The secret environment the machine booted with (what its processes see), by name.
    pub fn machine_secrets(
        &self,
        app: &str,
        id: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let world = lock(&self.shared.world);
        world.apps.get(app).map(|a| a.secrets.booted(id)).unwrap_or_default()
    }

    /// Names of the apps that exist (including ones still inside their visibility window).
    pub fn app_names(&self) -> Vec<String> {
        lock(&self.shared.world).apps.keys().cloned().collect()
    }

    /// The app's machines that are not destroyed, as `GET …/machines/{id}` would return them.
    pub fn machines(&self, app: &str) -> Vec<Value> {
        let now = Instant::now();
        let mut world = lock(&self.shared.world);
        let env = world.env;
        let Some(app) = world.apps.get_mut(app) else { return Vec::new() };
        let mut machines: Vec<&mut Machine> = app.machines.values_mut().collect();
        machines.iter_mut().for_each(|m| m.settle(now, &env));
        machines.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        machines.iter().filter(|m| m.is_active()).map(|m| m.to_json(&env, false)).collect()
    }

    /// Deletes an app as if someone else did (its machines are destroyed).
    pub fn delete_app_behind_back(&self, app: &str) -> bool {
        let removed = lock(&self.shared.world).remove_app(app, Instant::now());
        self.shared.changed.notify_waiters();
        removed
    }

    /// Destroys a machine as if someone else did.
    pub fn destroy_machine_behind_back(&self, app: &str, id: &str) -> bool {
        self.with_machine(app, id, |m, now, env| {
            let active = m.is_active();
            if active {
                m.destroy_now(now, "user", env);
            }
            active
        })
        .unwrap_or(false)
    }

    /// The machine's main process exits with `exit_code` (exit event, state `stopped`).
    pub fn crash_machine(&self, app: &str, id: &str, exit_code: i64) -> bool {
        self.with_machine(app, id, |m, now, env| m.crash(now, exit_code, env)).unwrap_or(false)
    }

    /// The dev server inside a started machine crash-loops: the `dev` check turns critical with
    /// the runner's crash-loop output and the runner exits 7 after the machine's
    /// `FAILURE_LINGER`. False when the machine is not started.
    pub fn crash_loop_dev_server(&self, app: &str, id: &str) -> bool {
        self.with_machine(app, id, |m, now, _| m.crash_loop(now)).unwrap_or(false)
    }

    /// Fly Proxy autostop: a started machine goes `suspended` (or `stopped`); not drift.
    pub fn idle_stop(&self, app: &str, id: &str, suspend: bool) -> bool {
        self.with_machine(app, id, |m, now, env| m.idle_stop(now, suspend, env)).unwrap_or(false)
    }

    /// Fly Proxy starts a suspended or stopped machine for an incoming request (not the
    /// controller's call: not in the request log). False when Fly would refuse the start.
    pub fn start_machine_behind_back(&self, app: &str, id: &str) -> bool {
        self.with_machine(app, id, |m, now, env| m.start(now, env).is_ok()).unwrap_or(false)
    }

    /// An app in our org created "by hand" (e.g. with flyctl), visible at once, optionally with
    /// a running machine that carries none of the controller's metadata. No-op if the name is
    /// taken. Not counted in `apps_created_total` / `machines_created_total`.
    pub fn create_app_direct(&self, name: &str, with_foreign_machine: bool) {
        let metadata = json!({"fly_platform_version": "v2", "fly_process_group": "app"});
        let _ = self.create_app_with_machine_direct(name, with_foreign_machine.then_some(metadata));
    }

    /// Creates an app as [`Self::create_app_direct`] does, holding one started machine with
    /// `metadata` (e.g. a controller's ownership marks) when it is `Some`; returns that
    /// machine's id (`None`: no machine, or the name was taken).
    pub fn create_app_with_machine_direct(
        &self,
        name: &str,
        metadata: Option<Value>,
    ) -> Option<String> {
        let now = Instant::now();
        let mut world = lock(&self.shared.world);
        if world.apps.contains_key(name) || world.foreign.contains(name) {
            return None;
        }
        world.insert_app(name, "default", now, now);
        let id = metadata.map(|metadata| {
            let env = world.env;
            let config = json!({
                "image": "registry-1.docker.io/library/nginx:latest",
                "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
                "metadata": metadata,
            });
            let new = NewMachine {
                app: name.to_owned(),
                name: world.ids.machine_name(),
                region: "iad".to_owned(),
                config,
                skip_launch: true,
            };
            let mut machine = Machine::launch(new, now, &env, &mut world.ids);
            machine.mark_running(now, &env);
            let id = machine.id.clone();
            if let Some(app) = world.apps.get_mut(name) {
                app.machines.insert(machine.id.clone(), machine);
            }
            id
        });
        drop(world);
        self.shared.changed.notify_waiters();
        id
    }
}
