//! Keeping Fly honest, on the elected leader only: a cheap drift check (org-wide machines
//! changed since the last look), a slower full verification walking Fly's whole listing page
//! by page (`full`), and the orphan sweep: our apps that no row names, after
//! `ORPHAN_GRACE`, a backstop for apps no tombstone covers (deleted rows' apps are torn down
//! by `preview::teardown`).
//!
//! # Guarantees
//! Quiet at rest: a converged fleet costs org-wide listings only, no per-app call and no row
//! write. A row is requeued only when a machine seen on Fly differs from what the row last
//! recorded and the difference matters to it (`Store::mark_due` holds the rule): a running
//! preview whose machine went bad or vanished; a row in error about its machine (it exited,
//! it never became healthy) whose machine started again; never a stopped or invalid row. A
//! machine asleep by autostop (suspended; stopped, where autostop stops machines over 2 GB)
//! is not bad: the row records it (`Idle`), nothing else.
//! # Assumptions
//! A pass records the machine state it saw, so one sighting costs at most one pass.

use crate::model::MachineState;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::fly::{FlyError, OrgMachine};
use crate::ops::metrics::Metrics;
use crate::preview::ctx::Ctx;
use crate::preview::error::{self, Policy};
use crate::preview::machine_config::{MANAGED_BY, MANAGED_BY_KEY, autostop};
use crate::store::{BAD, Seen, StoreError};

