//! Everyone's churn, against the daemon with its production defaults (quota, redeploy budget,
//! Fly's limits in the simulator):
//!
//! * `toggling`: U users each toggle their P running previews between `stopped` and
//!   `pending` every T (each user at their own phase) for D;
//! * `steady`: R rows of U users, then random operations (insert, branch change, stop,
//!   redeploy, delete; equally likely) at O per second for D.
//!
//! Meanwhile a new user inserts one preview every [`PROBE_EVERY`]: its request → running
//! time against the same on the idle system. Sampled every second: rows waiting for work
//! (due now); every [`BACKLOG_EVERY`] s, the deleted rows' backlog ([`drain`]). After D: how
//! long until none is due, and the backlog watched until it is gone ([`drain::observe`]).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use uuid::Uuid;

use super::child::{self, Daemon, metric_sum};
use super::db::BenchDb;
use super::drain::{self, Backlog, Drain};
use super::fleet::{pct, sorted};
use crate::args::{BenchArgs, ChurnKind};
use fly_sim::{SimHandle, Simulator};

/// A new user's preview is inserted this often during the churn.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// Longest wait for the initial fleet, and for the backlog to clear after the churn.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// The deleted rows' backlog is sampled with every this many samples (seconds).
const BACKLOG_EVERY: u32 = 10;
/// A deleted row's machine counts as still running only this long after the delete.
const DESTROY_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct ChurnRun {
    pub kind: Option<ChurnKind>,
    pub idle_ttr: f64,
    /// New users' previews during the churn: request → running, seconds.
    pub probe_ttrs: Vec<f64>,
    pub ops: u64,
    pub max_due: i64,
    pub due_at_end: i64,
    /// Churn end → no row due (`None`: not within [`SETTLE_LIMIT`]).
    pub drained_in: Option<Duration>,
    /// Churn end → nothing due within a minute either (every preview converged).
    pub settled_in: Option<Duration>,
    pub drain: Drain,
    pub rows_in_error_max: i64,
    /// Every distinct reason and message seen on a row in `error` (not QuotaExceeded).
    pub error_reasons: BTreeSet<String>,
    pub fly_requests: u64,
    pub app_deletes: u64,
    pub machine_destroys: u64,
    pub sim_429: u64,
    pub breaker_trips: f64,
    pub wall: Duration,
}

pub async fn run(a: &BenchArgs, admin: &sqlx::PgPool, kind: ChurnKind) -> anyhow::Result<ChurnRun> {
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim = Simulator::start(super::controller::sim_config(a)).await.context("simulator")?;
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let daemon = Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, "churn", &[]).await?;
    let result = scenario(a, kind, &db, &sim, &daemon).await;
    child::finish(result, daemon, &sim, db).await
}

async fn scenario(
    a: &BenchArgs,
    kind: ChurnKind,
    db: &BenchDb,
    sim: &SimHandle,
    daemon: &Daemon,
) -> anyhow::Result<ChurnRun> {
    let (idle, _) = db.insert_one(Uuid::new_v4(), "idle-reference").await?;
    let idle_ttr = super::abuse::ttr(db, idle).await?;
    let users: Vec<Uuid> = (0..a.churn_users).map(|_| Uuid::new_v4()).collect();
    let per_user = match kind {
        ChurnKind::Toggling => a.churn_previews,
        ChurnKind::Steady => a.churn_rows.div_ceil(a.churn_users.max(1)),
    };
    let mut ids = Vec::new();
    for u in &users {
        ids.extend(db.insert_user_ids(*u, "churn", per_user).await?);
    }
    let settled = wait_drained(db, true).await?;
    eprintln!("bench: churn: {} rows settled in {settled:?}", ids.len());
    let log_from = sim.request_log().len();
    let started = Instant::now();
    let driver = Driver { db, sim, users: &users, ids, deleted: Vec::new(), ops: 0 };
    let (driver, samples) = drive(a, kind, driver).await?;
    let wall = started.elapsed();
    let drained_in = wait_drained(db, false).await.ok();
    let settled_in = wait_drained(db, true).await.ok().map(|s| s + drained_in.unwrap_or_default());
    let log = sim.request_log();
    let deleted: Vec<String> = driver.deleted.iter().map(|(n, _)| n.clone()).collect();
    let drain = drain::observe(db, sim, &deleted, samples.backlog).await?;
    let new = &log[log_from.min(log.len())..];
    let count = |action: &str| new.iter().filter(|r| r.action == action).count() as u64;
    let metrics = daemon.metrics().await?;
    Ok(ChurnRun {
        kind: Some(kind),
        idle_ttr,
        probe_ttrs: samples.probes,
        ops: driver.ops,
        max_due: samples.max_due,
        due_at_end: samples.due_at_end,
        drained_in,
        settled_in,
        drain,
        rows_in_error_max: samples.max_errors,
        error_reasons: samples.error_reasons,
        fly_requests: new.len() as u64,
        app_deletes: count("delete_app"),
        machine_destroys: count("destroy_machine"),
        sim_429: new.iter().filter(|r| r.status == 429).count() as u64,
        breaker_trips: metric_sum(&metrics, "fly_preview_fly_breaker_trips_total", None),
        wall,
    })
}

