//! The work loop of one queue: claim due rows, run at most `concurrency` passes at once, renew
//! leases while working, and on shutdown stop claiming, drain, and release.
//!
//! # Expected flow
//! Between claims the loop sleeps until the earliest of: a wake-up (a NOTIFY, the gate
//! opening), a finished pass, the earliest due row (asked of the queue after a claim that
//! left slots free), or the backstop `poll_interval`.
//! # Guarantees
//! At most `concurrency` passes run at once, plus the queue's [`Queue::reserve`] of passes
//! the queue fills only with the rows it ranks first (a row due while every other slot is busy
//! starts at once in a free reserve slot, not when a pass ends).
//! Every claimed row gets exactly one [`pass`]; its lease is renewed while the pass runs
//! ([`renew_leases`]) and released when the pass ends without a write (a block, a failed
//! write), at the latest when the replica drains.
//! # Caveats
//! A pass aborted at the drain deadline leaves its lease to expire by itself.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::{self, Phase};
use crate::runtime::contract::{Action, Claimed, Queue, Reconciler};

/// Shortest sleep between claims when a row is overdue but was not claimed (another replica
/// holds its lock for a moment): no busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Longest pause between fruitless claims (claims that returned nothing while rows were
/// overdue): `MIN_SLEEP` doubled per fruitless claim up to this.
const MAX_FRUITLESS_SLEEP: Duration = Duration::from_millis(1280);

/// How long the loop sleeps: until the next row is due (at least `MIN_SLEEP`, doubled for
/// each fruitless claim in a row up to `MAX_FRUITLESS_SLEEP`), at most `poll`.
fn pause(due_in: Option<Duration>, fruitless: u32, poll: Duration) -> Duration {
    let doublings = fruitless.saturating_sub(1).min(8);
    let floor = MIN_SLEEP.saturating_mul(1 << doublings).min(MAX_FRUITLESS_SLEEP);
    due_in.map_or(poll, |d| d.max(floor).min(poll))
}

/// Ids of rows this replica is working on (for lease renewal).
pub type InFlight = Arc<Mutex<HashSet<Uuid>>>;

/// Timings of one loop.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Passes at once (before [`Reconciler::pass_limit`]).
    pub concurrency: usize,
    /// Backstop: the longest sleep between claims.
    pub poll_interval: Duration,
    /// How long in-flight passes may finish at shutdown.
    pub shutdown_timeout: Duration,
}

/// One queue, one reconciler, one loop.
pub struct Runtime<Q, R> {
    /// Where due rows come from; also renews and releases their leases.
    pub queue: Arc<Q>,
    /// The domain: one pass per claimed row.
    pub reconciler: Arc<R>,
    /// Concurrency, backstop poll and drain deadline.
    pub timing: Timing,
    /// Pass counters and durations, rows in flight, database errors.
    pub metrics: Metrics,
    /// The loop's heartbeat and the database's reachability, for `/healthz` and `/readyz`.
    pub health: Arc<Health>,
    /// Notified by whoever knows a row may be due now (a NOTIFY, the gate opening): the
    /// loop stops sleeping and claims.
    pub wake: Arc<Notify>,
    /// Ids of rows in flight, shared with [`renew_leases`] (and any lane that runs passes
    /// beside the loop).
    pub inflight: InFlight,
}

impl<Q, R> Runtime<Q, R>
where
    Q: Queue,
    R: Reconciler<Row = Q::Row>,
{
    /// Runs until the shutdown phase leaves `Running`, then drains.
    pub async fn run(&self, mut phase: watch::Receiver<Phase>) {
        let mut workers = JoinSet::new();
        let mut fruitless: u32 = 0;
        while *phase.borrow() == Phase::Running {
            self.health.beat();
            // Reap finished passes first, or their slots look busy and only one row is
            // claimed per loop (one round trip per row instead of one per batch).
            while workers.try_join_next().is_some() {}
            let limit = self.reconciler.pass_limit(self.timing.concurrency);
            let free = (limit + self.queue.reserve()).saturating_sub(workers.len());
            let (claimed, due_in) =
                if free > 0 { self.claim_into(&mut workers, free).await } else { (0, None) };
            // Overdue rows that a claim does not return (their user is at the per-user cap,
            // or another replica holds them): claim again after a growing pause, not every
            // MIN_SLEEP. A pass ending, a notification or a claimed row resets it.
            let overdue = due_in.is_some_and(|d| d <= MIN_SLEEP);
            fruitless =
                if free > 0 && claimed == 0 && overdue { fruitless.saturating_add(1) } else { 0 };
            let sleep = pause(due_in, fruitless, self.timing.poll_interval);
            tokio::select! {
                _ = self.wake.notified() => fruitless = 0,
                _ = tokio::time::sleep(sleep) => {}
                Some(_) = workers.join_next(), if !workers.is_empty() => fruitless = 0,
                _ = phase.changed() => {}
            }
        }
        self.drain(workers, phase).await;
    }

    /// Claims up to `free` rows and starts their passes. Returns how many it claimed and,
    /// when slots are left over, how long until the next claimable row is due.
    async fn claim_into(
        &self,
        workers: &mut JoinSet<()>,
        free: usize,
    ) -> (usize, Option<Duration>) {
        match self.queue.claim(free).await {
            Ok(rows) => {
                let (n, full) = (rows.len(), rows.len() >= free);
                self.health.set_db(true);
                self.health.synced();
                self.metrics.last_sync.set(chrono::Utc::now().timestamp() as f64);
                for row in rows {
                    self.spawn(workers, row);
                }
                (n, if full { None } else { self.next_due().await })
            }
            Err(e) => {
                self.health.set_db(false);
                self.metrics.db_errors.inc();
                tracing::warn!(error = %e, "claiming due rows failed");
                (0, None)
            }
        }
    }

    /// Starts the pass of a claimed row on `workers`.
    pub fn spawn(&self, workers: &mut JoinSet<()>, row: Q::Row) {
        lock(&self.inflight).insert(row.id());
        let (q, r, m, i) = (
            self.queue.clone(),
            self.reconciler.clone(),
            self.metrics.clone(),
            self.inflight.clone(),
        );
        workers.spawn(async move { pass(&*q, &*r, &m, row, &i).await });
    }

    async fn next_due(&self) -> Option<Duration> {
        match self.queue.next_due().await {
            Ok(d) => d,
            Err(e) => {
                self.metrics.db_errors.inc();
                tracing::warn!(error = %e, "reading the next due time failed; polling");
                None
            }
        }
    }

    /// Lets in-flight passes finish within the deadline (a second signal aborts them),
    /// then releases every lease this replica still holds.
    async fn drain(&self, mut workers: JoinSet<()>, mut phase: watch::Receiver<Phase>) {
        self.health.shutting_down();
        tracing::info!(in_flight = workers.len(), "draining");
        let deadline = tokio::time::sleep(self.timing.shutdown_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = workers.join_next() => if next.is_none() { break },
                _ = &mut deadline => { tracing::warn!("shutdown deadline passed; aborting in-flight work"); break }
                _ = shutdown::reached(&mut phase, Phase::Abort) => { tracing::warn!("second signal; aborting"); break }
            }
        }
        workers.abort_all();
        match self.queue.release_all().await {
            Ok(n) => tracing::info!(released = n, "leases released"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing leases failed; they expire on their own")
            }
        }
    }
}

