//! Wiring of one controller replica: the queue runtime over the preview reconciler, the
//! teardown runtime over tombstones, the local lane, lease renewal, statistics, the
//! notification listener, the sync lane, the drift/leader loop and the Fly-health watcher (the
//! admin server is the command's). Everything runs inside one future, so dropping or aborting it (a crash, in tests)
//! stops every part at once.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::fly::FlyClient;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::Shutdown;
use crate::preview::background::{self, ListenTargets};
use crate::preview::ctx::Ctx;
use crate::preview::drift::Drift;
use crate::preview::gate::FlyGate;
use crate::preview::gate::watch;
use crate::preview::local_lane::{self, LocalLane};
use crate::preview::reconcile::{PreviewQueue, Previews};
use crate::preview::settings::Settings;
use crate::preview::sync::{SyncCtx, SyncLane};
use crate::preview::teardown;
use crate::runtime::driver::renew_leases;
use crate::runtime::{InFlight, Runtime, Timing};
use crate::store::Store;

/// What a replica needs.
pub struct Parts {
    pub pool: PgPool,
    pub fly: FlyClient,
    pub settings: Arc<Settings>,
    pub owner: String,
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

/// Runs one replica until shutdown completes (drain, release leases, resign).
pub async fn run(p: Parts, shutdown: &Shutdown) {
    p.metrics.init_error_kinds(crate::preview::error::KINDS);
    let store = Store::new(p.pool.clone(), p.owner.clone());
    let gate = Arc::new(FlyGate::new(p.health.clone()));
    let ctx = Arc::new(Ctx {
        fly: p.fly,
        store: store.clone(),
        settings: p.settings.clone(),
        gate: gate.clone(),
    });
    let (wake, resync) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let teardowns = Arc::new(Notify::new());
    let (rev_tx, rev_rx) = mpsc::channel(4096);
    let s = &p.settings;
    let runtime = Runtime {
        queue: Arc::new(PreviewQueue {
            store: store.clone(),
            lease: s.lease,
            per_user: s.per_user_inflight(),
            keep: s.kept_for_started(),
            reserve: s.reserved_for_started(),
            gate,
            only_kept_free: AtomicBool::new(false),
        }),
        reconciler: Arc::new(Previews { ctx: ctx.clone(), metrics: p.metrics.clone() }),
        timing: Timing {
            concurrency: s.concurrency,
            poll_interval: s.backstop_poll(),
            shutdown_timeout: s.shutdown_timeout,
        },
        metrics: p.metrics.clone(),
        health: p.health.clone(),
        wake: wake.clone(),
        inflight: InFlight::default(),
    };
    let mut bg = JoinSet::new();
    bg.spawn(renew_leases(runtime.queue.clone(), runtime.inflight.clone(), s.lease));
    bg.spawn(background::stats(
        store.clone(),
        p.metrics.clone(),
        p.health.clone(),
        (s.stats_interval, s.stats_max_age()),
        (s.prices, crate::preview::cost::Size::of(&s.runner)),
    ));
    let targets = ListenTargets {
        wake: wake.clone(),
        resync: resync.clone(),
        teardowns: teardowns.clone(),
        revisions: rev_tx,
        health: p.health.clone(),
        metrics: p.metrics.clone(),
    };
    bg.spawn(background::listen(store.clone(), targets));
    let sync = SyncCtx {
        fly: ctx.fly.clone(),
        // Its own lease owner, so its fenced writes can never touch a reconcile's lease.
        store: Store::new(p.pool.clone(), format!("{}/sync", p.owner)),
        settings: p.settings.sync.clone(),
        metrics: p.metrics.clone(),
    };
    bg.spawn(SyncLane::new(sync, rev_rx).run());
    bg.spawn(Drift::new(ctx.clone(), p.metrics.clone(), resync).run());
    let wakes = vec![wake.clone(), teardowns.clone()];
    bg.spawn(watch::watch(ctx.clone(), p.health.clone(), p.metrics.clone(), wakes));
    bg.spawn(local_lane::run(LocalLane::of(&runtime)));
    // Both drain on the same shutdown phase and release their own leases.
    tokio::join!(
        runtime.run(shutdown.subscribe()),
        teardown::run(ctx.clone(), p.metrics.clone(), teardowns, shutdown.subscribe()),
    );
    bg.abort_all();
    p.metrics.leader.set(0);
    if let Err(e) = store.resign().await {
        tracing::warn!(error = %e, "resigning leadership failed; it expires on its own");
    }
}

/// A replica identity: host, pid and a random suffix.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().to_string()[..8])
}
