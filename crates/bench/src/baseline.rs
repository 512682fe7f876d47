//! The naive approach, for comparison: a scheduled job that wakes every 60 s and deploys the
//! pending rows one after another (create app, allocate IPs, create machine, wait until
//! started and healthy, mark running). It runs against a fresh
//! simulator with the same settings and a fresh copy of the same rows, for at most the
//! time budget; the rest is extrapolated from the measured time per row (the job is
//! strictly sequential, so its total is the per-row time times the rows).

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::child::SIM_TOKEN;
use super::db::{BenchDb, PendingRow};
use super::fleet::{pct, sorted};
use fly_preview_controller::fly::{
    CreateMachineRequest, FlyClient, FlyClientConfig, IpType, Secret,
};
use fly_preview_controller::model::MachineState;
use fly_preview_controller::preview::machine_config::{self, PreviewSpec, RunnerSettings};
use fly_sim::{SimConfig, Simulator};

/// How often the naive job polls a started machine for passing checks (within Fly's
/// get-machine limit of 5 req/s; generous to the baseline).
const HEALTH_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Default)]
pub struct BaselineRun {
    pub rows: usize,
    pub deployed: usize,
    pub elapsed: Duration,
    /// Seconds per row: mean, p50, max.
    pub per_row: (f64, f64, f64),
    /// Time to deploy every row: measured if all finished, else rows × mean per-row time.
    pub total: Duration,
    pub extrapolated: bool,
    pub rate_limited: u64,
}

pub async fn run(
    admin: &PgPool,
    admin_url: &str,
    db_name: &str,
    sim_cfg: SimConfig,
    n: usize,
    budget: Duration,
) -> anyhow::Result<BaselineRun> {
    let db = BenchDb::recreate(admin, admin_url, db_name).await?;
    let sim = Simulator::start(sim_cfg).await.context("starting the simulator")?;
    let cfg = FlyClientConfig {
        base_url: sim.base_url(),
        token: Secret::new(SIM_TOKEN),
        request_timeout: Duration::from_secs(30),
        rate_limit: true,
    };
    let fly = FlyClient::new(cfg, None)?;
    db.insert_fleet("fleet", n).await?;
    // The rows arrive just before a tick (best case for the job; on average a row would
    // wait another 30 s for the next tick).
    let started = Instant::now();
    let mut times = Vec::new();
    for row in db.pending().await? {
        if started.elapsed() >= budget {
            break;
        }
        let t = Instant::now();
        deploy(&fly, &row)
            .await
            .with_context(|| format!("baseline deploy of {}", row.fly_app_name))?;
        db.mark_running(row.id).await?;
        times.push(t.elapsed().as_secs_f64());
    }
    let elapsed = started.elapsed();
    let rate_limited = sim.stats().rate_limited_total;
    sim.shutdown().await;
    db.close().await;
    Ok(summarize(n, times, elapsed, rate_limited))
}

fn summarize(n: usize, times: Vec<f64>, elapsed: Duration, rate_limited: u64) -> BaselineRun {
    let deployed = times.len();
    let mean = if deployed == 0 { 0.0 } else { times.iter().sum::<f64>() / deployed as f64 };
    let v = sorted(times);
    let extrapolated = deployed < n;
    let total = if extrapolated { Duration::from_secs_f64(mean * n as f64) } else { elapsed };
    BaselineRun {
        rows: n,
        deployed,
        elapsed,
        per_row: (mean, pct(&v, 50.0), v.last().copied().unwrap_or(0.0)),
        total,
        extrapolated,
        rate_limited,
    }
}

/// One row, start to finish, nothing in parallel.
async fn deploy(fly: &FlyClient, row: &PendingRow) -> anyhow::Result<()> {
    let app = row.fly_app_name.as_str();
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
    let deadline = Instant::now() + Duration::from_secs(120);
    while !fly.get_machine(app, &m.id).await?.checks_passing() {
        anyhow::ensure!(Instant::now() < deadline, "machine never became healthy");
        tokio::time::sleep(HEALTH_POLL).await;
    }
    Ok(())
}

/// The machine the baseline and the ideal driver create for a bench row.
pub(crate) fn request(row: &PendingRow) -> CreateMachineRequest {
    let marker = Uuid::new_v4().to_string();
    let spec = PreviewSpec {
        preview_id: row.id,
        generation: row.generation,
        repo_url: "https://github.com/acme/site",
        branch: "main",
        root_directory: None,
        launch_marker: &marker,
    };
    CreateMachineRequest {
        name: None,
        region: None,
        config: machine_config::build(&RunnerSettings::default(), &spec),
        skip_launch: None,
        current_version: None,
        min_secrets_version: None,
    }
}
