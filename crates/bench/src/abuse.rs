//! The abuse scenario, against the daemon with its production defaults (per-user quota and
//! redeploy budget on): one user inserts 2,000 rows at once and toggles one row between
//! `stopped` and `pending` 500 times within a minute; a second user inserts one row during
//! it. Reported: that row's time to `running` against the same kind of row on the idle
//! system, the second user's stop (request → machine destroyed, row `stopped`) idle and during
//! the abuse, and the Fly calls the abuser caused.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use uuid::Uuid;

use super::child::{self, Daemon, metric_sum};
use super::db::BenchDb;
use super::fleet::app_of;
use crate::args::BenchArgs;
use fly_preview_controller::model::state::Status;
use fly_sim::Simulator;

const ABUSER: Uuid = Uuid::from_u128(0xab05_e000_0000_4000_8000_0000_0000_0001);
const VICTIM: Uuid = Uuid::from_u128(0x71c7_1000_0000_4000_8000_0000_0000_0002);
const BURST: usize = 2_000;
const TOGGLES: usize = 500;
const TOGGLE_SPAN: Duration = Duration::from_secs(60);
/// The victim inserts its row this long after the burst started.
const VICTIM_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct AbuseRun {
    /// The victim's row on the idle system: request → running, seconds (database clock).
    pub idle_ttr: f64,
    /// The victim's row during the abuse.
    pub victim_ttr: f64,
    /// Fly calls for the abuser's apps plus app creations not the victim's, during the abuse.
    pub abuser_calls: u64,
    pub abuser_running: i64,
    pub abuser_refused: i64,
    pub toggles_sent_in: Duration,
    pub quota_refusals: f64,
    pub throttled: f64,
    pub rate_limited: u64,
    /// The victim's stop on the idle system: request → `stopped` (machine destroyed), seconds
    /// (database clock).
    pub idle_stop: f64,
    /// The victim's stop during the abuse (toggles still running).
    pub victim_stop: f64,
}

/// The stop goal of issue 23: another user's stop during the abuse.
pub const STOP_GOAL_SECS: f64 = 0.1;

pub async fn run(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<AbuseRun> {
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim = Simulator::start(super::controller::sim_config(a)).await.context("simulator")?;
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let daemon = Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, "abuse", &[]).await?;
    let result = scenario(&db, &sim, &daemon).await;
    child::finish(result, daemon, &sim, db).await
}

async fn scenario(
    db: &BenchDb,
    sim: &fly_sim::SimHandle,
    daemon: &Daemon,
) -> anyhow::Result<AbuseRun> {
    let (idle, _) = db.insert_one(VICTIM, "idle-reference").await?;
    let idle_ttr = ttr(db, idle).await?;
    let idle_stop = stop(db, idle).await?;
    let (toggled, _) = db.insert_one(ABUSER, "toggled").await?;
    ttr(db, toggled).await?;
    let log_from = sim.request_log().len();
    let burst = db.insert_user_rows(ABUSER, "abuse", BURST).await?;
    anyhow::ensure!(burst == BURST as u64, "abuse insert came up short");
    let started = Instant::now();
    let toggler = tokio::spawn(toggle(db.pool.clone(), toggled));
    tokio::time::sleep(VICTIM_AFTER).await;
    let (victim, _) = db.insert_one(VICTIM, "during-abuse").await?;
    let victim_ttr = ttr(db, victim).await?;
    anyhow::ensure!(!toggler.is_finished(), "the abuse ended before the victim's stop");
    let victim_stop = stop(db, victim).await?;
    eprintln!("bench: abuse: victim's stop {victim_stop:.3} s (idle {idle_stop:.3} s)");
    let toggles_sent_in = toggler.await.context("toggler")??;
    eprintln!("bench: abuse: toggles sent in {:.1} s", toggles_sent_in.as_secs_f64());
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(started.elapsed())).await;
    let log = sim.request_log();
    let abuser_apps = db.app_names_of(ABUSER).await?;
    let abuser_calls = log
        .iter()
        .skip(log_from)
        .filter(|r| r.status != 429)
        .filter(|r| match app_of(&r.path) {
            Some(app) => abuser_apps.iter().any(|a| a == app),
            None => r.action == "create_app",
        })
        .count() as u64;
    let (abuser_running, abuser_refused) = db.user_counts(ABUSER).await?;
    let metrics = daemon.metrics().await?;
    Ok(AbuseRun {
        idle_ttr,
        victim_ttr,
        // The victim's own app creation is among the creates (POST /v1/apps names no app).
        abuser_calls: abuser_calls.saturating_sub(1),
        abuser_running,
        abuser_refused,
        toggles_sent_in,
        quota_refusals: metric_sum(&metrics, "fly_preview_quota_refusals_total", None),
        throttled: metric_sum(&metrics, "fly_preview_redeploys_throttled_total", None),
        rate_limited: sim.stats().rate_limited_total,
        idle_stop,
        victim_stop,
    })
}

/// 500 status writes alternating `stopped` / `pending` on one row, spread over a minute.
async fn toggle(pool: sqlx::PgPool, id: Uuid) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let every = TOGGLE_SPAN / TOGGLES as u32;
    for i in 0..TOGGLES {
        let status = if i % 2 == 0 { Status::Stopped } else { Status::Pending };
        sqlx::query("UPDATE public.fly_preview_apps SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&pool)
            .await?;
        tokio::time::sleep_until(t0 + every * (i as u32 + 1)).await;
    }
    Ok(t0.elapsed())
}

/// Waits until the row runs; its request → running time in seconds (database clock).
pub async fn ttr(db: &BenchDb, id: Uuid) -> anyhow::Result<f64> {
    ttr_pool(&db.pool, id).await
}

/// [`ttr`] on a pool of the bench database (for spawned probes).
pub async fn ttr_pool(pool: &sqlx::PgPool, id: Uuid) -> anyhow::Result<f64> {
    until(pool, id, Status::Running).await
}

/// The web app's stop of a running row (`status = 'stopped'`); its request → `stopped` time in
/// seconds (database clock; the controller writes `stopped` once Fly accepted the machine's
/// forced destroy).
async fn stop(db: &BenchDb, id: Uuid) -> anyhow::Result<f64> {
    db.set_status(id, "stopped").await?;
    until(&db.pool, id, Status::Stopped).await
}

/// Waits until the row has `status` at its generation; request → that status, in seconds.
async fn until(pool: &sqlx::PgPool, id: Uuid, status: Status) -> anyhow::Result<f64> {
    let sql = "SELECT extract(epoch FROM last_transition_at - requested_at)::float8 \
               FROM public.fly_preview_apps \
               WHERE id = $1 AND status = $2 AND observed_generation = generation";
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let t: Option<f64> =
            sqlx::query_scalar(sql).bind(id).bind(status).fetch_optional(pool).await?;
        if let Some(t) = t {
            return Ok(t);
        }
        anyhow::ensure!(Instant::now() < deadline, "row {id} did not reach {status:?} in 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The report lines of the stops (appended to the abuse section).
pub fn stop_report(a: &AbuseRun) -> String {
    let met = if a.victim_stop < STOP_GOAL_SECS { "met" } else { "**missed**" };
    format!(
        "The second user's stop (request → machine destroyed, row `stopped`; database clock): \
         {:.3} s on the idle system, {:.3} s during the abuse (goal < {STOP_GOAL_SECS} s: {met}).\n\n",
        a.idle_stop, a.victim_stop
    )
}
