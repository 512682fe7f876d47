//! Leadership for the drift checks and the orphan sweep: a short-lived row in
//! `fly_preview_controller.leader`, renewed in its own loop so that however long a full
//! verification takes, a live leader keeps it and a dead one loses it within seconds.
//!
//! # Guarantees
//! A replica that stops renewing (killed, partitioned from the database) is replaced by
//! another within `Settings::leader_ttl` plus a third of it (`LEADER_TTL`, 60 s by default:
//! 80 s; a replica that shuts down resigns, so another leads at once). A blocked replica (the
//! gate is shut) steps down at once. The TTL is long on purpose: a renewal is a statement,
//! and at rest it is most of what the controller sends (BENCHMARKS.md, "At rest").
//! # Caveats
//! Between a leader's last renewal and the expiry of its TTL no replica leads: drift checks
//! pause for those seconds; rows are unaffected (leadership never gates row work).

use tokio::sync::watch;

use crate::ops::metrics::Metrics;
use crate::preview::ctx::Ctx;

/// Takes or renews leadership every `Settings::leader_renew`, forever, publishing whether
/// this replica leads on `tx` (and the `fly_preview_leader` gauge).
pub async fn hold(ctx: &Ctx, metrics: &Metrics, tx: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(ctx.settings.leader_renew());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let leader = lead(ctx, metrics).await;
        metrics.leader.set(i64::from(leader));
        tx.send_if_modified(|v| std::mem::replace(v, leader) != leader);
    }
}

/// Takes or renews leadership, unless the gate is shut (Fly not checked yet, or our own
/// configuration refused): then it steps down, so a healthy replica leads.
async fn lead(ctx: &Ctx, metrics: &Metrics) -> bool {
    if !ctx.gate.open() {
        if metrics.leader.get() == 1 {
            tracing::warn!("stepping down as leader while the controller is blocked");
            if let Err(e) = ctx.store.resign().await {
                tracing::warn!(error = %e, "resigning leadership failed; it expires on its own");
            }
        }
        return false;
    }
    ctx.store.try_lead(ctx.settings.leader_ttl).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "leader election failed");
        false
    })
}
