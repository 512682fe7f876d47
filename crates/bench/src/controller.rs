//! One controller run: a fresh database and simulator, the daemon as a child process, N rows
//! in one insert, then convergence, efficiency, steady state, wake latency and resources.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::time::Instant;

use super::child::{self, Daemon, ProcStats, metric_sum};
use super::db::{self, BenchDb, RowTimings};
use super::fleet::{self, CallStats};
use super::wake::{self, WakeStats};
use crate::args::BenchArgs;
use fly_sim::{LoggedRequest, SimConfig, SimHandle, SimStats, Simulator};

const FLEET: &str = "fleet";
/// Longer than Postgres' idle statistics flush interval (10 s), so counters are complete.
const SETTLE: Duration = Duration::from_secs(11);

#[derive(Debug, Clone)]
pub struct Convergence {
    pub converged: bool,
    pub running: i64,
    pub errors: i64,
    /// Insert sent → every row seen running (bench clock, 250 ms polling).
    pub wall: Duration,
    /// When not converged: the total projected from the throughput of the last half.
    pub projected: Option<Duration>,
    /// Host CPU busy (all processes, all cores) while converging, percent.
    pub host_busy_pct: f64,
    /// 1-minute load average when the insert was sent.
    pub load_before: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Steady {
    pub window: Duration,
    /// How long after convergence the window began.
    pub after: Duration,
    pub fly_per_s: f64,
    pub fly_by_action: Vec<(String, u64)>,
    pub db_per_s: f64,
    pub cpu_pct: f64,
    /// The daemon's own statements over the window, by name (its `/metrics`).
    pub statements: super::statements::Statements,
}

#[derive(Debug, Clone)]
pub struct ControllerRun {
    pub rows: usize,
    /// Critical-path lower bound of the convergence time.
    pub bound: Duration,
    pub conv: Convergence,
    pub timings: RowTimings,
    pub calls: CallStats,
    pub sim: SimStats,
    pub reconciles: f64,
    /// Net database transactions from the insert until convergence (bench's own removed).
    pub db_xacts: f64,
    pub client_429: f64,
    pub client_throttled: f64,
    pub steady: Option<Steady>,
    pub wake: WakeStats,
    pub daemon_at_conv: ProcStats,
    pub daemon_end: ProcStats,
}

pub fn sim_config(a: &BenchArgs) -> SimConfig {
    SimConfig {
        api_latency: a.api_latency,
        boot_time: a.boot_time,
        check_delay: a.check_delay,
        rate_limits: a.sim_rate_limits,
        ..SimConfig::default()
    }
}

/// Everything one run measures against.
struct Rig<'a> {
    admin: &'a PgPool,
    db: &'a BenchDb,
    sim: &'a SimHandle,
    /// Read right before the simulator started: its request log counts from here.
    sim_t0: Instant,
    daemon: &'a Daemon,
}

pub async fn run(
    a: &BenchArgs,
    admin: &PgPool,
    admin_url: &str,
    n: usize,
) -> anyhow::Result<ControllerRun> {
    let db = BenchDb::recreate(admin, admin_url, &a.db_name).await?;
    let cfg = sim_config(a);
    let sim_t0 = Instant::now();
    let sim = Simulator::start(cfg.clone()).await.context("starting the simulator")?;
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    // The fleet spreads over 97 users (~n/97 rows each): the per-user quota is lifted for it
    // (the abuse scenario runs with the production defaults).
    let env = [("MAX_PREVIEWS_PER_USER", "0")];
    let daemon =
        Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, &n.to_string(), &env).await?;
    let rig = Rig { admin, db: &db, sim: &sim, sim_t0, daemon: &daemon };
    let result = measure(a, &rig, n, &cfg).await;
    child::finish(result, daemon, &sim, db).await
}

/// What the convergence phase leaves behind.
struct AtConvergence {
    conv: Convergence,
    log: Vec<LoggedRequest>,
    stats: SimStats,
    metrics: String,
    daemon: ProcStats,
}

/// Inserts the fleet and waits for it; snapshots the simulator and the daemon at the end.
async fn converge_fleet(a: &BenchArgs, rig: &Rig<'_>, n: usize) -> anyhow::Result<AtConvergence> {
    let (t0, host0, load_before) = (Instant::now(), child::host_cpu(), child::loadavg());
    let inserted = rig.db.insert_fleet(FLEET, n).await?;
    anyhow::ensure!(inserted == n as u64, "inserted {inserted} rows, wanted {n}");
    let mut conv = converge(rig.db, n, a.converge_budget, t0).await?;
    conv.host_busy_pct = child::busy_pct(host0, child::host_cpu());
    conv.load_before = load_before;
    let metrics = rig.daemon.metrics().await?;
    let daemon = rig.daemon.proc_stats()?;
    Ok(AtConvergence { conv, log: rig.sim.request_log(), stats: rig.sim.stats(), metrics, daemon })
}

