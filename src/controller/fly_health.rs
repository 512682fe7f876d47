//! Fly's health and the controller's own Fly configuration, as one gate in front of all work.
//!
//! * **Outage** (the client's breaker is open, see [`crate::fly::breaker`]): every request
//!   but one probe a second is refused before it is sent; passes end at once with
//!   [`Policy::FlyDown`](crate::controller::error::Policy::FlyDown) (status kept, reason
//!   `FlyUnavailable`, attempts unchanged); `/readyz` reports the degradation. When a probe
//!   is answered, every `FlyUnavailable` row is made due and the scheduler woken.
//! * **Misconfiguration** (token rejected, org unknown or forbidden, runner image refused):
//!   no passes (the image needs one paced probe pass), no leadership, no row writes;
//!   `/readyz` false and one log line a minute naming the setting; the probe clears it.
//!
//! Before the first probe is answered (at most [`FIRST_PROBE_TIMEOUT`]) nothing is claimed,
//! so a misconfigured replica never touches a row or leads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::controller::error::{GlobalCondition, ReconcileError};
use crate::controller::reconcile::Ctx;
use crate::fly::{FlyClient, FlyError};
use crate::model::state::Reason;
use crate::runtime::health::Health;
use crate::runtime::metrics::Metrics;

/// Probes while Fly is down or the configuration is refused: at most one a second.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// While the runner image is refused, one probe pass over a row this often.
pub const IMAGE_PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// How long startup waits for the first probe before working anyway (Fly hung).
pub const FIRST_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// `/readyz` while Fly fails platform-wide.
pub const DEGRADED: &str = "degraded: the Fly API is failing platform-wide (5xx/timeouts); \
     calls are down to one probe a second and previews keep their status (reason FlyUnavailable)";

/// What may run now; shared by the scheduler, the local lane, drift and the watcher.
#[derive(Debug)]
pub struct FlyGate {
    health: Arc<Health>,
    condition: Mutex<Option<GlobalCondition>>,
    checked: AtomicBool,
    last_image_probe: Mutex<Option<Instant>>,
}

impl FlyGate {
    pub fn new(health: Arc<Health>) -> Self {
        Self {
            health,
            condition: Mutex::new(None),
            checked: AtomicBool::new(false),
            last_image_probe: Mutex::new(None),
        }
    }

    fn cond(&self) -> std::sync::MutexGuard<'_, Option<GlobalCondition>> {
        self.condition.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks all work (logged when it starts and once a minute while it is re-reported).
    pub fn block(&self, c: GlobalCondition) {
        *self.cond() = Some(c);
        self.health.set_blocked(Some(c.describe()));
    }

    /// Clears the condition (logged once).
    pub fn clear(&self) {
        if self.cond().take().is_some() {
            self.health.set_blocked(None);
        }
    }

    /// A pass succeeded: that proves every condition a pass can test.
    pub fn pass_ok(&self) {
        if self.condition().is_some_and(|c| !c.probe_clears()) {
            self.clear();
        }
    }

    pub fn condition(&self) -> Option<GlobalCondition> {
        *self.cond()
    }

    /// The first probe was answered (or timed out) and no condition blocks work.
    pub fn open(&self) -> bool {
        self.checked.load(Ordering::Relaxed) && self.condition().is_none()
    }

    fn checked(&self) {
        self.checked.store(true, Ordering::Relaxed);
    }

    /// How many passes may run at once now.
    pub fn pass_limit(&self, max: usize) -> usize {
        if !self.checked.load(Ordering::Relaxed) {
            return 0;
        }
        match self.condition() {
            None => max,
            Some(c) if c.probe_clears() => 0,
            Some(_) => {
                let mut last = self.last_image_probe.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|t| t.elapsed() < IMAGE_PROBE_INTERVAL) {
                    return 0;
                }
                *last = Some(Instant::now());
                1
            }
        }
    }
}

/// A pass that failed on a platform error while Fly is down is an outage, not the row's.
pub fn classify(
    fly: &FlyClient,
    r: Result<crate::controller::reconcile::Outcome, ReconcileError>,
) -> Result<crate::controller::reconcile::Outcome, ReconcileError> {
    match r {
        Err(ReconcileError::Fly(e)) if e.is_platform_failure() && fly.breaker().is_open() => {
            Err(ReconcileError::FlyDown(e))
        }
        other => other,
    }
}

/// Probes Fly at startup, then once a second while Fly is down or the configuration is
/// refused; reacts to the breaker opening and closing.
pub async fn watch(ctx: Arc<Ctx>, health: Arc<Health>, metrics: Metrics, wake: Arc<Notify>) {
    let mut rx = ctx.fly.breaker().subscribe();
    let first = tokio::time::timeout(FIRST_PROBE_TIMEOUT, ctx.fly.probe(&ctx.settings.org)).await;
    if let Ok(result) = first {
        apply(&ctx, result);
    }
    ctx.gate.checked();
    wake.notify_one();
    let mut was_open = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = rx.changed() => {}
        }
        let open = ctx.fly.breaker().is_open();
        if open != was_open {
            was_open = open;
            transition(&ctx, &health, &metrics, &wake, open).await;
        }
        let probe_clears = ctx.gate.condition().is_some_and(GlobalCondition::probe_clears);
        if open || probe_clears {
            let blocked = ctx.gate.condition().is_some();
            apply(&ctx, ctx.fly.probe(&ctx.settings.org).await);
            if blocked && ctx.gate.open() {
                wake.notify_one();
            }
        }
    }
}

/// What a probe's answer means for the gate.
fn apply(ctx: &Ctx, result: Result<(), FlyError>) {
    match result {
        Ok(()) => {
            if ctx.gate.condition().is_some_and(GlobalCondition::probe_clears) {
                ctx.gate.clear();
            }
        }
        Err(e) => match GlobalCondition::of_org_call(&e) {
            Some(c) => {
                tracing::debug!(error = %e, "Fly probe refused");
                ctx.gate.block(c);
            }
            None => tracing::debug!(error = %e, kind = e.kind(), "Fly probe failed"),
        },
    }
}

async fn transition(ctx: &Ctx, health: &Health, metrics: &Metrics, wake: &Notify, open: bool) {
    metrics.fly_down.set(i64::from(open));
    if open {
        tracing::warn!("the Fly API is failing platform-wide; down to one probe a second");
        health.set_degraded(Some(DEGRADED));
        return;
    }
    health.set_degraded(None);
    match ctx.store.mark_reason_due(Reason::FlyUnavailable).await {
        Ok(n) => tracing::info!(rows = n, "the Fly API answers again; retrying waiting rows"),
        Err(e) => {
            tracing::warn!(error = %e, "Fly healed but waking its rows failed; they retry on their own")
        }
    }
    wake.notify_one();
}
