//! A local, fault-injecting simulator of the Fly.io Machines API ("flaps").
//!
//! It serves the `/v1` REST surface the controller uses (apps, IP assignments, machines,
//! `/wait`, leases, the org-wide machine listing) with Fly's status codes and error texts, and
//! lets tests and demos inject faults and change things behind the controller's back.
//!
//! Time is `tokio::time`: machine lifecycles are scheduled transitions applied lazily when the
//! world is looked at, so tests under `tokio::time::pause()` are deterministic. Ids and
//! probabilistic faults come from seeded RNGs, so a run replays with the same seed.
//!
//! Simulated runner outcomes, keyed by the machine's `config.env`:
//! - `REPO_URL` ending in `/does-not-exist`: the process exits during boot (exit event with
//!   `exit_code: 128`, state `stopped`, checks critical with `fatal: repository not found`);
//! - `REPO_BRANCH` = `sim-never-healthy`: `started`, but checks stay critical
//!   (`connection refused`);
//! - `REPO_BRANCH` = `sim-boot-failed`: boot ends in state `failed` (exit event, code 1);
//! - `REPO_BRANCH` = `sim-clone-failed` / `sim-needs-access` / `sim-no-dev-script` / `sim-install-private` /
//!   `sim-dev-crashloop` / `sim-install-timeout`: `started`, then after `check_delay` the
//!   runner exits with its code (3 / 3 / 4 / 4 / 5 / 6), state `stopped`, leaving its readiness
//!   body (`<phase>: <sentence>` and output lines) as the `dev` check's output; `sim-oom`:
//!   code 137 and `oom_killed: true` on the exit event (Fly's out-of-memory kill);
//! - `REPO_BRANCH` = `sim-crashloop`: serves, then after another `check_delay` the dev server
//!   crash-loops (the `dev` check critical with the runner's crash-loop body) and the runner
//!   exits 7 after `FAILURE_LINGER` ([`SimHandle::crash_loop_dev_server`] does the same to
//!   any started machine);
//! - top-level check `dev` (the runner's `/__preview/ready`): passing only while the dev
//!   server serves; service checks pass while the runner answers;
//! - anything else: `started`, then checks `passing` after `check_delay`.
//!
//! A `config.image` containing `sim-unpullable` is refused on machine create and update (422,
//! `failed to resolve image …`), like an image Fly cannot pull.

mod control;
mod error;
mod exec;
mod exec_control;
mod fault;
mod ids;
mod lease;
mod lifecycle;
mod limits;
mod machine;
mod machines;
mod phases;
mod query;
mod revisions;
mod routes;
mod runner;
mod secret_store;
mod secrets;
mod server;
mod shared;
#[cfg(test)]
mod tests_api;
#[cfg(test)]
mod tests_lifecycle;
mod wait;
mod world;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use exec::DEFAULT_SYNC_TIME;
pub use fault::{Action, Fault, FaultRule, FaultSpecError, Trigger};
pub use revisions::SyncFault;

use fault::FaultEngine;
use ids::{IdGen, SimClock};
use limits::RateLimiter;
use machine::Env;
use shared::{Shared, lock};
use world::World;

/// Simulator settings. `Default` is tuned for fast tests; [`SimConfig::realistic`] for demos.
#[derive(Clone)]
pub struct SimConfig {
    /// Seeds ids and probabilistic faults.
    pub seed: u64,
    /// Our org slug; creating or listing in another org answers 403 `unauthorized`.
    pub org: String,
    /// Names held by "another org": GET answers 403, create answers 422 `name_taken`.
    pub foreign_app_names: Vec<String>,
    /// `Some(t)`: only `t` is accepted; `None`: any non-empty token.
    pub token: Option<String>,
    /// After an app is created, app-scoped calls answer 404 for this long.
    pub app_visibility_delay: Duration,
    /// `created` → `starting`.
    pub create_to_start: Duration,
    /// `starting` → `started`.
    pub boot_time: Duration,
    /// `started` → service checks `passing`.
    pub check_delay: Duration,
    /// Added to every response.
    pub api_latency: Duration,
    /// Enforce Fly's published per-action limits with 429s.
    pub rate_limits: bool,
    /// `Retry-After` seconds on 429s; `None` like the real API.
    pub retry_after: Option<u64>,
    pub faults: Vec<FaultRule>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            org: "personal".to_owned(),
            foreign_app_names: Vec::new(),
            token: None,
            app_visibility_delay: Duration::ZERO,
            create_to_start: Duration::from_millis(50),
            boot_time: Duration::from_millis(100),
            check_delay: Duration::from_millis(100),
            api_latency: Duration::ZERO,
            rate_limits: true,
            retry_after: None,
            faults: Vec::new(),
        }
    }
}

