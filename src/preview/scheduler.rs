//! The work loop: claim due rows, run at most `concurrency` passes at once, renew leases
//! while working, write fenced results, and on shutdown stop claiming, drain, and release.
//! Between claims the loop sleeps until the earliest of: a NOTIFY, a finished pass, the
//! earliest `next_attempt_at` among claimable rows (asked of the database after a claim that
//! left slots free), or the backstop `poll_interval`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::model::state::Status;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::{self, Phase};
use crate::preview::gate::watch as fly_health;
use crate::preview::limits;
use crate::preview::outcome::{self, Decision};
use crate::preview::quiet;
use crate::preview::reconcile::{self, Ctx};
use crate::store::PreviewRow;
use crate::store::{Lease, StatusWrite};

/// Shortest sleep between claims when a row is overdue but was not claimed (another replica
/// holds its lock for a moment): no busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Ids of rows this replica is working on (for lease renewal).
pub type InFlight = Arc<Mutex<HashSet<Uuid>>>;

pub struct Scheduler {
    pub ctx: Arc<Ctx>,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub wake: Arc<Notify>,
    pub inflight: InFlight,
}

impl Scheduler {
    /// Runs until the shutdown phase leaves `Running`, then drains.
    pub async fn run(&self, mut phase: watch::Receiver<Phase>) {
        let mut workers = JoinSet::new();
        let max = self.ctx.settings.concurrency;
        while *phase.borrow() == Phase::Running {
            self.health.beat();
            // Reap finished passes first, or their slots look busy and only one row is
            // claimed per loop (one round trip per row instead of one per batch).
            while workers.try_join_next().is_some() {}
            // Nothing before the first Fly probe, and nothing (or one paced probe pass) while
            // a global condition blocks every pass.
            let limit = self.ctx.gate.pass_limit(max);
            let free = limit.saturating_sub(workers.len());
            let mut due_in = None;
            if free > 0 {
                due_in = self.claim_into(&mut workers, free).await;
            }
            let poll = self.ctx.settings.poll_interval;
            let sleep = due_in.map_or(poll, |d: Duration| d.max(MIN_SLEEP).min(poll));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                Some(_) = workers.join_next(), if !workers.is_empty() => {}
                _ = phase.changed() => {}
            }
        }
        self.drain(workers, phase).await;
    }

    /// Claims up to `free` rows and starts their passes. When slots are left over, returns
    /// how long until the next claimable row is due (the loop sleeps that long at most).
    async fn claim_into(&self, workers: &mut JoinSet<()>, free: usize) -> Option<Duration> {
        let (lease, per_user) = (self.ctx.settings.lease, self.ctx.settings.per_user_inflight());
        match self.ctx.store.claim(free as i64, lease, per_user).await {
            Ok(rows) => {
                let full = rows.len() >= free;
                self.health.set_db(true);
                self.health.synced();
                self.metrics.last_sync.set(chrono::Utc::now().timestamp() as f64);
                for row in rows {
                    self.lock().insert(row.id);
                    let (ctx, metrics, inflight) =
                        (self.ctx.clone(), self.metrics.clone(), self.inflight.clone());
                    workers.spawn(async move { process(&ctx, &metrics, row, &inflight).await });
                }
                if full { None } else { self.next_due().await }
            }
            Err(e) => {
                self.health.set_db(false);
                self.metrics.db_errors.inc();
                tracing::warn!(error = %e, "claiming due rows failed");
                None
            }
        }
    }

    async fn next_due(&self) -> Option<Duration> {
        match self.ctx.store.next_due().await {
            Ok(d) => d,
            Err(e) => {
                self.metrics.db_errors.inc();
                tracing::warn!(error = %e, "reading the next due time failed; polling");
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets in-flight passes finish within the deadline (a second signal aborts them),
    /// then releases every lease this replica still holds.
    async fn drain(&self, mut workers: JoinSet<()>, mut phase: watch::Receiver<Phase>) {
        self.health.shutting_down();
        tracing::info!(in_flight = workers.len(), "draining");
        let deadline = tokio::time::sleep(self.ctx.settings.shutdown_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = workers.join_next() => if next.is_none() { break },
                _ = &mut deadline => { tracing::warn!("shutdown deadline passed; aborting in-flight work"); break }
                _ = shutdown::reached(&mut phase, Phase::Abort) => { tracing::warn!("second signal; aborting"); break }
            }
        }
        workers.abort_all();
        match self.ctx.store.release_all().await {
            Ok(n) => tracing::info!(released = n, "leases released"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing leases failed; they expire on their own")
            }
        }
    }
}

/// One pass over one row, with its span, metrics and fenced write.
pub async fn process(ctx: &Ctx, metrics: &Metrics, row: PreviewRow, inflight: &InFlight) {
    let span = tracing::info_span!("reconcile", id = %row.id, app = %row.fly_app_name, generation = row.generation);
    async {
        metrics.inflight.inc();
        let _done = Done { metrics, inflight, id: row.id };
        let started = Instant::now();
        let result = fly_health::classify(&ctx.fly, reconcile::reconcile(ctx, &row).await);
        let mut label = outcome::label(&result);
        if let Err(e) = &result {
            metrics.reconcile_errors.with_label_values(&[e.kind()]).inc();
            tracing::warn!(error = %e, kind = e.kind(), policy = ?e.policy(), "reconcile failed");
        } else {
            ctx.gate.pass_ok();
        }
        let decision =
            outcome::decide(&ctx.settings, &row, &result, chrono::Utc::now(), &mut rand::rng());
        match decision {
            Decision::Write(write) => match write_back(ctx, metrics, &row, &write).await {
                Landed::Fenced => label = "fenced",
                Landed::Yes => {
                    limits::after_write(&ctx.store, &ctx.settings, metrics, &row, write.reason)
                        .await;
                }
                Landed::Failed => {}
            },
            Decision::Blocked(condition) => {
                ctx.gate.block(condition);
                let _ = ctx.store.release(row.id).await;
            }
        }
        metrics.reconciles.with_label_values(&[label]).inc();
        metrics
            .reconcile_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await
}

#[derive(Debug, PartialEq, Eq)]
enum Landed {
    Yes,
    Fenced,
    Failed,
}

/// The fenced write of a pass's result (and the lease given back).
async fn write_back(ctx: &Ctx, metrics: &Metrics, row: &PreviewRow, write: &StatusWrite) -> Landed {
    match ctx.store.write_status(row.id, row.generation, write, Lease::Release).await {
        Ok(Some(w)) => {
            tracing::info!(status = %write.status, reason = %write.reason, "reconciled");
            quiet::count(metrics, row, write);
            if write.status == Status::Running && w.previous_status != Status::Running {
                let secs =
                    (chrono::Utc::now() - w.requested_at).num_milliseconds().max(0) as f64 / 1000.0;
                metrics.time_to_running.observe(secs);
            }
            Landed::Yes
        }
        Ok(None) => {
            tracing::info!("row changed meanwhile; result discarded, it will be reconciled again");
            let _ = ctx.store.release(row.id).await;
            Landed::Fenced
        }
        Err(e) => {
            metrics.db_errors.inc();
            tracing::warn!(error = %e, "writing status failed; the lease will expire and the row is retried");
            Landed::Failed
        }
    }
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
        self.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}
