//! Sync on save (`--saves N`): a small converged fleet; N saves one after another, each "push
//! a commit" (the simulator's machine will fetch it) + `UPDATE … SET revision`, timed until
//! the row shows `served_revision = revision`. Every Fly call costs the simulator's
//! `--api-latency` plus the simulated sync's run time (`--sync-time`); what the controller
//! adds on top of that one call is its overhead (NOTIFY, claim, exec request, row write,
//! plus the bench's own statement round trip and 2 ms polling, so it is pessimistic).

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use uuid::Uuid;

use super::child::{self, Daemon, metric_sum};
use super::db::BenchDb;
use super::fleet::{app_of, pct, sorted};
use crate::args::BenchArgs;
use fly_sim::{LoggedRequest, SimHandle, Simulator};

const FLEET: &str = "saves";
const POLL: Duration = Duration::from_millis(2);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds per save, ascending.
#[derive(Debug, Clone, Default)]
pub struct SaveRun {
    pub saves: usize,
    pub rows: usize,
    pub fly_call_ms: f64,
    pub end_to_end: Vec<f64>,
    pub to_fly: Vec<f64>,
    pub overhead: Vec<f64>,
    pub missing: usize,
    pub execs: usize,
    pub sync_failures: f64,
    /// Mean exec call as the daemon's Fly client timed it (ms).
    pub exec_mean_ms: f64,
}

struct Sent {
    app: String,
    at: Instant,
}

pub async fn run(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<SaveRun> {
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim_t0 = Instant::now();
    let sim = Simulator::start(crate::controller::sim_config(a)).await.context("simulator")?;
    sim.set_sync_time(a.sync_time);
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let no_quota = [("MAX_PREVIEWS_PER_USER", "0")];
    let daemon =
        Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, "saves", &no_quota).await?;
    let result = measure(a, &db, &sim, sim_t0, &daemon).await;
    child::finish(result, daemon, &sim, db).await
}

async fn measure(
    a: &BenchArgs,
    db: &BenchDb,
    sim: &SimHandle,
    sim_t0: Instant,
    daemon: &Daemon,
) -> anyhow::Result<SaveRun> {
    let rows = converged_rows(db, a.save_rows).await?;
    eprintln!("bench: {} rows running; {} saves", rows.len(), a.saves);
    let (mut sent, mut end_to_end, mut missing) = (Vec::new(), Vec::new(), 0);
    for i in 0..a.saves {
        let (id, app) = &rows[i % rows.len()];
        let sha = format!("{:040x}", 0xb0_0000 + i);
        sim.push_revision(app, &sha);
        let at = Instant::now();
        set_revision(db, *id, &sha).await?;
        match wait_served(db, *id, &sha).await? {
            true => end_to_end.push(at.elapsed().as_secs_f64() * 1000.0),
            false => missing += 1,
        }
        sent.push(Sent { app: app.clone(), at });
    }
    let log = sim.request_log();
    let to_fly = sorted(sent.iter().filter_map(|s| first_exec(&log, sim_t0, s)).collect());
    let fly_call_ms = (a.api_latency + a.sync_time).as_secs_f64() * 1000.0;
    let overhead = sorted(end_to_end.iter().map(|t| t - fly_call_ms).collect());
    let metrics = daemon.metrics().await?;
    let exec = Some("action=\"exec_machine\"");
    let exec_sum = metric_sum(&metrics, "fly_preview_fly_request_duration_seconds_sum", exec);
    let exec_n = metric_sum(&metrics, "fly_preview_fly_request_duration_seconds_count", exec);
    Ok(SaveRun {
        exec_mean_ms: if exec_n > 0.0 { exec_sum / exec_n * 1000.0 } else { 0.0 },
        saves: a.saves,
        rows: rows.len(),
        fly_call_ms,
        end_to_end: sorted(end_to_end),
        to_fly,
        overhead,
        missing,
        execs: log.iter().filter(|r| r.action == "exec_machine").count(),
        sync_failures: metric_sum(&metrics, "fly_preview_sync_failures_total", None),
    })
}

async fn converged_rows(db: &BenchDb, n: usize) -> anyhow::Result<Vec<(Uuid, String)>> {
    db.insert_fleet(FLEET, n).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (running, _) = db.progress(FLEET).await?;
        if running >= n as i64 {
            return db.some_running(FLEET, n).await;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {running} of {n} rows converged");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn set_revision(db: &BenchDb, id: Uuid, sha: &str) -> anyhow::Result<()> {
    db.count(1);
    sqlx::query("UPDATE public.fly_preview_apps SET revision = $2 WHERE id = $1")
        .bind(id)
        .bind(sha)
        .execute(&db.pool)
        .await?;
    Ok(())
}

async fn wait_served(db: &BenchDb, id: Uuid, sha: &str) -> anyhow::Result<bool> {
    let deadline = Instant::now() + TIMEOUT;
    let sql =
        "SELECT served_revision IS NOT DISTINCT FROM $2 FROM public.fly_preview_apps WHERE id = $1";
    while Instant::now() < deadline {
        db.count(1);
        if sqlx::query_scalar::<_, bool>(sql).bind(id).bind(sha).fetch_one(&db.pool).await? {
            return Ok(true);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(false)
}

/// Save sent → the exec for its app arrives at the simulator (ms; 1 ms log resolution).
fn first_exec(log: &[LoggedRequest], sim_t0: Instant, s: &Sent) -> Option<f64> {
    log.iter()
        .filter(|r| r.action == "exec_machine" && app_of(&r.path) == Some(s.app.as_str()))
        .map(|r| sim_t0 + Duration::from_millis(r.at_ms))
        .filter(|t| *t + Duration::from_millis(1) >= s.at)
        .min()
        .map(|t| t.saturating_duration_since(s.at).as_secs_f64() * 1000.0)
}

/// The markdown section for BENCHMARKS.md.
pub fn render(r: &SaveRun, a: &BenchArgs) -> String {
    let row = |name: &str, v: &[f64]| {
        let max = v.last().copied().unwrap_or(0.0);
        format!("| {name} | {:.1} | {:.1} | {max:.1} |\n", pct(v, 50.0), pct(v, 99.0))
    };
    let mut out = format!(
        "### Sync on save (`revision` written → `served_revision` set)\n\n\
         {} saves, one after another, round-robin over {} running previews; simulator API \
         latency {:?}, simulated sync {:?} (one Fly call = {:.0} ms; the daemon's client timed \
         it at {:.1} ms on average). {} confirmed, {} missing; {} exec calls; {} sync \
         failures.\n\n| ms | p50 | p99 | max |\n|---|---|---|---|\n",
        r.saves,
        r.rows,
        a.api_latency,
        a.sync_time,
        r.fly_call_ms,
        r.exec_mean_ms,
        r.end_to_end.len(),
        r.missing,
        r.execs,
        r.sync_failures
    );
    out += &row("end to end (UPDATE sent → served_revision seen)", &r.end_to_end);
    out += &row("save → exec arrives at Fly", &r.to_fly);
    out += &row("controller overhead (end to end − Fly call)", &r.overhead);
    out
}