fn lock(inflight: &InFlight) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
    inflight.lock().unwrap_or_else(|p| p.into_inner())
}

/// One pass over one claimed row: the reconciler's pass, its error policy on failure, the
/// pass's metrics, and the lease given back when nothing was written.
pub async fn pass<Q, R>(queue: &Q, r: &R, metrics: &Metrics, row: Q::Row, inflight: &InFlight)
where
    Q: Queue,
    R: Reconciler<Row = Q::Row>,
{
    let span = row.span();
    async {
        metrics.inflight.inc();
        let _done = Done { metrics, inflight, id: row.id() };
        let started = Instant::now();
        let label = match r.reconcile(&row).await {
            Ok(action) => {
                r.pass_ok();
                ok_label(&action)
            }
            Err(e) => failed(queue, r, metrics, &row, &e).await,
        };
        metrics.reconciles.with_label_values(&[label]).inc();
        metrics
            .reconcile_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await
}

/// A failed pass: the reconciler's policy, then its write (or, for a block, none).
async fn failed<Q, R>(
    queue: &Q,
    r: &R,
    metrics: &Metrics,
    row: &Q::Row,
    e: &R::Error,
) -> &'static str
where
    Q: Queue,
    R: Reconciler<Row = Q::Row>,
{
    let kind = R::error_kind(e);
    metrics.reconcile_errors.with_label_values(&[kind]).inc();
    let action = r.error_policy(row, e);
    tracing::warn!(error = %e, kind, ?action, "reconcile failed");
    let label = r.error_label(e);
    let written = match action {
        Action::Block(condition) => {
            r.block(condition);
            false
        }
        _ => match r.record_error(row, e, action).await {
            Ok(()) => true,
            Err(w) => {
                tracing::warn!(error = %w, "recording the failure failed; the row is retried");
                false
            }
        },
    };
    if !written && let Err(e) = queue.release(row.id()).await {
        tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
    }
    label
}

/// Metric label of a pass that did not fail.
fn ok_label<B>(action: &Action<B>) -> &'static str {
    match action {
        Action::RequeueAt(_) => "requeue",
        Action::AwaitChange | Action::Done | Action::Block(_) => "ok",
    }
}

/// Renews the leases of rows in flight every third of `lease`.
pub async fn renew_leases<Q: Queue>(queue: Arc<Q>, inflight: InFlight, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tick.tick().await;
        let ids: Vec<Uuid> = lock(&inflight).iter().copied().collect();
        if ids.is_empty() {
            continue;
        }
        match queue.renew(&ids).await {
            Ok(held) => {
                let lost = lost_leases(&inflight, &ids, &held);
                if lost > 0 {
                    tracing::warn!(lost, "some leases were lost; their writes will be fenced out");
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
        }
    }
}

/// Rows asked about and not renewed that are still in flight: a pass that wrote its row
/// (giving the lease back) while the renewal ran is finished, not lost.
fn lost_leases(inflight: &InFlight, asked: &[Uuid], held: &[Uuid]) -> usize {
    let held: HashSet<&Uuid> = held.iter().collect();
    let now = lock(inflight);
    asked.iter().filter(|id| !held.contains(id) && now.contains(id)).count()
}

/// Bookkeeping that must happen even when a pass is aborted (drain deadline, second signal).
struct Done<'a> {
    metrics: &'a Metrics,
    inflight: &'a InFlight,
    id: Uuid,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.metrics.inflight.dec();
        lock(self.inflight).remove(&self.id);
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
