//! The preview domain's side of the runtime contract: [`Previews`] reconciles one claimed
//! row ([`pass`]: budget, teardown or quota + deploy), decides the write with the pure
//! [`outcome`](crate::preview::outcome) and lands it fenced; [`PreviewQueue`] is the table
//! `public.fly_preview_apps` as the runtime's queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;

use crate::fly::{self, FlyClient};
use crate::model::state::Reason;
use crate::model::state::{DesiredState, Status};
use crate::model::timeline::Event;
use crate::ops::metrics::Metrics;
use crate::preview::ctx::Ctx;
use crate::preview::deploy::{Deploy, validate_row};
use crate::preview::error::{self, GlobalCondition, Policy, ReconcileError, Rejection};
use crate::preview::gate::FlyGate;
use crate::preview::idle::{self, delete_app};
use crate::preview::limits;
use crate::preview::outcome::{self, Outcome, PreviewAction};
use crate::preview::quiet;
use crate::preview::stop;
use crate::preview::timeline;
use crate::runtime::{Claimed, Queue, QueueError, Reconciler};
use crate::store::{Lease, PreviewRow, StatusWrite, Store};

/// The longest a pass waits in its worker slot for Fly's budget (a client-side bucket, a
/// 429's `Retry-After`); past it the pass ends and the row comes back when the budget has room
/// ([`Policy::Wait`]). The happy path never waits at all (at most 2 calls of one action on one
/// app or machine).
pub const SLOT_WAIT: Duration = Duration::from_secs(1);

/// One pass for one row: within the row's redeploy budget, desired `stopped` tears down; a
/// settled preview unused for its idle TTL expires and an opened one wakes (`idle`);
/// otherwise it deploys if the user's quota has a slot for it.
pub async fn pass(ctx: &Ctx, row: &PreviewRow) -> Result<Outcome, ReconcileError> {
    if let Some(hold) = limits::budget(&ctx.store, &ctx.settings, row).await? {
        return Ok(hold.into());
    }
    if row.desired_state == DesiredState::Stopped {
        if !row.fly_app_created {
            // It never had an app: nothing runs on Fly, nothing to ask Fly.
            return Ok(Outcome::Stopped);
        }
        ctx.fly_up()?;
        return stop::stop(&ctx.fly, row).await;
    }
    if let Err(e) = validate_row(row, &ctx.settings.rules) {
        let reason = Reason::InvalidSpec;
        return Err(ReconcileError::Rejected(Rejection {
            reason,
            message: e.to_string(),
            detail: None,
            machine: None,
        }));
    }
    if let Some(outcome) = idle::pass(ctx, row).await? {
        return Ok(outcome);
    }
    ctx.fly_up()?;
    let admitted = match limits::admit(&ctx.store, &ctx.settings, row).await? {
        limits::Admit::Refused(hold) => return refuse(&ctx.fly, row, hold).await,
        limits::Admit::Admitted => true,
        limits::Admit::Holds => false,
    };
    Deploy { ctx, row, marked: admitted || row.status == Status::Initializing }.run().await
}

impl From<limits::Hold> for Outcome {
    fn from(h: limits::Hold) -> Self {
        match h {
            limits::Hold::Throttled { until, message } => Outcome::Throttled { until, message },
            limits::Hold::Refused { message } => Outcome::Refused { message },
        }
    }
}

/// A row refused for the quota keeps nothing alive on Fly: a machine it still has (a limit
/// lowered meanwhile, a row refused by an older release) goes with its app before the row is
/// parked (the refusal's write forgets the machine).
async fn refuse(
    fly: &FlyClient,
    row: &PreviewRow,
    hold: limits::Hold,
) -> Result<Outcome, ReconcileError> {
    if row.fly_machine_id.is_some() {
        delete_app(fly, &row.fly_app_name).await?;
    }
    Ok(hold.into())
}

/// The preview reconciler of one replica.
pub struct Previews {
    pub ctx: Arc<Ctx>,
    pub metrics: Metrics,
}

impl Previews {
    fn policy(&self, e: &ReconcileError) -> Policy {
        error::classify(e, self.ctx.fly.breaker().is_open())
    }

    /// The fenced write of a pass's result; the lease goes back with it.
    async fn write(
        &self,
        row: &PreviewRow,
        w: &StatusWrite,
        events: &[Event],
    ) -> Result<(), ReconcileError> {
        let store = &self.ctx.store;
        let written = store.write_status_with(row.id, row.generation, w, Lease::Release, events);
        let Some(landed) = written.await? else {
            tracing::info!("row changed meanwhile; result discarded, it will be reconciled again");
            return Err(ReconcileError::Fenced);
        };
        tracing::info!(status = %w.status, reason = %w.reason, "reconciled");
        quiet::count(&self.metrics, row, w);
        if w.status == Status::Running && landed.previous_status != Status::Running {
            let secs = (Utc::now() - landed.requested_at).num_milliseconds().max(0) as f64 / 1e3;
            self.metrics.time_to_running.observe(secs);
        }
        for (kind, secs) in &landed.events {
            self.metrics.phase_seconds.with_label_values(&[kind.as_str()]).observe(*secs);
        }
        limits::after_write(store, &self.ctx.settings, &self.metrics, row, w.reason).await;
        if w.reason == Reason::Expired && row.status != Status::Stopped {
            self.metrics.expired.inc();
        }
        Ok(())
    }
}

impl Reconciler for Previews {
    type Row = PreviewRow;
    type Error = ReconcileError;
    type Block = GlobalCondition;

