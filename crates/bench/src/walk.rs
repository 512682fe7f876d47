//! `--walk-memory`: what one full verification of a big fleet costs a leader that starts on it
//! (a new leader's walk reads every page back to back, the worst case for its memory). The
//! first `--rows` previews are settled `running` on machines created directly in the simulator
//! (no deploy, nothing drifted); the daemon starts and is watched until its first full
//! verification ends: its peak RSS (VmHWM), the walk's time and Fly calls, the rows it
//! requeued (none expected).

use std::time::Duration;

use anyhow::Context;
use fly_sim::{SimHandle, Simulator};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use crate::args::BenchArgs;
use crate::child::{self, Daemon, metric_sum};
use crate::db::{self, BenchDb};
use crate::{Environment, controller, fleet};

const TAG: &str = "walk";

#[derive(Debug, Default)]
pub struct WalkRun {
    pub rows: usize,
    pub setup: Duration,
    /// Daemon started → its first full verification counted.
    pub walk: Duration,
    pub rss_before_mb: f64,
    pub peak_rss_mb: f64,
    pub rss_after_mb: f64,
    pub calls: Vec<(String, u64)>,
    pub requeued: f64,
}

/// Runs the scenario, drops the database, prints the report.
pub async fn main(a: &BenchArgs, admin: &sqlx::PgPool, env: &Environment) -> anyhow::Result<()> {
    let result = run(a, admin).await;
    let dropped = db::drop_db(admin, &a.db_name).await;
    let r = result?;
    dropped.context("dropping the bench database")?;
    println!("## fly-preview-controller bench (full verification at start), {}\n", env.date);
    println!("{} cores ({}), {}, PostgreSQL {}\n", env.cores, env.cpu, env.memory, env.postgres);
    print!("{}", render(&r));
    Ok(())
}

async fn run(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<WalkRun> {
    let n = a.rows.first().copied().unwrap_or(100_000);
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim =
        Simulator::start(controller::sim_config(a)).await.context("starting the simulator")?;
    let t0 = Instant::now();
    let rows = settle(&db, &sim, n).await?;
    let setup = t0.elapsed();
    eprintln!("bench: walk: {rows} rows running on the simulator after {setup:?}");
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let env = [("MAX_PREVIEWS_PER_USER", "0")];
    let daemon = Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, TAG, &env).await?;
    let result = watch(&sim, &daemon).await;
    let result = result.map(|r| WalkRun { rows, setup, ..r });
    child::finish(result, daemon, &sim, db).await
}

/// Inserts `n` rows and settles each `running` on a machine of ours created in the simulator.
async fn settle(db: &BenchDb, sim: &SimHandle, n: usize) -> anyhow::Result<usize> {
    db.insert_fleet(TAG, n).await?;
    db.count(1);
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, fly_app_name FROM public.fly_preview_apps")
            .fetch_all(&db.pool)
            .await?;
    let (mut ids, mut machines) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    for (id, app) in &rows {
        let meta = json!({"managed-by": "fly-preview-controller", "preview-id": id.to_string()});
        let machine = sim.create_app_with_machine_direct(app, Some(meta));
        ids.push(*id);
        machines.push(machine.with_context(|| format!("creating {app} in the simulator"))?);
    }
    let sql = concat!(
        "UPDATE public.fly_preview_apps r SET status = 'running', status_reason = 'Ready', ",
        "fly_machine_id = m.machine, machine_state = 'started', fly_app_created = true, ",
        "observed_generation = generation, next_attempt_at = 'infinity', last_transition_at = now() ",
        "FROM unnest($1::uuid[], $2::text[]) AS m(id, machine) WHERE r.id = m.id AND ",
        "(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL"
    );
    db.count(1);
    let done = sqlx::query(sql).bind(&ids).bind(&machines).execute(&db.pool).await?;
    Ok(usize::try_from(done.rows_affected())?)
}

/// Samples the daemon until its first full verification is counted (10 min at most).
async fn watch(sim: &SimHandle, daemon: &Daemon) -> anyhow::Result<WalkRun> {
    let (t0, ms0) = (Instant::now(), sim.stats().requests_total);
    let rss_before_mb = daemon.proc_stats()?.rss_mb;
    let log_from = sim.request_log().len();
    loop {
        let m = daemon.metrics().await?;
        if metric_sum(&m, "fly_preview_resyncs_total", Some("periodic")) >= 1.0 {
            let p = daemon.proc_stats()?;
            let log = sim.request_log();
            let calls = fleet::calls_between(&log[log_from.min(log.len())..], 0, u64::MAX);
            anyhow::ensure!(sim.stats().requests_total >= ms0, "simulator restarted");
            return Ok(WalkRun {
                walk: t0.elapsed(),
                rss_before_mb,
                peak_rss_mb: p.peak_rss_mb,
                rss_after_mb: p.rss_mb,
                calls,
                requeued: metric_sum(&m, "fly_preview_drift_repairs_total", None),
                ..WalkRun::default()
            });
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(600), "no full verification in 10 min");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn render(r: &WalkRun) -> String {
    let calls: Vec<String> = r.calls.iter().map(|(a, n)| format!("{a} {n}")).collect();
    format!(
        "| figure | value |\n|---|---|\n\
         | fleet | {} rows `running`, one machine each (set up in {:.1} s) |\n\
         | daemon start → first full verification done | {:.1} s |\n\
         | Fly calls meanwhile | {} |\n\
         | rows requeued | {} |\n\
         | daemon RSS: at start / peak (VmHWM) / after | {:.1} / **{:.1}** / {:.1} MB |\n",
        r.rows,
        r.setup.as_secs_f64(),
        r.walk.as_secs_f64(),
        calls.join(", "),
        r.requeued,
        r.rss_before_mb,
        r.peak_rss_mb,
        r.rss_after_mb
    )
}