/// What the churn did, for the report and the deleted-apps check.
struct Driver<'a> {
    db: &'a BenchDb,
    sim: &'a SimHandle,
    users: &'a [Uuid],
    ids: Vec<(Uuid, String)>,
    /// App names of deleted rows, with when they were deleted.
    deleted: Vec<(String, Instant)>,
    ops: u64,
}

#[derive(Default)]
struct Samples {
    probes: Vec<f64>,
    max_due: i64,
    due_at_end: i64,
    max_errors: i64,
    error_reasons: BTreeSet<String>,
    backlog: Backlog,
    taken: u32,
}

impl Samples {
    /// One sample a second: rows due and in `error`; every [`BACKLOG_EVERY`]th, the backlog.
    async fn take(&mut self, d: &Driver<'_>) -> anyhow::Result<()> {
        let (due, _, errors, reasons) = d.db.due_and_errors().await?;
        (self.max_due, self.max_errors, self.due_at_end) =
            (self.max_due.max(due), self.max_errors.max(errors), due);
        self.error_reasons.extend(reasons);
        self.taken += 1;
        if self.taken.is_multiple_of(BACKLOG_EVERY) {
            self.backlog = self.backlog.max(d.backlog().await?);
        }
        Ok(())
    }
}

/// Runs the churn for `--churn-duration`, probing and sampling alongside.
async fn drive<'a>(
    a: &BenchArgs,
    kind: ChurnKind,
    mut d: Driver<'a>,
) -> anyhow::Result<(Driver<'a>, Samples)> {
    let end = Instant::now() + a.churn_duration;
    let mut s = Samples::default();
    let mut next_probe = Instant::now() + PROBE_EVERY / 2;
    let mut next_sample = Instant::now();
    let mut probes = tokio::task::JoinSet::new();
    let step = match kind {
        ChurnKind::Toggling => a.churn_toggle_every / u32::try_from(d.ids.len().max(1))?,
        ChurnKind::Steady => Duration::from_secs_f64(1.0 / a.churn_ops_per_s.max(0.01)),
    };
    let mut next_op = Instant::now();
    while Instant::now() < end {
        if Instant::now() >= next_op {
            match kind {
                ChurnKind::Toggling => d.toggle_next().await?,
                ChurnKind::Steady => d.random_op().await?,
            }
            next_op += step;
        }
        if Instant::now() >= next_probe {
            let (id, _) = d.db.insert_one(Uuid::new_v4(), "probe").await?;
            let pool_db = d.db.pool.clone();
            probes.spawn(async move { super::abuse::ttr_pool(&pool_db, id).await });
            next_probe += PROBE_EVERY;
        }
        if Instant::now() >= next_sample {
            s.take(&d).await?;
            next_sample += Duration::from_secs(1);
        }
        tokio::time::sleep_until(next_op.min(next_probe).min(next_sample)).await;
    }
    while let Some(t) = probes.join_next().await {
        s.probes.push(t.context("probe")??);
    }
    Ok((d, s))
}

