//! `--at-rest WINDOW`: a fleet that has settled, watched. The first `--rows` previews are
//! inserted, 30 % of them for a repository the simulator's runner cannot clone (git exits
//! 128, so the row ends in `error` waiting for a change); once every row is `running` or in
//! `error`, Fly's autostop suspends half of the fleet's machines behind the controller's back
//! (`SimHandle::idle_stop`, as Fly Proxy does to an idle preview). Then for WINDOW: row writes
//! (`pg_stat_user_tables` and rows whose `updated_at` moved), Fly calls, the daemon's
//! statements by name and `pg_stat_database` transactions, its memory, and the cost gauge it
//! exports against the machines the simulator really has.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use anyhow::Context;
use fly_sim::{SimHandle, Simulator};
use tokio::time::Instant;

use crate::args::BenchArgs;
use crate::child::{self, Daemon, ProcStats};
use crate::db::{self, BenchDb};
use crate::statements::{self, Statements};
use crate::{Environment, controller, fleet};

const REPO: &str = "https://github.com/acme/site";
/// The simulator's runner exits with git's code 128 for this repository.
const MISSING_REPO: &str = "https://github.com/acme/does-not-exist";
/// Postgres flushes an idle backend's statistics within 10 s.
const SETTLE: Duration = Duration::from_secs(11);

#[derive(Debug, Default)]
pub struct AtRestRun {
    pub rows: u64,
    pub running: i64,
    pub errors: i64,
    pub converge: Duration,
    pub suspended: usize,
    pub window: Duration,
    /// Row inserts + updates of `fly_preview_apps` (`pg_stat_user_tables`), window + settle.
    pub row_writes: i64,
    /// Rows whose `updated_at` moved during the window.
    pub rows_touched: i64,
    pub fly_calls: u64,
    pub fly_by_action: Vec<(String, u64)>,
    pub statements: Statements,
    /// `pg_stat_database` transactions per second over window + settle, bench's own removed.
    pub xacts_per_s: f64,
    /// Gauges the daemon exports at the end: (series, value).
    pub cost: Vec<(String, f64)>,
    pub machines_gauge: Vec<(String, f64)>,
    /// Machines by state in the simulator at the end (the truth the gauge estimates).
    pub sim_states: BTreeMap<String, usize>,
    pub daemon: ProcStats,
    pub max_rss_mb: f64,
    pub load_before: f64,
}

/// Runs the scenario, drops the database, prints the report.
pub async fn main(a: &BenchArgs, admin: &sqlx::PgPool, env: &Environment) -> anyhow::Result<()> {
    let window = a.at_rest.unwrap_or(Duration::from_secs(600));
    let result = run(a, admin, window).await;
    let dropped = db::drop_db(admin, &a.db_name).await;
    let r = result?;
    dropped.context("dropping the bench database")?;
    println!("## fly-preview-controller bench (at rest), {}\n", env.date);
    println!("{} cores ({}), {}, PostgreSQL {}\n", env.cores, env.cpu, env.memory, env.postgres);
    print!("{}", render(&r));
    Ok(())
}

async fn run(a: &BenchArgs, admin: &sqlx::PgPool, window: Duration) -> anyhow::Result<AtRestRun> {
    let n = a.rows.first().copied().unwrap_or(10_000);
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim =
        Simulator::start(controller::sim_config(a)).await.context("starting the simulator")?;
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let env = [("MAX_PREVIEWS_PER_USER", "0")];
    let tag = format!("at-rest-{n}");
    let daemon = Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, &tag, &env).await?;
    let result = measure(a, &db, &sim, &daemon, admin, (n, window)).await;
    child::finish(result, daemon, &sim, db).await
}

