//! Teardown of deleted rows, level-triggered: the analogue of a kube finalizer, kept in a
//! tombstone instead of the object. Tombstones are a second queue of the runtime, beside rows.
//!
//! # Expected flow
//! 1. A row of `public.fly_preview_apps` is deleted. In the same transaction its AFTER DELETE
//!    trigger leaves a tombstone (id, user, app name) in `fly_preview_controller.tombstones`,
//!    due now, and a NOTIFY (`{"op":"delete","id":…}`) wakes [`run`].
//! 2. [`run`] drives the queue runtime over [`Tombstones`] (claims with `FOR UPDATE SKIP
//!    LOCKED` and a lease, at most [`PARALLEL`] at once) and [`Teardown`]: each pass checks
//!    that the app is still the deleted row's (see Assumptions), destroys its machines (no
//!    org-wide budget: nothing runs from the first pass on), deletes the app (Fly's org-wide
//!    100 a minute: may wait for a later pass), and requires Fly to answer 404 for it.
//! 3. Finished (destroyed, already gone, or not the deleted row's to destroy): the tombstone is
//!    deleted, fenced by the lease ([`Action::Done`]). Failed: [`action`] decides when to look
//!    again, and the tombstone keeps the attempt count, the due time and the error for
//!    operators (`last_error`).
//!
//! # Guarantees
//! Every deleted row's app is destroyed, or found not to be the row's, eventually, whether a
//! controller was running, down or restarting when the row was deleted: the tombstone is
//! written with the delete and only removed once Fly confirms the app is gone (or that it is
//! not ours). A tombstone is worked by one replica at a time (leases, renewed while a pass
//! runs), and its attempts and backoff survive restarts. A Fly outage (the client's breaker
//! open) parks it for [`outcome::OUTAGE_RECHECK`] without counting an attempt; a rejected token blocks
//! the whole controller ([`GlobalCondition`]) and leaves the tombstone untouched.
//!
//! # Assumptions
//! The app is not the deleted row's, and is left alone, when its name does not carry the
//! configured prefix, when a row owns the name again (a preview re-created under the same
//! name), or when any of its active machines lacks our metadata for the deleted row's id
//! ([`machine_config::is_ours`]). Passes are idempotent and safe to cancel at any `.await`
//! (deleting an app twice finds a 404).
//!
//! # Caveats
//! Deletions wait while no replica runs, while the gate is shut by a global condition (the
//! gate's watcher wakes this loop when it clears, and makes tombstones parked by a Fly outage
//! due when Fly heals), and for the
//! client's global app-delete rate limit (100 a minute: 50 deleted rows take ~27 s). A row
//! re-created under the same name between the checks and the delete call loses its app (the
//! window is one Fly call); its own pass then re-creates it. `TRUNCATE` fires no row trigger:
//! those apps are left to the orphan sweep, as are apps whose rows were deleted before
//! tombstones existed. Teardown passes count in the runtime's pass metrics
//! (`fly_preview_reconciles_total`, `fly_preview_reconcile_errors_total`) like row passes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::fly::{FlyError, Machine};
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::Phase;
use crate::preview::ctx::Ctx;
use crate::preview::error::{self, GlobalCondition, Policy, ReconcileError};
use crate::preview::machine_config;
use crate::preview::outcome;
use crate::preview::reconcile::SLOT_WAIT;
use crate::runtime::backoff::Backoff;
use crate::runtime::driver::renew_leases;
use crate::runtime::{Action, Claimed, InFlight, Queue, QueueError, Reconciler, Runtime, Timing};
use crate::store::{Tombstone, Tombstones};

/// Teardowns running at once. App deletes share one global rate limit (100 a minute), so
/// more passes would only wait for it, holding leases.
pub const PARALLEL: usize = 4;

/// How a teardown ended: the label of `fly_preview_teardowns_completed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// We deleted the app and Fly confirms it is gone.
    Destroyed,
    /// There was no app to delete.
    Absent,
    /// The app is not the deleted row's: left alone.
    Kept(Keep),
}

/// Why an app outlives its deleted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The name lacks the configured prefix: never ours.
    NotOurPrefix,
    /// A row owns the name again (the preview was created anew): its app.
    NameInUse,
    /// Fly refuses us the app (another org's name).
    Refused,
    /// It holds active machines we did not create for the deleted row.
    ForeignMachines,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Destroyed => "destroyed",
            Verdict::Absent => "absent",
            Verdict::Kept(_) => "kept",
        }
    }
}

/// The domain's side of the contract for tombstones.
pub struct Teardown {
    pub ctx: Arc<Ctx>,
    pub metrics: Metrics,
    pub tombstones: Tombstones,
}

