//! Teardown of deleted rows, level-triggered: the analogue of a kube finalizer, kept in a
//! tombstone instead of the object.
//!
//! # Expected flow
//! 1. A row of `public.fly_preview_apps` is deleted. In the same transaction its AFTER DELETE
//!    trigger leaves a tombstone (id, user, app name) in `fly_preview_controller.tombstones`,
//!    due now, and a NOTIFY (`{"op":"delete","id":…}`) wakes [`run`].
//! 2. [`run`] claims due tombstones with a lease ([`Tombstones`], `FOR UPDATE SKIP LOCKED`),
//!    at most [`PARALLEL`] at once, and [`Teardown::reconcile`] works each: the app is only
//!    destroyed if it is the deleted row's (see Assumptions), then Fly must answer 404 for it.
//! 3. Finished (destroyed, already gone, or not the deleted row's to destroy): the tombstone is
//!    deleted, fenced by the lease. Failed: [`Teardown::error_policy`] decides when to look
//!    again and the tombstone keeps the attempt count, due time and the error for operators.
//!
//! # Guarantees
//! Every deleted row's app is destroyed or found not to be the row's, eventually, whether the
//! daemon was running, down or restarting when the row was deleted: the tombstone is written
//! with the delete and only removed once Fly confirms the app is gone (or that it is not ours).
//! A tombstone is worked by one replica at a time (leases, renewed while a pass runs), and its
//! attempts and backoff survive restarts. A Fly outage (the client's breaker open) parks it for
//! [`OUTAGE_RECHECK`] without counting an attempt; a rejected token blocks the whole
//! controller ([`GlobalCondition`]) and leaves the tombstone untouched.
//!
//! # Assumptions
//! The app is not the deleted row's, and is left alone, when its name does not carry the
//! configured prefix, when a row owns the name again (a preview re-created under the same
//! name), or when any of its active machines lacks our metadata for the deleted row's id
//! ([`machine_config::is_ours`]). Passes are idempotent and safe to cancel at any `.await`
//! (deleting an app twice finds a 404).
//!
//! # Caveats
//! Deletions wait while no replica runs, while the gate is shut by a global condition, and
//! for the client's global app-delete rate limit (100 a minute). A row re-created under the
//! same name between the checks and the delete call loses its app (the window is one Fly
//! call); its own pass then re-creates it. `TRUNCATE` fires no row trigger: those apps are
//! left to the orphan sweep, as are apps whose rows were deleted before tombstones existed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::fly::{FlyError, Machine};
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::{self, Phase};
use crate::preview::error::{GlobalCondition, Policy, ReconcileError};
use crate::preview::machine_config;
use crate::preview::outcome::OUTAGE_RECHECK;
use crate::preview::reconcile::Ctx;
use crate::runtime::backoff::Backoff;
use crate::runtime::{Action, Claimed, Queue, Reconciler};
use crate::store::{Tombstone, Tombstones};

/// Teardowns running at once. App deletes share one global rate limit (100 a minute), so
/// more passes would only wait for it, holding leases.
pub const PARALLEL: usize = 4;

/// While the gate holds every pass back, how often it is looked at again (no database call).
const GATE_RECHECK: Duration = Duration::from_secs(1);