/// Inserts `n` rows: every tenth `g` with `g % 10 < 3` asks for a repository that fails.
async fn insert(db: &BenchDb, n: usize) -> anyhow::Result<u64> {
    let sql = "INSERT INTO public.fly_preview_apps \
         (user_id, project_id, fly_app_name, preview_url, status, github_repo_url, github_branch) \
         SELECT DISTINCT ON (nm) u, p, nm, 'https://' || nm || '.fly.dev', 'pending', \
                CASE WHEN g % 10 < 3 THEN $3 ELSE $2 END, 'main' \
         FROM (SELECT g, md5('bench-user-' || (g % 97))::uuid AS u, 'rest-' || g AS p \
               FROM generate_series(1, $1::bigint) g) s, \
         LATERAL (SELECT 'roseram-' || left(md5(s.u::text || '-' || s.p), 8) AS nm) x \
         ORDER BY nm \
         ON CONFLICT (fly_app_name) DO NOTHING";
    db.count(1);
    let r = sqlx::query(sql)
        .bind(i64::try_from(n)?)
        .bind(REPO)
        .bind(MISSING_REPO)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

/// Waits until every row is `running` or in `error` because its machine exited (waiting for a
/// change or its idle expiry: no longer due never, since failed previews expire); (running,
/// errors, time).
async fn settle_fleet(
    db: &BenchDb,
    n: u64,
    budget: Duration,
) -> anyhow::Result<(i64, i64, Duration)> {
    let (t0, mut last_print) = (Instant::now(), Instant::now());
    loop {
        db.count(1);
        let (running, errors): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'running' AND observed_generation = generation), \
                    count(*) FILTER (WHERE status = 'error' AND status_reason = 'MachineExited') \
             FROM public.fly_preview_apps",
        )
        .fetch_one(&db.pool)
        .await?;
        if (running + errors) as u64 >= n || t0.elapsed() >= budget {
            return Ok((running, errors, t0.elapsed()));
        }
        if last_print.elapsed() >= Duration::from_secs(15) {
            eprintln!("bench: at rest: {running} running, {errors} in error");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Autostop suspends the machines of `count` running rows; returns how many it suspended.
async fn autostop(db: &BenchDb, sim: &SimHandle, count: usize) -> anyhow::Result<usize> {
    db.count(1);
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT fly_app_name, fly_machine_id FROM public.fly_preview_apps \
         WHERE status = 'running' AND fly_machine_id IS NOT NULL ORDER BY fly_app_name LIMIT $1",
    )
    .bind(i64::try_from(count)?)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().filter(|(app, id)| sim.idle_stop(app, id, true)).count())
}

/// Row inserts + updates of the preview table as Postgres counts them.
async fn row_writes(db: &BenchDb) -> anyhow::Result<i64> {
    db.count(1);
    Ok(sqlx::query_scalar(
        "SELECT (n_tup_ins + n_tup_upd)::bigint FROM pg_stat_user_tables \
         WHERE schemaname = 'public' AND relname = 'fly_preview_apps'",
    )
    .fetch_one(&db.pool)
    .await?)
}