    async fn reconcile(&self, row: &PreviewRow) -> Result<PreviewAction, ReconcileError> {
        let outcome = fly::bounded_waits(SLOT_WAIT, pass(&self.ctx, row)).await?;
        let w = outcome::decide(&self.ctx.settings, row, &outcome, Utc::now());
        let mut events = timeline::events(row, &w);
        timeline::note_wake(&mut events, &outcome, &w);
        self.write(row, &w, &events).await?;
        if let Outcome::Woken { .. } = outcome {
            self.metrics.wakes.inc();
            let since = row.opened_at.unwrap_or(row.updated_at);
            let secs = (Utc::now() - since).num_milliseconds().max(0) as f64 / 1e3;
            self.metrics.wake_seconds.observe(secs);
        }
        Ok(outcome::action_of(&w))
    }

    fn error_policy(&self, row: &PreviewRow, e: &ReconcileError) -> PreviewAction {
        let s = &self.ctx.settings;
        outcome::error_action(s, row, e, self.policy(e), Utc::now(), &mut rand::rng())
    }

    async fn record_error(
        &self,
        row: &PreviewRow,
        e: &ReconcileError,
        action: PreviewAction,
    ) -> Result<(), ReconcileError> {
        if matches!(e, ReconcileError::Fenced) {
            // Someone else's write won: there is nothing of ours to record.
            return Err(ReconcileError::Fenced);
        }
        let w = outcome::error_write(row, e, self.policy(e), action);
        self.write(row, &w, &timeline::events(row, &w)).await
    }

    fn error_kind(e: &ReconcileError) -> &'static str {
        e.kind()
    }

    fn error_label(&self, e: &ReconcileError) -> &'static str {
        error::result_label(e, self.policy(e))
    }

    fn pass_limit(&self, max: usize) -> usize {
        self.ctx.gate.pass_limit(max)
    }

    fn block(&self, condition: GlobalCondition) {
        self.ctx.gate.block(condition);
    }

    fn pass_ok(&self) {
        self.ctx.gate.pass_ok();
    }
}

impl Claimed for PreviewRow {
    fn id(&self) -> uuid::Uuid {
        self.id
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!("reconcile", id = %self.id, app = %self.fly_app_name, generation = self.generation)
    }
}

/// `public.fly_preview_apps` as the runtime's queue: started work first, then people's
/// requests, fair across users (at most `per_user` rows of one user leased at once).
///
/// # Guarantees
/// `keep` of the free worker slots are kept for started work (a booting machine's re-check,
/// a wake, a retry of a deploy in progress), and `reserve` more slots beyond the loop's
/// concurrency ([`Queue::reserve`]) take only started work: other work is claimed only into
/// the slots beyond both, so a retry falls due into a free slot and starts at the time its
/// message names even while new rows fill every other slot and other started work fills the
/// kept ones. Among started work a failed pass's retry (which named its time) goes before a
/// re-check or a wake (which named none). While only kept or reserve slots are free, the loop
/// sleeps until started work is due (or a pass ends, or a row changes), not until the other
/// work that waits for a slot.
/// # Caveats
/// More retries due at once than the kept and reserve slots left free by other started work
/// wait for the next slot like any row, and so does a retry of a user who has the per-user
/// cap of rows in flight plus one such retry (the claim allows one beyond the cap). Nothing is
/// kept or reserved while the gate is not open (a global condition's probe pass may be any
/// row).
pub struct PreviewQueue {
    pub store: Store,
    pub lease: Duration,
    pub per_user: i64,
    /// Free slots kept for started work ([`crate::preview::settings::Settings::kept_for_started`]).
    pub keep: usize,
    /// Slots beyond the concurrency for started work only
    /// ([`crate::preview::settings::Settings::reserved_for_started`]).
    pub reserve: usize,
    /// Whether work runs normally (slots are kept only then).
    pub gate: Arc<FlyGate>,
    /// Whether the last claim left only kept slots free: the next due time that matters is
    /// started work's.
    pub only_kept_free: AtomicBool,
}

impl Queue for PreviewQueue {
    type Row = PreviewRow;

    fn reserve(&self) -> usize {
        if self.gate.open() { self.reserve } else { 0 }
    }

    async fn claim(&self, limit: usize) -> Result<Vec<PreviewRow>, QueueError> {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let keep = if self.gate.open() { self.keep + self.reserve } else { 0 };
        let rows = self
            .store
            .claim_keeping(as_i64(limit), as_i64(keep), self.lease, self.per_user)
            .await?;
        let left = limit.saturating_sub(rows.len());
        self.only_kept_free.store(left > 0 && left <= keep, Ordering::Relaxed);
        Ok(rows)
    }

    async fn next_due(&self) -> Result<Option<Duration>, QueueError> {
        if self.only_kept_free.load(Ordering::Relaxed) {
            return self.store.next_started_due().await.map_err(Into::into);
        }
        self.store.next_due().await.map_err(Into::into)
    }

    async fn renew(&self, ids: &[uuid::Uuid]) -> Result<Vec<uuid::Uuid>, QueueError> {
        self.store.renew(ids, self.lease).await.map_err(Into::into)
    }

    async fn release(&self, id: uuid::Uuid) -> Result<bool, QueueError> {
        self.store.release(id).await.map_err(Into::into)
    }

    async fn release_all(&self) -> Result<u64, QueueError> {
        self.store.release_all().await.map_err(Into::into)
    }
}