/// Shortest sleep between claims when a tombstone is overdue but was not claimed (another
/// replica holds its lock for a moment): no busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);

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
    /// The checks and the delete: whether the app is the deleted row's, and if so, gone.
    async fn verdict(&self, t: &Tombstone) -> Result<Verdict, ReconcileError> {
        let (ctx, app) = (&self.ctx, t.fly_app_name.as_str());
        if !app.starts_with(&format!("{}-", ctx.settings.rules.prefix)) {
            return Ok(Verdict::Kept(Keep::NotOurPrefix));
        }
        if ctx.store.app_name_exists(app).await? {
            return Ok(Verdict::Kept(Keep::NameInUse));
        }
        if ctx.fly.breaker().is_open() {
            return Err(ReconcileError::FlyDown(FlyError::unavailable()));
        }
        let machines = match ctx.fly.list_machines(app, &[]).await {
            Ok(ms) => ms,
            Err(FlyError::NotFound(_)) => return Ok(Verdict::Absent),
            Err(FlyError::Forbidden(_)) => return Ok(Verdict::Kept(Keep::Refused)),
            Err(e) => return Err(e.into()),
        };
        if !all_ours(&machines, t.id) {
            return Ok(Verdict::Kept(Keep::ForeignMachines));
        }
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

/// Every active machine carries our metadata for the deleted row (true for none at all).
fn all_ours(machines: &[Machine], row: Uuid) -> bool {
    machines
        .iter()
        .filter(|m| m.is_active())
        .all(|m| m.metadata().is_some_and(|md| machine_config::is_ours(md, row)))
}

/// What a failed teardown means: pure, table-tested. A global condition blocks everything;
/// a Fly outage looks again after [`OUTAGE_RECHECK`]; anything else (rate limits, transient
/// and unexpected answers: a tombstone never changes, so nothing is worth waiting for) backs
/// off by the persisted attempt count.
pub fn policy(
    e: &ReconcileError,
    attempts: i32,
    backoff: &Backoff,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Action<GlobalCondition> {
    match e.policy() {
        Policy::Global(c) => Action::Block(c),
        Policy::FlyDown => Action::requeue(now, OUTAGE_RECHECK),
        Policy::Retry | Policy::WaitForChange => {
            let attempts = u32::try_from(attempts).unwrap_or(0);
            Action::requeue(now, backoff.delay(attempts, rng))
        }
    }
}

impl Reconciler for Teardown {
    type Row = Tombstone;
    type Error = ReconcileError;
    type Block = GlobalCondition;

    async fn reconcile(&self, t: &Tombstone) -> Result<Action<GlobalCondition>, ReconcileError> {
        let verdict = match self.verdict(t).await {
            Err(ReconcileError::Fly(e))
                if e.is_platform_failure() && self.ctx.fly.breaker().is_open() =>
            {
                return Err(ReconcileError::FlyDown(e));
            }
            other => other?,
        };
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
        policy(e, t.attempts, &self.ctx.settings.backoff, Utc::now(), &mut rand::rng())
    }

    async fn record_error(
        &self,
        t: &Tombstone,
        e: &ReconcileError,
        action: Action<GlobalCondition>,
    ) -> Result<(), ReconcileError> {
        let Some(at) = action.due_at() else { return Ok(()) };
        // the error as the client reports it (redacted: no token, no secret)
        let counts = e.policy() != Policy::FlyDown;
        if !self.tombstones.retry(t.id, at, &e.to_string(), counts).await? {
            tracing::info!("the tombstone's lease was lost meanwhile; its new holder retries it");
        }
        Ok(())
    }

    fn error_kind(e: &ReconcileError) -> &'static str {
        e.kind()
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

/// Works tombstones until the shutdown phase leaves `Running`, then drains and releases.
/// Woken by `wake` (the delete NOTIFY, a listener reconnect), by finished passes and by the
/// earliest due tombstone; `poll_interval` is the backstop. Keeps the pending gauge fresh.
pub async fn run(
    ctx: Arc<Ctx>,
    metrics: Metrics,
    wake: Arc<Notify>,
    phase: watch::Receiver<Phase>,
) {
    let s = ctx.settings.clone();
    let tombstones = Tombstones::new(ctx.store.pool().clone(), ctx.store.owner(), s.lease);
    let gauge = pending_gauge(tombstones.clone(), metrics.clone(), s.stats_interval);
    let teardown = Teardown { ctx, metrics, tombstones: tombstones.clone() };
    let timing = Timing { poll: s.poll_interval, lease: s.lease, drain: s.shutdown_timeout };
    tokio::select! {
        () = drive(Arc::new(tombstones), Arc::new(teardown), wake, phase, timing) => {}
        () = gauge => {}
    }
}

/// Refreshes `fly_preview_tombstones_pending`, forever.
async fn pending_gauge(tombstones: Tombstones, metrics: Metrics, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match tombstones.pending().await {
            Ok(n) => metrics.tombstones_pending.set(n),
            Err(e) => tracing::warn!(error = %e, "counting tombstones failed"),
        }
    }
}

/// The small driver's timings.
#[derive(Debug, Clone, Copy)]
struct Timing {
    poll: Duration,
    lease: Duration,
    drain: Duration,
}

type Held = Arc<Mutex<HashSet<Uuid>>>;

/// Claim, work, record: the runtime contract's loop in its smallest form.
async fn drive<Q, R>(
    q: Arc<Q>,
    r: Arc<R>,
    wake: Arc<Notify>,
    mut phase: watch::Receiver<Phase>,
    t: Timing,
) where
    Q: Queue,
    R: Reconciler<Row = Q::Row>,
{
    let held: Held = Arc::default();
    let mut passes = JoinSet::new();
    let mut renew = tokio::time::interval(t.lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while *phase.borrow() == Phase::Running {
        while passes.try_join_next().is_some() {}
        let limit = r.pass_limit(PARALLEL);
        let free = limit.saturating_sub(passes.len());
        let mut sleep = if limit == 0 { GATE_RECHECK.min(t.poll) } else { t.poll };
        if free > 0 {
            match q.claim(free).await {
                Ok(rows) => {
                    let full = rows.len() >= free;
                    for row in rows {
                        lock(&held).insert(row.id());
                        passes.spawn(pass(q.clone(), r.clone(), held.clone(), row));
                    }
                    if !full {
                        match q.next_due().await {
                            Ok(Some(due)) => sleep = due.clamp(MIN_SLEEP, t.poll),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "reading the next due tombstone failed")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming tombstones failed"),
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            Some(_) = passes.join_next(), if !passes.is_empty() => {}
            _ = renew.tick(), if !passes.is_empty() => renew_held(&*q, &held).await,
            _ = phase.changed() => {}
        }
    }
    let deadline = tokio::time::sleep(t.drain);
    tokio::pin!(deadline);
    while !passes.is_empty() {
        tokio::select! {
            _ = passes.join_next() => {}
            () = &mut deadline => break,
            () = shutdown::reached(&mut phase, Phase::Abort) => break,
        }
    }
    passes.abort_all();
    if let Err(e) = q.release_all().await {
        tracing::warn!(error = %e, "releasing tombstones failed; their leases expire on their own");
    }
}

fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

async fn renew_held<Q: Queue>(q: &Q, held: &Held) {
    let ids: Vec<Uuid> = lock(held).iter().copied().collect();
    match q.renew(&ids).await {
        Ok(kept) if kept.len() < ids.len() => tracing::warn!(
            lost = ids.len() - kept.len(),
            "some tombstone leases were lost; their writes will be fenced out"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "renewing tombstone leases failed"),
    }
}

/// One pass: reconcile, and on failure ask the policy and record it (or block).
async fn pass<Q, R>(q: Arc<Q>, r: Arc<R>, held: Held, row: Q::Row)
where
    Q: Queue,
    R: Reconciler<Row = Q::Row>,
{
    let id = row.id();
    let span = row.span();
    async {
        match r.reconcile(&row).await {
            Ok(_) => r.pass_ok(),
            Err(e) => {
                let action = r.error_policy(&row, &e);
                tracing::warn!(error = %e, kind = R::error_kind(&e), ?action, "teardown failed");
                if let Action::Block(c) = action {
                    if let Err(e) = q.release(id).await {
                        tracing::warn!(error = %e, "giving the tombstone back failed");
                    }
                    r.block(c);
                } else if let Err(e) = r.record_error(&row, &e, action).await {
                    tracing::warn!(error = %e, "recording the failure failed; the lease expires");
                }
            }
        }
    }
    .instrument(span)
    .await;
    lock(&held).remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::ErrorInfo;
    use crate::store::StoreError;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const B: Backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(300) };

    fn info() -> ErrorInfo {
        ErrorInfo::default()
    }

    fn fly(e: FlyError) -> ReconcileError {
        ReconcileError::Fly(e)
    }

    /// What a failure means for the tombstone, given `attempts` failures so far.
    fn decide(e: &ReconcileError, attempts: i32) -> Action<GlobalCondition> {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        policy(e, attempts, &B, now, &mut StdRng::seed_from_u64(3))
    }

    /// The delay of a requeue, from the fixed `now` above.
    fn after(a: Action<GlobalCondition>) -> Duration {
        let at = a.due_at().expect("a requeue");
        (at - DateTime::<Utc>::UNIX_EPOCH).to_std().unwrap()
    }

    #[test]
    fn global_conditions_block_everything() {
        let token = fly(FlyError::Unauthorized(info()));
        assert_eq!(decide(&token, 0), Action::Block(GlobalCondition::FlyTokenRejected));
        let org = ReconcileError::Misconfigured(
            GlobalCondition::FlyOrgForbidden,
            FlyError::Forbidden(info()),
        );
        assert_eq!(decide(&org, 7), Action::Block(GlobalCondition::FlyOrgForbidden));
    }

    #[test]
    fn an_outage_looks_again_after_30s_whatever_the_attempts() {
        for e in [ReconcileError::FlyDown(FlyError::unavailable()), fly(FlyError::unavailable())] {
            for attempts in [0, 3, 20] {
                assert_eq!(after(decide(&e, attempts)), OUTAGE_RECHECK, "{e}");
            }
        }
        assert_eq!(OUTAGE_RECHECK, Duration::from_secs(30));
    }

    #[test]
    fn everything_else_backs_off_by_the_persisted_attempts() {
        let cases = [
            fly(FlyError::RateLimited { retry_after: None, info: info() }),
            fly(FlyError::Transient(info())),
            fly(FlyError::Timeout(info())),
            fly(FlyError::Permanent(info())),
            ReconcileError::Store(StoreError::Connect("down".into())),
            ReconcileError::NotVisibleYet("still listed"),
            ReconcileError::Fenced,
        ];
        for e in &cases {
            for attempts in [0, 1, 4, 12] {
                let d = after(decide(e, attempts));
                let ceiling = B.ceiling(u32::try_from(attempts).unwrap());
                assert!(
                    d >= Duration::from_millis(10) && d <= ceiling,
                    "{e} after {attempts}: {d:?}"
                );
            }
        }
        // the persisted count is what grows the delay (seeded: same draw, larger ceiling)
        let e = fly(FlyError::Transient(info()));
        assert!(after(decide(&e, 8)) > after(decide(&e, 0)));
    }

    #[test]
    fn only_our_machines_for_the_deleted_row_allow_the_delete() {
        let row = Uuid::new_v4();
        let machine = |metadata: serde_json::Value, state: &str| -> Machine {
            serde_json::from_value(serde_json::json!({
                "id": "m1", "state": state, "config": {"metadata": metadata},
            }))
            .unwrap()
        };
        let ours = serde_json::json!({"managed-by": "fly-preview-controller", "preview-id": row.to_string()});
        let other_row = serde_json::json!({"managed-by": "fly-preview-controller", "preview-id": Uuid::new_v4().to_string()});
        let foreign = serde_json::json!({"fly_platform_version": "v2"});
        assert!(all_ours(&[], row), "an app without machines");
        assert!(all_ours(&[machine(ours.clone(), "started")], row));
        assert!(!all_ours(&[machine(ours.clone(), "started"), machine(other_row, "stopped")], row));
        assert!(!all_ours(&[machine(foreign.clone(), "started")], row));
        assert!(
            all_ours(&[machine(ours, "started"), machine(foreign, "destroyed")], row),
            "inactive machines do not count"
        );
    }
}