impl SimConfig {
    /// Timings in the range Fly shows for a small image: visible after 200 ms, boot in ~2.5 s,
    /// healthy ~3 s later, 30 ms per call.
    pub fn realistic() -> Self {
        Self {
            app_visibility_delay: Duration::from_millis(200),
            create_to_start: Duration::from_millis(500),
            boot_time: Duration::from_secs(2),
            check_delay: Duration::from_secs(3),
            api_latency: Duration::from_millis(30),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("org", &self.org)
            .field("foreign_app_names", &self.foreign_app_names)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("app_visibility_delay", &self.app_visibility_delay)
            .field("create_to_start", &self.create_to_start)
            .field("boot_time", &self.boot_time)
            .field("check_delay", &self.check_delay)
            .field("api_latency", &self.api_latency)
            .field("rate_limits", &self.rate_limits)
            .field("retry_after", &self.retry_after)
            .field("faults", &self.faults.iter().map(ToString::to_string).collect::<Vec<_>>())
            .finish()
    }
}

/// Counters for assertions and the demo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Apps created through `POST /v1/apps`.
    pub apps_created_total: u64,
    pub apps_alive: u64,
    /// Machines created through `POST …/machines`.
    pub machines_created_total: u64,
    /// Machines not destroyed, in apps that exist.
    pub machines_alive: u64,
    /// Creates that slipped past name uniqueness (must stay 0).
    pub duplicate_apps: u64,
    /// Apps with more than one machine that is not destroyed.
    pub apps_with_multiple_machines: u64,
    pub requests_total: u64,
    /// 429s sent by the rate limiter.
    pub rate_limited_total: u64,
    /// Fault rules that fired.
    pub faults_injected_total: u64,
}

/// One served request. `status` is 0 when the connection was dropped by a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// [`Action::as_str`], or `"unknown"` for unrouted paths.
    pub action: &'static str,
    /// Milliseconds of (tokio) time since the simulator started.
    pub at_ms: u64,
    /// For an app create, the app its body names (its path names none).
    pub created_app: Option<String>,
}

/// Entry points.
pub struct Simulator;

impl Simulator {
    /// Binds `127.0.0.1:0` and serves there.
    pub async fn start(cfg: SimConfig) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve(listener, cfg).await
    }

    /// Serves on `listener` in a background task.
    pub async fn serve(
        listener: tokio::net::TcpListener,
        cfg: SimConfig,
    ) -> std::io::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(shared_state(cfg));
        let task = server::spawn(listener, shared.clone());
        tracing::info!(%addr, "fly machines api simulator listening");
        Ok(SimHandle { shared, addr, task: Arc::new(Mutex::new(Some(task))) })
    }
}

fn shared_state(cfg: SimConfig) -> Shared {
    let clock = SimClock::start();
    let env = Env {
        create_to_start: cfg.create_to_start,
        boot_time: cfg.boot_time,
        check_delay: cfg.check_delay,
        clock,
    };
    let foreign: HashSet<String> = cfg.foreign_app_names.into_iter().collect();
    let world = World::new(cfg.org.clone(), foreign, env, cfg.app_visibility_delay, cfg.seed);
    Shared {
        clock,
        org: cfg.org,
        token: cfg.token.filter(|t| !t.trim().is_empty()),
        api_latency: cfg.api_latency,
        rate_limits: cfg.rate_limits,
        retry_after: cfg.retry_after,
        world: Mutex::new(world),
        exec: Mutex::new(revisions::ExecState::default()),
        faults: Mutex::new(FaultEngine::new(cfg.seed, cfg.faults)),
        limiter: Mutex::new(RateLimiter::default()),
        request_ids: Mutex::new(IdGen::new(cfg.seed.wrapping_add(0x0123_4567_89ab_cdef))),
        log: Mutex::new(VecDeque::new()),
        requests_total: AtomicU64::new(0),
        rate_limited_total: AtomicU64::new(0),
        faults_injected_total: AtomicU64::new(0),
        changed: Notify::new(),
        shutdown: watch::Sender::new(false),
    }
}

/// A running simulator. Cheap to clone; all clones control the same server.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`; routes live under `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).add(rule);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Stops accepting, ends pending `/wait`s (503) and waits (at most 5 s) for the server.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }
}
