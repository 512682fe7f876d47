//! `--scenario hanging-sync`: one user's `--hanging-rows` previews whose `sync` outlives
//! exec's timeout (the simulator's `SyncFault::Wedged`: the exec answers 408 when its own
//! timeout passes; a tenant controls the code in its VM), saved again every 2 s, while another
//! user saves one preview one save at a time, for `--fault-duration`. The daemon runs with
//! every production default (sync lane, per-user sync slots, exec timeout).
//!
//! Measured: the other user's save latency (`revision` written → `served_revision` seen) on
//! the idle system and during the hang, the breaker's trips
//! (`fly_preview_fly_breaker_trips_total`, must stay 0), the exec 408s the hung previews got,
//! and what their rows show.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use uuid::Uuid;

use super::child::{self, Daemon, metric_sum};
use super::db::BenchDb;
use super::fleet::{pct, sorted};
use crate::args::BenchArgs;
use fly_sim::{SimHandle, Simulator, SyncFault};

/// Saves timed on the idle system before the hang.
const IDLE_SAVES: usize = 10;
/// The hung previews are saved again this often (their sync lane stays busy).
const HUNG_SAVE_EVERY: Duration = Duration::from_secs(2);
/// A save not confirmed within this long counts as unconfirmed.
const CONFIRM_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Default)]
pub struct HangingRun {
    pub hung: usize,
    pub window: Duration,
    /// Seconds, ascending.
    pub idle: Vec<f64>,
    pub during: Vec<f64>,
    pub unconfirmed: usize,
    pub exec_408: u64,
    pub hung_execs: u64,
    pub breaker_trips: f64,
    pub sync_failures: f64,
    /// Hung rows by (status, reason), as the rows show at the end.
    pub hung_rows: Vec<(String, i64)>,
}

pub async fn run(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<HangingRun> {
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim = Simulator::start(super::controller::sim_config(a)).await.context("simulator")?;
    sim.set_sync_time(a.sync_time);
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let daemon = Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, "hang", &[]).await?;
    let result = measure(a, &db, &sim, &daemon).await;
    child::finish(result, daemon, &sim, db).await
}

