//! The ideal driver: the bound the controller is measured against. Same rows, same
//! simulator settings, the same Fly calls as the controller's happy path (create app, two IP
//! assignments, create machine, `/wait` until started, then — after the simulator's known
//! check delay — the read that sees its checks passing)
//! and the minimum status writes per app (`initializing`, `running`), with unbounded
//! concurrency (one task per row, all at once) and no leases, claims or controller logic.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::baseline::request;
use super::child::SIM_TOKEN;
use super::db::{BenchDb, PendingRow, RowTimings};
use super::fleet;
use fly_preview_controller::fly::{FlyClient, FlyClientConfig, IpType, Secret};
use fly_preview_controller::model::MachineState;
use fly_preview_controller::model::state::Status;
use fly_sim::{SimConfig, Simulator};

/// How often the driver reads a started machine until its checks pass (it first sleeps the
/// simulator's known check delay, so normally one read suffices).
const HEALTH_POLL: Duration = Duration::from_millis(50);
const FLEET: &str = "fleet";

#[derive(Debug, Clone, Default)]
pub struct IdealRun {
    pub rows: usize,
    /// Insert sent → every row written `running` (bench clock).
    pub wall: Duration,
    pub timings: RowTimings,
    /// Non-429 Fly calls per app, mean.
    pub calls_per_app: f64,
    pub rate_limited: u64,
}

pub async fn run(
    admin: &PgPool,
    admin_url: &str,
    db_name: &str,
    sim_cfg: SimConfig,
    n: usize,
) -> anyhow::Result<IdealRun> {
    let db = BenchDb::recreate(admin, admin_url, db_name).await?;
    let sim_cfg_check_delay = sim_cfg.check_delay;
    let sim = Simulator::start(sim_cfg).await.context("starting the simulator")?;
    let cfg = FlyClientConfig {
        base_url: sim.base_url(),
        token: Secret::new(SIM_TOKEN),
        request_timeout: Duration::from_secs(60),
        rate_limit: true,
    };
    let fly = FlyClient::new(cfg, None)?;
    // 10,000 tasks share these connections: wait for one as long as it takes.
    let writes = sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .acquire_timeout(Duration::from_secs(600))
        .connect(&db.url)
        .await
        .context("connecting the ideal driver's pool")?;
    let t0 = Instant::now();
    anyhow::ensure!(db.insert_fleet(FLEET, n).await? == n as u64, "fleet insert came up short");
    let mut tasks = JoinSet::new();
    let check_delay = sim_cfg_check_delay;
    for row in db.pending().await? {
        let (fly, writes) = (fly.clone(), writes.clone());
        tasks.spawn(async move { deploy(&fly, &writes, &row, check_delay).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("ideal driver task")??;
    }
    let wall = t0.elapsed();
    let timings = db.timings(FLEET).await?;
    let calls = fleet::call_stats(&sim.request_log(), n);
    let rate_limited = sim.stats().rate_limited_total;
    writes.close().await;
    sim.shutdown().await;
    db.close().await;
    Ok(IdealRun { rows: n, wall, timings, calls_per_app: calls.per_app.0, rate_limited })
}

/// One row, start to finish, as fast as the simulator lets it go.
async fn deploy(
    fly: &FlyClient,
    writes: &PgPool,
    row: &PendingRow,
    check_delay: Duration,
) -> anyhow::Result<()> {
    let app = row.fly_app_name.as_str();
    set_status(writes, row.id, Status::Initializing).await?;
    fly.create_app(app, "personal").await?;
    fly.assign_ip(app, IpType::V6).await?;
    fly.assign_ip(app, IpType::SharedV4).await?;
    let m = fly.create_machine(app, &request(row)).await?;
    fly.wait_machine(
        app,
        &m.id,
        &MachineState::Started,
        m.instance_id.as_deref(),
        Duration::from_secs(60),
    )
    .await?;
    tokio::time::sleep(check_delay).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fly.get_machine(app, &m.id).await?.checks_passing() {
        anyhow::ensure!(Instant::now() < deadline, "machine never became healthy");
        tokio::time::sleep(HEALTH_POLL).await;
    }
    set_status(writes, row.id, Status::Running).await
}

/// The status write, as the controller's (the request trigger lets it be).
async fn set_status(pool: &PgPool, id: Uuid, status: Status) -> anyhow::Result<()> {
    let sql = concat!(
        "UPDATE public.fly_preview_apps SET status = $2, observed_generation = generation, ",
        "next_attempt_at = 'infinity', last_transition_at = now() WHERE id = $1 AND ",
        "(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL"
    );
    sqlx::query(sql).bind(id).bind(status).execute(pool).await?;
    Ok(())
}
