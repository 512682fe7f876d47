//! Fly's health and the controller's own Fly configuration, as one gate in front of all work.
//!
//! * **Outage** (the client's breaker is open, see [`crate::fly::breaker`]): every request
//!   but one probe a second is refused before it is sent; passes end at once with
//!   [`Policy::FlyDown`](crate::preview::error::Policy::FlyDown) (status kept, reason
//!   `FlyUnavailable`, attempts unchanged); `/readyz` reports the degradation. When a probe
//!   is answered, every `FlyUnavailable` row is made due and the runtime woken.
//! * **Misconfiguration** (token rejected, org unknown or forbidden, runner image refused):
//!   no passes (the image needs one paced probe pass), no leadership, no row writes;
//!   `/readyz` false and one log line a minute naming the setting; the probe clears it.
//!
//! Before the first probe is answered (at most [`FIRST_PROBE_TIMEOUT`]) nothing is claimed,
//! so a misconfigured replica never touches a row or leads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::fly::FlyError;
use crate::model::state::Reason;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::preview::ctx::Ctx;
use crate::preview::error::{self, GlobalCondition, Policy};
use crate::store::Tombstones;

/// Probes while Fly is down or the configuration is refused: at most one a second.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long startup waits for the first probe before working anyway (Fly hung).
pub const FIRST_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// `/readyz` while Fly fails platform-wide.
pub const DEGRADED: &str = "degraded: the Fly API is failing platform-wide (5xx/timeouts); \
     calls are down to one probe a second and previews keep their status (reason FlyUnavailable)";

/// The loops it wakes when work may run again (the preview runtime, the teardown runtime).
pub type Wakes = Vec<Arc<Notify>>;

fn notify(wakes: &[Arc<Notify>]) {
    wakes.iter().for_each(|w| w.notify_one());
}

/// Probes Fly at startup, then once a second while Fly is down or the configuration is
/// refused; reacts to the breaker opening and closing.
pub async fn watch(ctx: Arc<Ctx>, health: Arc<Health>, metrics: Metrics, wake: Wakes) {
    let mut rx = ctx.fly.breaker().subscribe();
    let first = tokio::time::timeout(FIRST_PROBE_TIMEOUT, ctx.fly.probe(&ctx.settings.org)).await;
    if let Ok(result) = first {
        apply(&ctx, result);
    }
    ctx.gate.checked();
    notify(&wake);
    let mut was_open = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
            _ = rx.changed() => {}
        }
        metrics.blocked.set(i64::from(ctx.gate.condition().is_some()));
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
                notify(&wake);
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
        Err(e) => match error::classify_fly(&e, false) {
            Policy::Global(c) => {
                tracing::debug!(error = %e, "Fly probe refused");
                ctx.gate.block(c);
            }
            _ => tracing::debug!(error = %e, kind = e.kind(), "Fly probe failed"),
        },
    }
}

async fn transition(ctx: &Ctx, health: &Health, metrics: &Metrics, wake: &Wakes, open: bool) {
    metrics.fly_down.set(i64::from(open));
    if open {
        tracing::warn!("the Fly API is failing platform-wide; down to one probe a second");
        health.set_degraded(Some(DEGRADED));
        return;
    }
    health.set_degraded(None);
    tracing::info!("the Fly API answers again; retrying the rows that waited for it");
    // Twice: passes that were ending while Fly healed may park their row after the first.
    for pause in [Duration::ZERO, HEAL_SECOND_SWEEP] {
        tokio::time::sleep(pause).await;
        match ctx.store.wake_parked(Reason::FlyUnavailable).await {
            Ok(n) => tracing::info!(rows = n, "rows parked by the outage are due now"),
            Err(e) => {
                tracing::warn!(error = %e, "waking parked rows failed; they retry on their own")
            }
        }
        let tombstones =
            Tombstones::new(ctx.store.pool().clone(), ctx.store.owner(), ctx.settings.lease);
        if let Err(e) = tombstones.wake().await {
            tracing::warn!(error = %e, "waking parked tombstones failed; they retry on their own");
        }
        notify(wake);
    }
}

/// The second wake-up of parked rows after Fly heals.
const HEAL_SECOND_SWEEP: Duration = Duration::from_secs(2);