/// Every series of one gauge: (labels, value).
fn series(metrics: &str, name: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with('{'))
        .filter_map(|rest| {
            let (labels, v) = rest.rsplit_once(' ')?;
            Some((labels.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn sim_states(sim: &SimHandle) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for app in sim.app_names() {
        for m in sim.machines(&app) {
            let state = m["state"].as_str().unwrap_or("?").to_owned();
            *out.entry(state).or_insert(0) += 1;
        }
    }
    out
}

struct Marks {
    statements: BTreeMap<String, u64>,
    requests: u64,
    xacts: u64,
    own: u64,
    writes: i64,
    ms: u64,
}

async fn marks(
    db: &BenchDb,
    sim: &SimHandle,
    daemon: &Daemon,
    admin: &sqlx::PgPool,
    t0: Instant,
) -> anyhow::Result<Marks> {
    Ok(Marks {
        statements: statements::scrape(&daemon.metrics().await?),
        requests: sim.stats().requests_total,
        xacts: db::xacts(admin, &db.name).await?,
        writes: row_writes(db).await?,
        own: db.own_statements(),
        ms: t0.elapsed().as_millis() as u64,
    })
}

async fn measure(
    a: &BenchArgs,
    db: &BenchDb,
    sim: &SimHandle,
    daemon: &Daemon,
    admin: &sqlx::PgPool,
    (n, window): (usize, Duration),
) -> anyhow::Result<AtRestRun> {
    let sim_t0 = Instant::now();
    let load_before = child::loadavg();
    let rows = insert(db, n).await?;
    let (running, errors, converge) = settle_fleet(db, rows, a.converge_budget).await?;
    eprintln!("bench: at rest: {running} running, {errors} in error after {converge:?}");
    tokio::time::sleep(SETTLE).await;
    let suspended = autostop(db, sim, (rows / 2) as usize).await?;
    let w = observe(db, sim, daemon, admin, (sim_t0, window)).await?;
    Ok(AtRestRun { rows, running, errors, converge, suspended, load_before, ..w })
}

/// The window itself: everything measured between two sets of marks (the database's
/// counters read once more after [`SETTLE`], when Postgres has flushed its statistics).
async fn observe(
    db: &BenchDb,
    sim: &SimHandle,
    daemon: &Daemon,
    admin: &sqlx::PgPool,
    (sim_t0, window): (Instant, Duration),
) -> anyhow::Result<AtRestRun> {
    db.count(1);
    let started_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await?;
    let (m0, t0) = (marks(db, sim, daemon, admin, sim_t0).await?, Instant::now());
    let max_rss_mb = watch(daemon, window).await?;
    let statements = statements::scrape(&daemon.metrics().await?);
    let (elapsed, ms1, requests) =
        (t0.elapsed(), sim_t0.elapsed().as_millis() as u64, sim.stats().requests_total);
    tokio::time::sleep(SETTLE).await;
    let m1 = marks(db, sim, daemon, admin, sim_t0).await?;
    db.count(1);
    let rows_touched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_apps WHERE updated_at >= $1")
            .bind(started_at)
            .fetch_one(&db.pool)
            .await?;
    let metrics = daemon.metrics().await?;
    let own = m1.own.saturating_sub(m0.own) as f64;
    Ok(AtRestRun {
        window: elapsed,
        row_writes: m1.writes - m0.writes,
        rows_touched,
        fly_calls: requests.saturating_sub(m0.requests),
        fly_by_action: fleet::calls_between(&sim.request_log(), m0.ms, ms1),
        statements: Statements::between(&m0.statements, &statements, elapsed),
        xacts_per_s: (m1.xacts.saturating_sub(m0.xacts) as f64 - own) / t0.elapsed().as_secs_f64(),
        cost: series(&metrics, "fly_preview_estimated_monthly_cost_dollars"),
        machines_gauge: series(&metrics, "fly_preview_machines"),
        sim_states: sim_states(sim),
        daemon: daemon.proc_stats()?,
        max_rss_mb,
        ..AtRestRun::default()
    })
}

/// Sleeps through the window, sampling the daemon's RSS every 5 s; returns the largest.
async fn watch(daemon: &Daemon, window: Duration) -> anyhow::Result<f64> {
    let (t0, mut max, mut last_print) = (Instant::now(), 0.0f64, Instant::now());
    while t0.elapsed() < window {
        max = max.max(daemon.proc_stats()?.rss_mb);
        if last_print.elapsed() >= Duration::from_secs(60) {
            eprintln!(
                "bench: at rest: {:.0} s of {:.0} s",
                t0.elapsed().as_secs_f64(),
                window.as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(5).min(window.saturating_sub(t0.elapsed()))).await;
    }
    Ok(max.max(daemon.proc_stats()?.rss_mb))
}

fn pairs(v: &[(String, f64)]) -> String {
    let items: Vec<String> = v.iter().map(|(k, x)| format!("`{k}` {x:.2}")).collect();
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// The table's lines: (figure, value).
fn figures(r: &AtRestRun) -> Vec<(&'static str, String)> {
    let secs = r.window.as_secs_f64().max(1e-9);
    vec![
        ("row writes (inserts + updates, pg_stat_user_tables)", format!("{}", r.row_writes)),
        ("rows whose `updated_at` moved", format!("{}", r.rows_touched)),
        (
            "Fly calls",
            format!(
                "{} ({:.3}/s): {}",
                r.fly_calls,
                r.fly_calls as f64 / secs,
                r.fly_by_action
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        ("daemon statements", format!("{} ({:.3}/s)", r.statements.total(), r.statements.per_s())),
        ("by statement", r.statements.list()),
        ("pg_stat_database transactions/s (bench's own removed)", format!("{:.2}", r.xacts_per_s)),
        ("cost gauge ($/month, by state)", pairs(&r.cost)),
        ("total cost gauge", format!("{:.2} $/month", r.cost.iter().map(|(_, v)| v).sum::<f64>())),
        ("machines gauge", pairs(&r.machines_gauge)),
        ("machines in the simulator, by state", format!("{:?}", r.sim_states)),
        (
            "daemon RSS: max sampled in the window / peak (VmHWM)",
            format!("{:.1} / {:.1} MB", r.max_rss_mb, r.daemon.peak_rss_mb),
        ),
    ]
}

pub fn render(r: &AtRestRun) -> String {
    let secs = r.window.as_secs_f64().max(1e-9);
    let mut o = String::from("### At rest\n\n");
    let _ = writeln!(
        o,
        "{} rows: {} running, {} in `error` (settled after {:.1} s); autostop suspended {} \
         machines; then watched for {:.0} s. 1-minute load average before: {:.2}.\n",
        r.rows,
        r.running,
        r.errors,
        r.converge.as_secs_f64(),
        r.suspended,
        secs,
        r.load_before
    );
    o += "| figure | value |\n|---|---|\n";
    for (k, v) in figures(r) {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    let _ = writeln!(
        o,
        "\nTargets: ≤ 0.2 daemon statements/s — **{}**; ≤ 0.1 Fly calls/s — **{}**.",
        if r.statements.per_s() <= 0.2 { "met" } else { "missed" },
        if r.fly_calls as f64 / secs <= 0.1 { "met" } else { "missed" }
    );
    o
}
