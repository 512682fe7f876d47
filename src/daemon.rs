//! Wiring of one controller replica: scheduler, listener, lease renewal, statistics, leader
//! loop, delete handler and admin server. Everything runs inside one future, so dropping or
//! aborting it (a crash, in tests) stops every part at once.

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::background::{self, ListenTargets};
use crate::cli::CliError;
use crate::config::RunArgs;
use crate::drift::{self, Drift};
use crate::fly::{FlyClient, FlyClientConfig};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::reconcile::Ctx;
use crate::scheduler::Scheduler;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::store::{self, Store};
use crate::{admin, config};

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
    let store = Store::new(p.pool.clone(), p.owner.clone());
    let ctx = Arc::new(Ctx { fly: p.fly, store: store.clone(), settings: p.settings.clone() });
    let (wake, resync) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (del_tx, del_rx) = mpsc::channel(1024);
    let sched = Scheduler {
        ctx: ctx.clone(),
        metrics: p.metrics.clone(),
        health: p.health.clone(),
        wake: wake.clone(),
        inflight: Default::default(),
    };
    let mut bg = JoinSet::new();
    bg.spawn(background::renew_leases(store.clone(), sched.inflight.clone(), p.settings.lease));
    bg.spawn(background::stats(
        store.clone(),
        p.metrics.clone(),
        p.health.clone(),
        p.settings.stats_interval,
    ));
    let targets = ListenTargets {
        wake,
        resync: resync.clone(),
        deletes: del_tx,
        health: p.health.clone(),
        metrics: p.metrics.clone(),
    };
    bg.spawn(background::listen(store.clone(), targets));
    bg.spawn(drift::deletes(ctx.clone(), del_rx, 4));
    bg.spawn(Drift::new(ctx.clone(), p.metrics.clone(), resync).run());
    sched.run(shutdown.subscribe()).await;
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

/// `run`: the daemon.
pub async fn run_cmd(a: RunArgs) -> Result<(), CliError> {
    let settings = Settings::from_args(&a.fly, &a.ctl)?;
    let token = a.fly.require_token()?;
    let db_url = a.db.require()?;
    let metrics = Metrics::new();
    let fly_cfg = FlyClientConfig {
        base_url: a.fly.api_url.clone(),
        token,
        request_timeout: a.fly.fly_request_timeout,
        rate_limit: true,
    };
    let fly =
        FlyClient::new(fly_cfg, Some(metrics.clone())).context("building the Fly API client")?;
    let pool_size = (settings.concurrency as u32 / 2).clamp(4, 32);
    let pool = store::connect(&db_url, pool_size).await?;
    check_migrated(&pool).await?;
    let health = Arc::new(Health::default());
    health.beat();
    let (addr, _admin) =
        admin::serve(a.listen_addr, health.clone(), metrics.clone()).await.map_err(|e| {
            config::ConfigError::new(
                "LISTEN_ADDR",
                format!("cannot listen on {}: {e}", a.listen_addr),
            )
        })?;
    tracing::info!(admin = %addr, org = %settings.org, "fly-preview-controller running");
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    let owner = a.ctl.controller_id.clone().unwrap_or_else(default_owner);
    run(Parts { pool, fly, settings: Arc::new(settings), owner, metrics, health }, &shutdown).await;
    tracing::info!("stopped");
    Ok(())
}

/// Refuses to start on a database that has not been migrated (clear message, no guessing).
pub async fn check_migrated(pool: &PgPool) -> Result<(), CliError> {
    if !store::migrate::pending(pool).await?.is_empty() {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "the database schema is not up to date; run `fly-preview-controller migrate` first"
        )));
    }
    Ok(())
}