mod full;
mod index;
mod leader;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("Fly API: {0}")]
    Fly(#[from] FlyError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

pub struct Drift {
    pub ctx: Arc<Ctx>,
    pub metrics: Metrics,
    pub resync: Arc<Notify>,
    cursor: Option<DateTime<Utc>>,
    /// The sightings (machine id, state, `updated_at`) the last tick sent: the next listing
    /// overlaps the last by a second, and a sighting already sent is not sent again.
    last_sent: HashSet<(String, MachineState, Option<DateTime<Utc>>)>,
    /// The cursor whose overlap a tick has listed once already: the next listing starts at the
    /// cursor itself (a burst of changes at the cursor is not listed again every tick).
    relisted: Option<DateTime<Utc>>,
    orphans_first_seen: HashMap<String, Instant>,
    /// The full verification in progress, if any.
    walk: Option<full::Walk>,
    /// When the last full verification began (`None`: the next one hurries).
    last_walk: Option<Instant>,
}

/// What drift keeps of one machine of the org's listing (its config, the bulk of a listing,
/// is dropped as each page is read).
#[derive(Debug, Clone)]
struct Sighting {
    app: String,
    id: String,
    state: MachineState,
    /// Created by this controller (its `managed-by` metadata).
    ours: bool,
    updated_at: Option<DateTime<Utc>>,
}

impl Sighting {
    fn of(m: OrgMachine) -> Self {
        Self {
            ours: ours(&m),
            updated_at: m.updated_at.as_deref().and_then(|t| t.parse().ok()),
            app: m.app_name,
            id: m.id,
            state: m.state,
        }
    }
}

/// What the store compares with the row (see [`crate::store::Store::mark_due`]).
fn seen(m: &Sighting) -> Seen {
    Seen { app: m.app.clone(), machine: Some((m.id.clone(), m.state.clone())) }
}

fn ours(m: &OrgMachine) -> bool {
    m.config.as_ref().and_then(|c| c.metadata.get(MANAGED_BY_KEY)).is_some_and(|v| v == MANAGED_BY)
}

impl Drift {
    pub fn new(ctx: Arc<Ctx>, metrics: Metrics, resync: Arc<Notify>) -> Self {
        Self {
            ctx,
            metrics,
            resync,
            cursor: None,
            last_sent: HashSet::new(),
            relisted: None,
            orphans_first_seen: HashMap::new(),
            walk: None,
            last_walk: None,
        }
    }

    fn prefix(&self) -> String {
        format!("{}-", self.ctx.settings.rules.prefix)
    }

    /// Leader election (its own loop, [`leader::hold`]), and on the leader drift checks and
    /// full verifications, forever. A replica that becomes leader starts with a full one.
    pub async fn run(mut self) {
        let (tx, rx) = watch::channel(false);
        let (ctx, metrics) = (self.ctx.clone(), self.metrics.clone());
        tokio::select! {
            () = leader::hold(&ctx, &metrics, tx) => {}
            () = self.work(rx) => {}
        }
    }

    async fn work(&mut self, mut leader: watch::Receiver<bool>) {
        let s = self.ctx.settings.clone();
        loop {
            if *leader.borrow_and_update() {
                if let Err(e) = self.check().await {
                    self.failed(&e);
                }
            } else {
                self.restart_walks();
            }
            tokio::select! {
                _ = tokio::time::sleep(s.drift_interval) => {}
                Ok(()) = leader.changed() => {}
                _ = self.resync.notified() => {
                    self.restart_walks();
                    self.metrics.resyncs.with_label_values(&["startup"]).inc();
                }
            }
        }
    }

    /// Drops the walk in progress; the next one begins at once and hurries.
    fn restart_walks(&mut self) {
        self.walk = None;
        self.last_walk = None;
    }

    /// One round on the leader: a walk that hurries runs to its end (its listing covers what
    /// a tick would see); otherwise a tick, then the paced walk's next step.
    async fn check(&mut self) -> Result<(), DriftError> {
        let every = self.ctx.settings.full_resync_interval;
        if self.walk.is_none() && self.last_walk.is_none_or(|t| t.elapsed() >= every) {
            self.walk = Some(full::Walk::new(self.last_walk.is_none()));
            self.last_walk = Some(Instant::now());
        }
        if self.walk.as_ref().is_some_and(full::Walk::hurry) {
            return self.walk_through().await;
        }
        self.tick().await?;
        self.walk_on().await
    }

    /// A drift check that failed; an org-scoped refusal is our configuration's fault.
    fn failed(&self, e: &DriftError) {
        tracing::warn!(error = %e, "drift check failed");
        if let DriftError::Fly(f) = e
            && let Policy::Global(c) = error::classify_fly(f, false)
        {
            self.ctx.gate.block(c);
        }
    }

    /// All org machines changed since `since` (all of them when `None`), every page.
    async fn machines(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Sighting>, FlyError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .ctx
                .fly
                .list_org_machines(&self.ctx.settings.org, since, cursor.as_deref())
                .await?;
            let n = page.machines.len();
            out.extend(page.machines.into_iter().map(Sighting::of));
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(c) if n > 0 => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    fn advance(&mut self, ms: &[Sighting]) {
        let newest = ms.iter().filter_map(|m| m.updated_at).max();
        if let Some(t) = newest {
            self.cursor = Some(self.cursor.map_or(t, |c| c.max(t)));
        }
    }

    /// Cheap: machines of our apps that changed since the last look. The store compares each
    /// with what its row last recorded, so a converged fleet is left alone; a sighting the
    /// previous tick sent (the listings overlap by a second) is not sent again, so a fleet
    /// at rest costs no statement here.
    async fn tick(&mut self) -> Result<(), DriftError> {
        // One second of overlap catches changes that became visible late; once listed after
        // the cursor was set (a drift interval later), the overlap has nothing more to show.
        let overlap = |c: DateTime<Utc>| c - chrono::Duration::seconds(1);
        let since = self.cursor.map(|c| if self.relisted == Some(c) { c } else { overlap(c) });
        let changed = self.machines(since).await?;
        let before = self.cursor;
        self.advance(&changed);
        self.relisted = before;
        let prefix = self.prefix();
        let key = |m: &Sighting| (m.id.clone(), m.state.clone(), m.updated_at);
        let ours: Vec<&Sighting> =
            changed.iter().filter(|m| m.app.starts_with(&prefix) && m.ours).collect();
        if let Some(w) = self.walk.as_mut() {
            ours.iter().for_each(|m| w.seen.record(m));
        }
        let fresh: Vec<&Sighting> =
            ours.into_iter().filter(|m| !self.last_sent.contains(&key(m))).collect();
        let seen: Vec<Seen> = fresh.iter().map(|m| seen(m)).collect();
        self.requeue(&seen).await?;
        self.last_sent = changed.iter().map(key).collect();
        Ok(())
    }

    /// The states Fly's autostop leaves our machines in: asleep, not broken. Where autostop
    /// stops machines (over 2 GB), a stopped machine cannot be told from a crashed one and is
    /// taken for asleep: the next request (or an open) starts it.
    fn asleep(&self) -> &'static [MachineState] {
        match autostop(self.ctx.settings.runner.memory_mb) {
            "stop" => &[MachineState::Suspended, MachineState::Stopped],
            _ => &[MachineState::Suspended],
        }
    }

    async fn requeue(&self, seen: &[Seen]) -> Result<(), DriftError> {
        if seen.is_empty() {
            return Ok(());
        }
        let asleep = self.asleep();
        let repair: Vec<MachineState> =
            BAD.iter().filter(|s| !asleep.contains(s)).cloned().collect();
        let n = self.ctx.store.mark_due(seen, &repair).await?;
        if n > 0 {
            tracing::info!(rows = n, "drift found; rows requeued");
            self.metrics.drift_repairs.inc_by(n);
        }
        let woke_or_slept = |s: &Seen| {
            s.machine
                .as_ref()
                .is_some_and(|(_, st)| *st == MachineState::Started || asleep.contains(st))
        };
        if seen.iter().any(woke_or_slept) {
            let slept = self.ctx.store.note_sleep(seen, asleep).await?;
            tracing::debug!(rows = slept, "autostop or wake recorded");
        }
        Ok(())
    }

    /// Apps of ours on the org's shared private network (Fly cannot move an app to another
    /// network) are counted and named; a teardown and redeploy (status 'stopped', then
    /// 'pending') recreates such an app on its own network. One app listing at the start of
    /// each walk (apps are created on their own network, so the count only falls, as such
    /// apps are recreated; the listing's body holds every app of the org and is decoded app
    /// by app as it arrives, never held whole).
    async fn report_shared_network(&self) -> Result<(), FlyError> {
        let prefix = self.prefix();
        let names = self.ctx.fly.list_apps_on_shared_network(&self.ctx.settings.org).await?;
        let shared: Vec<&str> =
            names.iter().map(String::as_str).filter(|n| n.starts_with(&prefix)).collect();
        self.metrics.apps_on_shared_network.set(shared.len() as i64);
        if !shared.is_empty() {
            tracing::warn!(
                apps = shared.len(),
                examples = ?&shared[..shared.len().min(5)],
                "previews on the org's shared private network (created before per-app \
                 networks; Fly cannot move them): stop and redeploy them to isolate them"
            );
        }
        Ok(())
    }

    /// Destroys orphans seen for longer than the grace period (or only logs, in dry-run).
    async fn sweep(&mut self, orphans: Vec<String>) {
        let now = Instant::now();
        self.orphans_first_seen.retain(|name, _| orphans.contains(name));
        for name in orphans {
            let first = *self.orphans_first_seen.entry(name.clone()).or_insert(now);
            if now.duration_since(first) < self.ctx.settings.orphan_grace {
                continue;
            }
            if self.ctx.settings.sweep_dry_run {
                tracing::info!(app = %name, "orphan sweep (dry run): would destroy");
                continue;
            }
            match self.ctx.fly.delete_app(&name).await {
                Ok(()) | Err(FlyError::NotFound(_)) => {
                    tracing::info!(app = %name, "orphan sweep: destroyed an app with no row");
                    self.metrics.orphans_destroyed.inc();
                    self.orphans_first_seen.remove(&name);
                }
                Err(e) => tracing::warn!(app = %name, error = %e, "orphan sweep: destroy failed"),
            }
        }
    }
}