async fn measure(
    a: &BenchArgs,
    db: &BenchDb,
    sim: &SimHandle,
    daemon: &Daemon,
) -> anyhow::Result<HangingRun> {
    let (tenant, other) = (Uuid::new_v4(), Uuid::new_v4());
    let hung = db.insert_user_ids(tenant, "hang", a.hanging_rows).await?;
    let (calm, calm_app) = db.insert_one(other, "calm").await?;
    wait_running(db, hung.len() + 1).await?;
    let mut saver = Saver { db, sim, n: 0 };
    let mut idle = Vec::new();
    for _ in 0..IDLE_SAVES {
        idle.extend(saver.save(calm, &calm_app).await?);
    }
    for (_, app) in &hung {
        sim.set_sync_fault(app, Some(SyncFault::Wedged));
    }
    let log_from = sim.request_log().len();
    let (t0, mut next_hung) = (Instant::now(), Instant::now());
    let (mut during, mut unconfirmed) = (Vec::new(), 0);
    while t0.elapsed() < a.fault_duration {
        if Instant::now() >= next_hung {
            for (id, app) in &hung {
                saver.push(*id, app).await?;
            }
            next_hung += HUNG_SAVE_EVERY;
        }
        match saver.save(calm, &calm_app).await? {
            Some(t) => during.push(t),
            None => unconfirmed += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let window = t0.elapsed();
    let log = sim.request_log();
    let new = &log[log_from.min(log.len())..];
    let hung_apps: Vec<&str> = hung.iter().map(|(_, a)| a.as_str()).collect();
    let of_hung = |p: &str| super::fleet::app_of(p).is_some_and(|a| hung_apps.contains(&a));
    let metrics = daemon.metrics().await?;
    Ok(HangingRun {
        hung: hung.len(),
        window,
        idle: sorted(idle),
        during: sorted(during),
        unconfirmed,
        exec_408: new.iter().filter(|r| r.action == "exec_machine" && r.status == 408).count()
            as u64,
        hung_execs: new.iter().filter(|r| r.action == "exec_machine" && of_hung(&r.path)).count()
            as u64,
        breaker_trips: metric_sum(&metrics, "fly_preview_fly_breaker_trips_total", None),
        sync_failures: metric_sum(&metrics, "fly_preview_sync_failures_total", None),
        hung_rows: row_states(db, tenant).await?,
    })
}

/// Saves: "push a commit" to the app's branch, then `UPDATE … SET revision`.
struct Saver<'a> {
    db: &'a BenchDb,
    sim: &'a SimHandle,
    n: u64,
}

impl Saver<'_> {
    async fn push(&mut self, id: Uuid, app: &str) -> anyhow::Result<String> {
        self.n += 1;
        let sha = format!("{:040x}", 0xc0_0000 + self.n);
        self.sim.push_revision(app, &sha);
        self.db.count(1);
        sqlx::query("UPDATE public.fly_preview_apps SET revision = $2 WHERE id = $1")
            .bind(id)
            .bind(&sha)
            .execute(&self.db.pool)
            .await?;
        Ok(sha)
    }

    /// One timed save: seconds until `served_revision` shows it (`None`: not within 30 s).
    async fn save(&mut self, id: Uuid, app: &str) -> anyhow::Result<Option<f64>> {
        let at = Instant::now();
        let sha = self.push(id, app).await?;
        let sql = "SELECT served_revision IS NOT DISTINCT FROM $2 \
                   FROM public.fly_preview_apps WHERE id = $1";
        while at.elapsed() < CONFIRM_LIMIT {
            self.db.count(1);
            let q = sqlx::query_scalar::<_, bool>(sql).bind(id).bind(&sha);
            if q.fetch_one(&self.db.pool).await? {
                return Ok(Some(at.elapsed().as_secs_f64()));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(None)
    }
}

async fn wait_running(db: &BenchDb, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let sql = "SELECT count(*) FROM public.fly_preview_apps WHERE status = 'running'";
    loop {
        db.count(1);
        let running: i64 = sqlx::query_scalar(sql).fetch_one(&db.pool).await?;
        if running >= n as i64 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {running} of {n} rows ran");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn row_states(db: &BenchDb, user: Uuid) -> anyhow::Result<Vec<(String, i64)>> {
    let sql = "SELECT status::text || ' / ' || coalesce(status_reason::text, '-'), count(*) \
               FROM public.fly_preview_apps WHERE user_id = $1 GROUP BY 1 ORDER BY 1";
    db.count(1);
    Ok(sqlx::query_as(sql).bind(user).fetch_all(&db.pool).await?)
}

/// The scenario as markdown.
pub fn render(r: &HangingRun, a: &BenchArgs) -> String {
    let q = |v: &[f64]| {
        let max = v.last().copied().unwrap_or(0.0);
        format!("{:.2} / {:.2} / {max:.2} s", pct(v, 50.0), pct(v, 99.0))
    };
    let rows: Vec<String> = r.hung_rows.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!(
        "### Hanging sync: one user's {} previews whose `sync` outlives exec's timeout, another \
         user saving, for {:.0} s (simulated sync {:?}, API latency {:?})\n\n\
         | figure | value |\n|---|---|\n\
         | the other user's save, idle system ({} saves): p50 / p99 / max | {} |\n\
         | the other user's save during the hang ({} saves): p50 / p99 / max | **{}** |\n\
         | the other user's saves not confirmed within 30 s | {} |\n\
         | exec calls to the hung previews / exec 408s | {} / {} |\n\
         | breaker trips (`fly_preview_fly_breaker_trips_total`) | **{}** |\n\
         | sync failures counted (`fly_preview_sync_failures_total`) | {} |\n\
         | the hung previews' rows at the end | {} |\n",
        r.hung,
        r.window.as_secs_f64(),
        a.sync_time,
        a.api_latency,
        r.idle.len(),
        q(&r.idle),
        r.during.len(),
        q(&r.during),
        r.unconfirmed,
        r.hung_execs,
        r.exec_408,
        r.breaker_trips,
        r.sync_failures,
        rows.join(", "),
    )
}