impl Driver<'_> {
    /// The backlog of rows deleted more than [`DESTROY_GRACE`] ago.
    async fn backlog(&self) -> anyhow::Result<Backlog> {
        let before = Instant::now() - DESTROY_GRACE;
        let n = self.deleted.partition_point(|(_, at)| *at < before);
        let names: Vec<String> = self.deleted[..n].iter().map(|(a, _)| a.clone()).collect();
        drain::backlog(self.db, self.sim, &names).await
    }

    /// The next row in turn flips between `stopped` and `pending` (a cycle over all rows
    /// takes `--churn-toggle-every`; each user's rows spread over it).
    async fn toggle_next(&mut self) -> anyhow::Result<()> {
        let i = (self.ops as usize) % self.ids.len().max(1);
        let round = (self.ops as usize) / self.ids.len().max(1);
        let status = if round.is_multiple_of(2) { "stopped" } else { "pending" };
        self.db.set_status(self.ids[i].0, status).await?;
        self.ops += 1;
        Ok(())
    }

    /// One of: insert, branch change, stop, redeploy, delete (equally likely).
    async fn random_op(&mut self) -> anyhow::Result<()> {
        let r = Uuid::new_v4().as_u128();
        self.ops += 1;
        let pick = (r >> 64) as usize;
        if self.ids.is_empty() || r.is_multiple_of(5) {
            let user = self.users[pick % self.users.len().max(1)];
            let project = format!("churn-n{}", self.ops);
            self.ids.push(self.db.insert_one(user, &project).await?);
            return Ok(());
        }
        let i = pick % self.ids.len();
        let id = self.ids[i].0;
        match r % 5 {
            1 => self.db.change_branch(id, &format!("b{}", self.ops % 7)).await,
            2 => self.db.set_status(id, "stopped").await,
            3 => self.db.set_status(id, "pending").await,
            _ => {
                let (id, name) = self.ids.swap_remove(i);
                self.deleted.push((name, Instant::now()));
                self.db.delete(id).await
            }
        }
    }
}

/// Waits until no row is due (`settled`: none due within a minute either: every preview
/// converged, only periodic rechecks left).
async fn wait_drained(db: &BenchDb, settled: bool) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let (due, soon, _, _) = db.due_and_errors().await?;
        let left = if settled { soon } else { due };
        if left == 0 {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(
            t0.elapsed() < SETTLE_LIMIT,
            "{left} rows still due after {SETTLE_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The scenario as markdown.
pub fn render(r: &ChurnRun, a: &BenchArgs) -> String {
    let p = sorted(r.probe_ttrs.clone());
    let secs = |d: Option<Duration>| {
        d.map_or_else(|| "not within 300 s".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    let (drained, settled) = (secs(r.drained_in), secs(r.settled_in));
    let what = match r.kind {
        Some(ChurnKind::Toggling) => format!(
            "{} users × {} running previews, each toggled stopped ↔ pending every {:?}",
            a.churn_users, a.churn_previews, a.churn_toggle_every
        ),
        _ => format!(
            "{} rows of {} users, random insert / branch change / stop / redeploy / delete at {} ops/s",
            a.churn_rows, a.churn_users, a.churn_ops_per_s
        ),
    };
    format!(
        "### Churn: {what}, for {:.0} s (concurrency {})\n\n\
         | figure | value |\n|---|---|\n\
         | operations sent | {} |\n\
         | a new user's preview, idle system: request → running | {:.2} s |\n\
         | a new user's preview during the churn ({} probes): p50 / p99 / max | {:.2} / {:.2} / {:.2} s |\n\
         | rows due (waiting for work), sampled each second: max / at the end | {} / {} |\n\
         | churn end → no row due / every preview converged | {drained} / {settled} |\n\
         | rows in `error`, max of the samples | {} |\n\
         | their reasons and messages | {} |\n\
         {}\
         | Fly requests during the churn (per s) | {} ({:.1}) |\n\
         | app deletes / machine destroys / 429s from the simulator | {} / {} / {} |\n\
         | breaker trips | {} |\n",
        r.wall.as_secs_f64(),
        a.concurrency,
        r.ops,
        r.idle_ttr,
        p.len(),
        pct(&p, 50.0),
        pct(&p, 99.0),
        p.last().copied().unwrap_or(0.0),
        r.max_due,
        r.due_at_end,
        r.rows_in_error_max,
        reasons(&r.error_reasons),
        drain::rows(&r.drain, r.wall.as_secs_f64() / 60.0),
        r.fly_requests,
        r.fly_requests as f64 / r.wall.as_secs_f64().max(1.0),
        r.app_deletes,
        r.machine_destroys,
        r.sim_429,
        r.breaker_trips,
    )
}

/// The reasons seen in `error`, one table cell.
fn reasons(seen: &BTreeSet<String>) -> String {
    if seen.is_empty() {
        return "none".to_owned();
    }
    let cell: Vec<String> = seen.iter().map(|r| r.replace('|', "\\|")).collect();
    cell.join("; ")
}