impl Teardown {
    fn policy(&self, e: &ReconcileError) -> Policy {
        error::classify(e, self.ctx.fly.breaker().is_open())
    }

    /// The checks and the delete: whether the app is the deleted row's, and if so, gone.
    async fn verdict(&self, t: &Tombstone) -> Result<Verdict, ReconcileError> {
        let (ctx, app) = (&self.ctx, t.fly_app_name.as_str());
        if !app.starts_with(&format!("{}-", ctx.settings.rules.prefix)) {
            return Ok(Verdict::Kept(Keep::NotOurPrefix));
        }
        if ctx.store.app_name_exists(app).await? {
            // The app (if any) is the new row's now: its own stop or delete must see it.
            ctx.store.note_app_kept(app).await?;
            return Ok(Verdict::Kept(Keep::NameInUse));
        }
        ctx.fly_up()?;
        let machines = match ctx.fly.list_machines(app, &[]).await {
            Ok(ms) => ms,
            Err(FlyError::NotFound(_)) => return Ok(Verdict::Absent),
            Err(FlyError::Forbidden(_)) => return Ok(Verdict::Kept(Keep::Refused)),
            Err(e) => return Err(e.into()),
        };
        if !all_ours(&machines, t.id) {
            return Ok(Verdict::Kept(Keep::ForeignMachines));
        }
        destroy_machines(ctx, app, &machines).await?;
        let verdict = match ctx.fly.delete_app(app).await {
            Ok(()) => Verdict::Destroyed,
            Err(FlyError::NotFound(_)) => Verdict::Absent,
            Err(FlyError::Forbidden(_)) => return Ok(Verdict::Kept(Keep::Refused)),
            Err(e) => return Err(e.into()),
        };
        match ctx.fly.get_app(app).await {
            Err(FlyError::NotFound(_)) => Ok(verdict),
            Ok(_) => {
                Err(ReconcileError::NotVisibleYet("the app is still listed after its deletion"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Destroys the deleted row's active machines before its app is deleted: the app delete
/// spends Fly's org-wide budget (100 a minute) and may wait for it, the machine destroys do
/// not, so nothing of a deleted row runs (or is billed beyond an empty app) from its first
/// pass on, however long the app delete waits. A machine already gone is fine.
async fn destroy_machines(ctx: &Ctx, app: &str, machines: &[Machine]) -> Result<(), FlyError> {
    for m in machines.iter().filter(|m| m.is_active()) {
        match ctx.fly.destroy_machine(app, &m.id, true).await {
            Ok(()) | Err(FlyError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every active machine carries our metadata for the deleted row (true for none at all).
fn all_ours(machines: &[Machine], row: Uuid) -> bool {
    machines
        .iter()
        .filter(|m| m.is_active())
        .all(|m| m.metadata().is_some_and(|md| machine_config::is_ours(md, row)))
}

/// What a failed teardown's policy ([`error::classify`]) means for its tombstone: pure,
/// table-tested. A global condition blocks everything; a Fly outage looks again after
/// [`outcome::OUTAGE_RECHECK`]; anything else (rate limits, transient and unexpected answers: a
/// tombstone never changes, so nothing is worth waiting for) backs off by the persisted
/// attempt count.
pub fn action(
    policy: Policy,
    attempts: i32,
    backoff: &Backoff,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Action<GlobalCondition> {
    outcome::policy_action(for_tombstones(policy), attempts, backoff, now, rng)
}

/// A tombstone never changes: what would wait for a change of a row is retried instead.
fn for_tombstones(policy: Policy) -> Policy {
    if policy == Policy::WaitForChange { Policy::Retry } else { policy }
}

impl Reconciler for Teardown {
    type Row = Tombstone;
    type Error = ReconcileError;
    type Block = GlobalCondition;

    async fn reconcile(&self, t: &Tombstone) -> Result<Action<GlobalCondition>, ReconcileError> {
        let verdict = crate::fly::bounded_waits(SLOT_WAIT, self.verdict(t)).await?;
        if !self.tombstones.finish(t).await? {
            return Err(ReconcileError::Fenced);
        }
        self.metrics.teardowns.with_label_values(&[verdict.label()]).inc();
        match verdict {
            Verdict::Kept(Keep::NameInUse) => {
                tracing::info!("row deleted; its app belongs to a new row of the same name")
            }
            Verdict::Kept(why) => {
                tracing::warn!(?why, "row deleted; its app is not ours to destroy")
            }
            _ => tracing::info!(result = verdict.label(), "row deleted; its app is gone"),
        }
        Ok(Action::Done)
    }

    fn error_policy(&self, t: &Tombstone, e: &ReconcileError) -> Action<GlobalCondition> {
        let backoff = &self.ctx.settings.backoff;
        action(self.policy(e), t.attempts, backoff, Utc::now(), &mut rand::rng())
    }

    async fn record_error(
        &self,
        t: &Tombstone,
        e: &ReconcileError,
        action: Action<GlobalCondition>,
    ) -> Result<(), ReconcileError> {
        let Some(at) = action.due_at() else { return Ok(()) };
        // the error as the client reports it (redacted: no token, no secret)
        let counts = !matches!(self.policy(e), Policy::FlyDown | Policy::Wait(_));
        if !self.tombstones.retry(t.id, at, &e.to_string(), counts).await? {
            tracing::info!("the tombstone's lease was lost meanwhile; its new holder retries it");
        }
        Ok(())
    }

    fn error_kind(e: &ReconcileError) -> &'static str {
        e.kind()
    }

    fn error_label(&self, e: &ReconcileError) -> &'static str {
        error::result_label(e, for_tombstones(self.policy(e)))
    }

    /// Nothing before the first Fly probe or while a condition a probe can clear (token,
    /// org) holds; a refused runner image does not concern teardowns.
    fn pass_limit(&self, max: usize) -> usize {
        let gate = &self.ctx.gate;
        if gate.open() || gate.condition().is_some_and(|c| !c.probe_clears()) { max } else { 0 }
    }

    fn block(&self, condition: GlobalCondition) {
        self.ctx.gate.block(condition);
    }
}

/// Works tombstones until the shutdown phase leaves `Running`, then drains and releases: the
/// queue runtime over [`Tombstones`] and [`Teardown`], woken by `wake` (the delete NOTIFY, a
/// listener reconnect), by finished passes and by the earliest due tombstone, with
/// four `POLL_INTERVAL`s as the backstop. Keeps the pending gauge fresh.
pub async fn run(
    ctx: Arc<Ctx>,
    metrics: Metrics,
    wake: Arc<Notify>,
    phase: watch::Receiver<Phase>,
) {
    let s = ctx.settings.clone();
    let tombstones = Tombstones::new(ctx.store.pool().clone(), ctx.store.owner(), s.lease);
    let every = (s.stats_interval, s.stats_max_age());
    let gauge = pending_gauge(tombstones.clone(), metrics.clone(), every);
    let runtime = Runtime {
        queue: Arc::new(tombstones.clone()),
        reconciler: Arc::new(Teardown { ctx, metrics: metrics.clone(), tombstones }),
        timing: Timing {
            concurrency: PARALLEL,
            poll_interval: s.teardown_backstop(),
            shutdown_timeout: s.shutdown_timeout,
        },
        metrics,
        // Its own: the replica's liveness and readiness are the preview loop's.
        health: Arc::new(Health::default()),
        wake,
        inflight: InFlight::default(),
    };
    let renew = renew_leases(runtime.queue.clone(), runtime.inflight.clone(), s.lease);
    tokio::select! {
        () = runtime.run(phase) => {}
        () = renew => {}
        () = gauge => {}
    }
}

/// Refreshes `fly_preview_tombstones_pending` forever, every `every` while rows change and
/// every `max_age` at rest.
async fn pending_gauge(tombstones: Tombstones, metrics: Metrics, every: (Duration, Duration)) {
    let mut tick = tokio::time::interval(every.0);
    let mut refresh = crate::preview::refresh::Refresh::new(every.1);
    loop {
        tick.tick().await;
        if !refresh.due(&metrics) {
            continue;
        }
        match tombstones.pending().await {
            Ok(n) => metrics.tombstones_pending.set(n),
            Err(e) => tracing::warn!(error = %e, "counting tombstones failed"),
        }
    }
}

impl Claimed for Tombstone {
    fn id(&self) -> Uuid {
        self.id
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!("teardown", id = %self.id, app = %self.fly_app_name, attempts = self.attempts)
    }
}

/// `fly_preview_controller.tombstones` as the runtime's queue.
impl Queue for Tombstones {
    type Row = Tombstone;

    async fn claim(&self, limit: usize) -> Result<Vec<Tombstone>, QueueError> {
        Tombstones::claim(self, i64::try_from(limit).unwrap_or(i64::MAX)).await.map_err(Into::into)
    }

    async fn next_due(&self) -> Result<Option<Duration>, QueueError> {
        Tombstones::next_due(self).await.map_err(Into::into)
    }

    async fn renew(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, QueueError> {
        Tombstones::renew(self, ids).await.map_err(Into::into)
    }

    async fn release(&self, id: Uuid) -> Result<bool, QueueError> {
        Tombstones::release(self, id).await.map_err(Into::into)
    }

    async fn release_all(&self) -> Result<u64, QueueError> {
        Tombstones::release_all(self).await.map_err(Into::into)
    }
}

#[cfg(test)]
#[path = "teardown_tests.rs"]
mod tests;
