//! `--scenario failover`: two daemons (child processes, `CONTROLLER_ID` `replica-a` and
//! `replica-b`) on one database and one simulator, every production default (lease, leader
//! lease, backstop poll). `replica-a` starts first and leads; `--scenario-rows` rows are
//! inserted; once `replica-a` holds leases on rows mid-deploy, it gets SIGKILL (`kill -9`:
//! no drain, its leases and its leadership simply stop being renewed).
//!
//! Measured: kill → `replica-b` leads (`fly_preview_leader` 1), kill → every row the dead
//! replica had leased runs, kill → every row runs; duplicates (apps with more than one live
//! machine, apps created twice) and orphans (apps no row names) in the simulator.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use uuid::Uuid;

use super::child::{self, Daemon, metric_sum};
use super::db::BenchDb;
use crate::args::BenchArgs;
use fly_sim::{SimHandle, Simulator};

const TAG: &str = "failover";
const DEAD: &str = "replica-a";
const HEIR: &str = "replica-b";
/// Longest wait for each phase.
const LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default)]
pub struct FailoverRun {
    pub rows: usize,
    /// Rows the dead replica held leases on when it died.
    pub held: usize,
    /// Rows already running when it died.
    pub running_at_kill: i64,
    pub took_lead: Option<Duration>,
    pub held_running: Option<Duration>,
    pub all_running: Option<Duration>,
    pub multi_machine_apps: usize,
    pub duplicate_apps: u64,
    pub orphans: usize,
    pub machines_alive: u64,
}

pub async fn run(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<FailoverRun> {
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let sim = Simulator::start(super::controller::sim_config(a)).await.context("simulator")?;
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let url = sim.base_url();
    let c = a.concurrency;
    let mut dead = Daemon::spawn(&exe, &db.url, &url, c, TAG, &[("CONTROLLER_ID", DEAD)]).await?;
    let heir = match wait_leader(&dead).await {
        Ok(()) => {
            let env = [("CONTROLLER_ID", HEIR)];
            Daemon::spawn(&exe, &db.url, &url, c, "failover-b", &env).await
        }
        Err(e) => Err(e),
    };
    let heir = match heir {
        Ok(heir) => heir,
        Err(e) => return child::finish(Err(e), dead, &sim, db).await,
    };
    let result = measure(a, &db, &sim, &mut dead, &heir).await;
    drop(dead); // killed and reaped: nothing to stop
    child::finish(result, heir, &sim, db).await
}

async fn measure(
    a: &BenchArgs,
    db: &BenchDb,
    sim: &SimHandle,
    dead: &mut Daemon,
    heir: &Daemon,
) -> anyhow::Result<FailoverRun> {
    let n = db.insert_fleet(TAG, a.scenario_rows).await?;
    // Half the dead replica's worker slots busy: it dies mid-pass on that many rows.
    let want = (n / 20).min(u64::from(a.concurrency / 2)).max(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (leased_by(db, DEAD).await?.len() as u64) < want {
        anyhow::ensure!(Instant::now() < deadline, "{DEAD} never held {want} leases");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = leased_by(db, DEAD).await?;
    dead.kill9().await?;
    let killed = Instant::now();
    let running_at_kill = running_of(db, None).await?;
    eprintln!("bench: failover: {DEAD} killed holding {} leases", held.len());
    let (mut took_lead, mut held_running) = (None, None);
    while (took_lead.is_none() || held_running.is_none()) && killed.elapsed() < LIMIT {
        if took_lead.is_none()
            && metric_sum(&heir.metrics().await?, "fly_preview_leader", None) >= 1.0
        {
            took_lead = Some(killed.elapsed());
        }
        if held_running.is_none() && running_of(db, Some(&held)).await? >= held.len() as i64 {
            held_running = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all_running = None;
    while all_running.is_none() && killed.elapsed() < LIMIT {
        if running_of(db, None).await? >= n as i64 {
            all_running = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (multi_machine_apps, orphans) = duplicates_and_orphans(db, sim).await?;
    let stats = sim.stats();
    Ok(FailoverRun {
        rows: usize::try_from(n)?,
        held: held.len(),
        running_at_kill,
        took_lead,
        held_running,
        all_running,
        multi_machine_apps,
        duplicate_apps: stats.duplicate_apps,
        orphans,
        machines_alive: stats.machines_alive,
    })
}

async fn wait_leader(d: &Daemon) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric_sum(&d.metrics().await?, "fly_preview_leader", None) < 1.0 {
        anyhow::ensure!(Instant::now() < deadline, "{DEAD} never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn leased_by(db: &BenchDb, owner: &str) -> anyhow::Result<Vec<Uuid>> {
    let sql = "SELECT id FROM public.fly_preview_apps \
               WHERE lease_owner = $1 AND lease_expires_at > now()";
    db.count(1);
    Ok(sqlx::query_scalar(sql).bind(owner).fetch_all(&db.pool).await?)
}

/// Rows running at their generation (among `ids`, or all).
async fn running_of(db: &BenchDb, ids: Option<&[Uuid]>) -> anyhow::Result<i64> {
    let sql = "SELECT count(*) FROM public.fly_preview_apps \
               WHERE status = 'running' AND observed_generation = generation \
                 AND ($1::uuid[] IS NULL OR id = ANY($1))";
    db.count(1);
    Ok(sqlx::query_scalar(sql).bind(ids).fetch_one(&db.pool).await?)
}

/// (apps with more than one live machine, apps in the simulator no row names).
async fn duplicates_and_orphans(db: &BenchDb, sim: &SimHandle) -> anyhow::Result<(usize, usize)> {
    let names: HashSet<String> = db.all_app_names().await?.into_iter().collect();
    let apps = sim.app_names();
    let multi = apps.iter().filter(|a| sim.machines(a).len() > 1).count();
    let orphans = apps.iter().filter(|a| !names.contains(*a)).count();
    Ok((multi, orphans))
}

/// The scenario as markdown.
pub fn render(r: &FailoverRun, a: &BenchArgs) -> String {
    let secs = |d: Option<Duration>| {
        d.map_or_else(|| "not within 300 s".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    format!(
        "### Failover: two replicas, the leader killed (SIGKILL) under {} deploying rows \
         (concurrency {} each)\n\n\
         | figure | value |\n|---|---|\n\
         | rows the dead replica had leased / rows running at the kill | {} / {} |\n\
         | kill → the other replica leads | {} |\n\
         | kill → every row the dead replica had leased runs | **{}** |\n\
         | kill → every row runs | {} |\n\
         | apps with more than one live machine / apps created twice | **{}** / {} |\n\
         | orphans (apps no row names) | {} |\n\
         | live machines at the end | {} |\n",
        r.rows,
        a.concurrency,
        r.held,
        r.running_at_kill,
        secs(r.took_lead),
        secs(r.held_running),
        secs(r.all_running),
        r.multi_machine_apps,
        r.duplicate_apps,
        r.orphans,
        r.machines_alive,
    )
}
