//! The sync lane: sync on save, beside the queue runtime so saves never queue behind deploys.
//!
//! Woken by the `revision` NOTIFY (the row id, through a channel from the listener) and by a
//! cheap sweep every [`SyncSettings::sweep_interval`] for rows whose `revision` is not
//! confirmed yet (missed notifications, machines that resumed, deploys that finished,
//! retries after a failure). Each attempt is [`sync_once`]: one Fly call (exec of the runner's
//! `sync`) on the happy path. At most one attempt per row is in flight; saves arriving
//! meanwhile coalesce: when it finishes, the row is tried once more if its revision moved on.
//! A sync is the preview's own business: the exec runs the tenant's code, so a hang is that
//! row's failure (`SyncTimedOut`, its own backoff that new saves do not cut short), never
//! Fly's (`crate::fly::breaker` ignores exec timeouts), and [`fair`] bounds what one row and
//! one user can hold of the lane.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::model::SyncFailureKind;

mod fair;
mod once;
mod settings;

use self::fair::Fair;

pub use self::once::{Answer, Done, parse_answer, sync_once};
pub use self::settings::{RUNNER_ENTRYPOINT, SyncCtx, SyncSettings};

/// A row waiting for its next try after a failure (or for its save budget).
struct Retry {
    at: Instant,
    attempts: u32,
    /// New saves wait for `at` too (a timeout's backoff, the save budget) instead of
    /// cancelling the backoff; they coalesce into the try at `at`.
    hold: bool,
}

impl Retry {
    fn holds(&self, now: Instant) -> bool {
        self.hold && self.at > now
    }
}

/// The lane's bookkeeping (single task; attempts run in a `JoinSet`).
pub struct SyncLane {
    ctx: Arc<SyncCtx>,
    ids: mpsc::Receiver<Uuid>,
    tasks: JoinSet<(Uuid, Done)>,
    inflight: HashSet<Uuid>,
    dirty: HashSet<Uuid>,
    queue: VecDeque<Uuid>,
    queued: HashSet<Uuid>,
    retries: HashMap<Uuid, Retry>,
    fair: Fair,
}

impl SyncLane {
    pub fn new(ctx: SyncCtx, ids: mpsc::Receiver<Uuid>) -> Self {
        Self {
            fair: Fair::new(&ctx.settings),
            ctx: Arc::new(ctx),
            ids,
            tasks: JoinSet::new(),
            inflight: HashSet::new(),
            dirty: HashSet::new(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            retries: HashMap::new(),
        }
    }

    /// Runs until the task is dropped or aborted.
    pub async fn run(mut self) {
        let mut next_sweep = Instant::now();
        loop {
            tokio::select! {
                Some(id) = self.ids.recv() => self.saved(id),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok((id, done)) => self.finished(id, done),
                    Err(e) => tracing::error!(error = %e, "sync attempt panicked"),
                },
                _ = tokio::time::sleep_until(next_sweep) => {
                    self.sweep().await;
                    next_sweep = Instant::now() + self.sweep_every();
                }
            }
            self.start_queued().await;
        }
    }

    /// A new save: a failure's backoff was for an older revision, except a held one.
    fn saved(&mut self, id: Uuid) {
        if self.retries.get(&id).is_some_and(|r| r.holds(Instant::now())) {
            return;
        }
        self.retries.remove(&id);
        self.request(id);
    }

    /// Sweep often while retries are pending, else only as a backstop.
    fn sweep_every(&self) -> std::time::Duration {
        let s = &self.ctx.settings;
        if self.retries.is_empty() { s.idle_sweep_interval } else { s.sweep_interval }
    }

    /// One attempt for `id` as soon as possible; coalesced with one in flight.
    fn request(&mut self, id: Uuid) {
        if self.inflight.contains(&id) {
            self.dirty.insert(id);
        } else if self.queued.insert(id) {
            self.queue.push_back(id);
        }
    }

    /// Starts queued rows while slots are free, skipping (for now) rows whose user holds its
    /// share and deferring rows that spent their save budget.
    async fn start_queued(&mut self) {
        self.learn_owners().await;
        let now = Instant::now();
        let mut waiting = VecDeque::new();
        while self.tasks.len() < self.ctx.settings.concurrency.max(1) {
            let Some(id) = self.queue.pop_front() else { break };
            if self.fair.user_full(id) {
                waiting.push_back(id);
                continue;
            }
            self.queued.remove(&id);
            if let Err(at) = self.fair.take(id, now) {
                let attempts = self.retries.get(&id).map_or(0, |r| r.attempts);
                self.retries.insert(id, Retry { at, attempts, hold: true });
                continue;
            }
            self.spawn(id);
        }
        while let Some(id) = waiting.pop_back() {
            self.queue.push_front(id);
        }
    }

    /// Looks up the owners of queued rows the lane has not seen yet (one query).
    async fn learn_owners(&mut self) {
        let unknown = self.fair.unknown(self.queue.iter().copied());
        if unknown.is_empty() {
            return;
        }
        match self.ctx.store.sync_owners(&unknown).await {
            Ok(pairs) => pairs.into_iter().for_each(|(row, user)| self.fair.learn(row, user)),
            Err(e) => tracing::warn!(error = %e, "sync on save: owner lookup failed"),
        }
    }

    fn spawn(&mut self, id: Uuid) {
        self.inflight.insert(id);
        self.fair.started(id);
        let ctx = self.ctx.clone();
        self.tasks.spawn(async move {
            let done = sync_once(&ctx, id).await.unwrap_or_else(|e| {
                tracing::warn!(%id, error = %e, kind = e.kind(), "sync on save: database error");
                Done::Failed(SyncFailureKind::Db)
            });
            (id, done)
        });
    }

    fn finished(&mut self, id: Uuid, done: Done) {
        self.inflight.remove(&id);
        self.fair.finished(id);
        let again = self.dirty.remove(&id);
        match done {
            Done::Confirmed | Done::Skipped => {
                self.retries.remove(&id);
            }
            Done::MovedOn => {
                self.retries.remove(&id);
                self.request(id);
                return;
            }
            Done::Failed(kind) => {
                let attempts = self.retries.get(&id).map_or(0, |r| r.attempts + 1);
                let delay = self.ctx.settings.retry_after(kind, attempts);
                let hold = kind == SyncFailureKind::Timeout;
                let kind = kind.as_str();
                tracing::info!(%id, kind, ?delay, "sync on save did not confirm the revision");
                self.retries.insert(id, Retry { at: Instant::now() + delay, attempts, hold });
            }
        }
        if again && !self.retries.get(&id).is_some_and(|r| r.holds(Instant::now())) {
            self.retries.remove(&id);
            self.request(id);
        }
    }

    /// Unconfirmed rows without a notification (and retries whose backoff has passed).
    async fn sweep(&mut self) {
        let limit = self.ctx.settings.sweep_limit;
        let ids = match self.ctx.store.sync_candidates(limit).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "sync on save: sweep query failed");
                return;
            }
        };
        let now = Instant::now();
        self.retries.retain(|id, r| r.at > now || ids.contains(id));
        for id in &ids {
            if self.retries.get(id).is_none_or(|r| r.at <= now) {
                self.request(*id);
            }
        }
        let (retries, queued, inflight) = (&self.retries, &self.queued, &self.inflight);
        let tracked =
            |id: &Uuid| retries.contains_key(id) || queued.contains(id) || inflight.contains(id);
        self.fair.prune(now, tracked);
    }
}