async fn measure(
    a: &BenchArgs,
    rig: &Rig<'_>,
    n: usize,
    cfg: &SimConfig,
) -> anyhow::Result<ControllerRun> {
    let db = rig.db;
    let (x0, own0) = (db::xacts(rig.admin, &rig.db.name).await?, db.own_statements());
    let at = converge_fleet(a, rig, n).await?;
    let timings = db.timings(FLEET).await?;
    tokio::time::sleep(SETTLE).await;
    let (x1, own1) = (db::xacts(rig.admin, &rig.db.name).await?, db.own_statements());
    let steady = if at.conv.converged {
        tokio::time::sleep(a.steady_delay).await;
        let after = SETTLE + a.steady_delay;
        Some(Steady { after, ..steady(rig, a.steady_window).await? })
    } else {
        None
    };
    let background = steady.as_ref().map_or(0.0, |s| s.db_per_s * SETTLE.as_secs_f64());
    let db_xacts = x1.saturating_sub(x0) as f64 - own1.saturating_sub(own0) as f64 - background;
    let wake = wake::measure(db, rig.sim, rig.sim_t0, a.wake_samples, FLEET).await?;
    let m = &at.metrics;
    Ok(ControllerRun {
        rows: n,
        bound: fleet::lower_bound(cfg),
        timings,
        calls: fleet::call_stats(&at.log, n),
        sim: at.stats,
        reconciles: metric_sum(m, "fly_preview_reconciles_total", None),
        db_xacts,
        client_429: metric_sum(m, "fly_preview_fly_rate_limited_total", None),
        client_throttled: metric_sum(m, "fly_preview_fly_throttled_total", None),
        steady,
        wake,
        daemon_at_conv: at.daemon,
        daemon_end: rig.daemon.proc_stats()?,
        conv: at.conv,
    })
}

/// Polls until every row runs at its generation, or the budget is spent.
async fn converge(
    db: &BenchDb,
    n: usize,
    budget: Duration,
    t0: Instant,
) -> anyhow::Result<Convergence> {
    let mut samples: Vec<(f64, i64)> = Vec::new();
    let mut last_print = Instant::now();
    loop {
        let (running, errors) = db.progress(FLEET).await?;
        let t = t0.elapsed();
        samples.push((t.as_secs_f64(), running));
        if running >= n as i64 || t >= budget {
            let converged = running >= n as i64;
            let projected = if converged { None } else { project(&samples, n) };
            let (host_busy_pct, load_before) = (0.0, 0.0);
            return Ok(Convergence {
                converged,
                running,
                errors,
                wall: t,
                projected,
                host_busy_pct,
                load_before,
            });
        }
        if last_print.elapsed() >= Duration::from_secs(15) {
            eprintln!(
                "bench: {n} rows: {running} running, {errors} in error, {:.0} s",
                t.as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Total time projected from the throughput over the second half of the samples.
fn project(samples: &[(f64, i64)], n: usize) -> Option<Duration> {
    let (t1, r1) = *samples.last()?;
    let (t0, r0) = *samples.get(samples.len() / 2)?;
    let rate = (r1 - r0) as f64 / (t1 - t0);
    (rate > 0.0).then(|| Duration::from_secs_f64(t1 + (n as f64 - r1 as f64) / rate))
}

/// Fly calls, database transactions and CPU of the converged, idle fleet over `window`.
async fn steady(rig: &Rig<'_>, window: Duration) -> anyhow::Result<Steady> {
    let (sim, sim_t0) = (rig.sim, rig.sim_t0);
    let (x0, r0, c0) = (
        db::xacts(rig.admin, &rig.db.name).await?,
        sim.stats().requests_total,
        rig.daemon.proc_stats()?.cpu_s,
    );
    let st0 = super::statements::scrape(&rig.daemon.metrics().await?);
    let (ms0, t0) = (sim_t0.elapsed().as_millis() as u64, Instant::now());
    tokio::time::sleep(window).await;
    let st1 = super::statements::scrape(&rig.daemon.metrics().await?);
    let (x1, r1, c1) = (
        db::xacts(rig.admin, &rig.db.name).await?,
        sim.stats().requests_total,
        rig.daemon.proc_stats()?.cpu_s,
    );
    let secs = t0.elapsed().as_secs_f64();
    let log = sim.request_log();
    Ok(Steady {
        window: t0.elapsed(),
        after: Duration::ZERO,
        fly_per_s: r1.saturating_sub(r0) as f64 / secs,
        fly_by_action: fleet::calls_between(&log, ms0, sim_t0.elapsed().as_millis() as u64),
        db_per_s: x1.saturating_sub(x0) as f64 / secs,
        cpu_pct: (c1 - c0) / secs * 100.0,
        statements: super::statements::Statements::between(&st0, &st1, t0.elapsed()),
    })
}

/// This process (simulator + bench) for context.
pub fn bench_process() -> ProcStats {
    child::proc_stats(child::self_pid()).unwrap_or_default()
}
