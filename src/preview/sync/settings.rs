//! Settings and shared context of the sync lane (`preview::sync`).

use std::time::Duration;

use crate::fly::FlyClient;
use crate::model::SyncFailureKind;
use crate::ops::metrics::Metrics;
use crate::runtime::backoff::Backoff;
use crate::store::Store;

/// Where the runner lives in the image (deploy/runner/Dockerfile).
pub const RUNNER_ENTRYPOINT: &str = "/usr/local/lib/runner/entrypoint.mjs";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// Syncs in flight at once (per replica).
    pub concurrency: usize,
    /// Syncs of one user's rows in flight at once (per replica): a user whose syncs hang
    /// holds at most this many of the `concurrency` slots.
    pub per_user: usize,
    /// Execs one row gets per `save_window` (a token bucket); saves beyond it coalesce into
    /// the latest revision. `0` = no limit.
    pub save_budget: u32,
    pub save_window: Duration,
    /// The runner's own `sync --timeout` (it answers `{"ok":false,"error":"timeout"}`).
    pub runner_timeout: Duration,
    /// The exec's `timeout`; longer than the runner's, so the runner's answer comes first.
    pub exec_timeout: Duration,
    /// How often unconfirmed rows are looked for without a notification while retries are
    /// pending (after a failure).
    pub sweep_interval: Duration,
    /// The same when nothing is pending: only a backstop for missed notifications, resumed
    /// machines and finished deploys (an idle controller then costs the database little).
    pub idle_sweep_interval: Duration,
    /// Rows read per sweep.
    pub sweep_limit: i64,
    /// First retry delay after a failed attempt (doubles, capped by `retry_cap`).
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// First retry delay after a sync that did not answer in time (doubles, capped by
    /// `retry_cap`). A new save does not cut it short: the sync that hung will likely hang
    /// again, and each try holds a slot for up to `exec_timeout`.
    pub timeout_retry_base: Duration,
    /// Retry delay when Fly says the machine is not started (suspended or stopped by
    /// autostop while the row still says `started`): exec never wakes it, and the runner
    /// fetches by itself on resume; the next try after it resumed confirms the revision.
    pub idle_retry: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            concurrency: 32,
            per_user: 4,
            save_budget: 30,
            save_window: Duration::from_secs(60),
            runner_timeout: Duration::from_secs(10),
            exec_timeout: Duration::from_secs(12),
            sweep_interval: Duration::from_secs(1),
            idle_sweep_interval: Duration::from_secs(30),
            sweep_limit: 256,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            timeout_retry_base: Duration::from_secs(10),
            idle_retry: Duration::from_secs(30),
        }
    }
}

impl SyncSettings {
    /// `node /usr/local/lib/runner/entrypoint.mjs sync --timeout <n>s`.
    pub fn command(&self) -> Vec<String> {
        let secs = self.runner_timeout.as_secs().max(1);
        ["node", RUNNER_ENTRYPOINT, "sync", "--timeout"]
            .into_iter()
            .map(str::to_owned)
            .chain([format!("{secs}s")])
            .collect()
    }

    /// The row lease a sync holds: the exec's HTTP budget plus room for the writes.
    pub fn lease(&self) -> Duration {
        self.exec_timeout + crate::fly::exec::EXEC_SLACK + Duration::from_secs(10)
    }

    pub(crate) fn retry_after(&self, kind: SyncFailureKind, attempts: u32) -> Duration {
        let base = match kind {
            SyncFailureKind::MachineNotStarted => return self.idle_retry,
            SyncFailureKind::Timeout => self.timeout_retry_base,
            _ => self.retry_base,
        };
        Backoff { base, cap: self.retry_cap.max(base) }.ceiling(attempts)
    }
}

/// What every attempt needs.
pub struct SyncCtx {
    pub fly: FlyClient,
    pub store: Store,
    pub settings: SyncSettings,
    pub metrics: Metrics,
}
