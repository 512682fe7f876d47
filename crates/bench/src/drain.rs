//! After a churn: the deleted rows' backlog, observed until it is gone (or [`DRAIN_LIMIT`]).
//!
//! Deleting a row leaves a tombstone; its teardown destroys the row's machine at once (no
//! org-wide budget) and deletes its app within the client's share of Fly's org-wide 100 app
//! deletions a minute (the client's bucket: 90 a minute). A churn whose deletes arrive faster
//! than that leaves empty apps behind by construction; they drain at the bucket's rate after
//! the churn. Measured every 2 s: tombstones pending, apps of deleted rows still alive, and the
//! live machines in them (the "nothing runs" check: it must hold at once, even while the empty
//! app waits for the budget).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::db::BenchDb;
use fly_sim::SimHandle;

/// How long the bench keeps watching the backlog after the churn.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(900);
const EVERY: Duration = Duration::from_secs(2);

/// What deleted rows still leave behind at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    /// Tombstones not yet finished.
    pub tombstones: i64,
    /// Apps of deleted rows the simulator still has.
    pub apps: usize,
    /// Live machines in those apps.
    pub machines: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Drain {
    /// Rows the churn deleted.
    pub deletes: usize,
    /// The most seen while the churn ran (sampled with the rows due).
    pub max_during: Backlog,
    pub at_end: Backlog,
    /// Churn end → no tombstone left (`None`: not within [`DRAIN_LIMIT`]).
    pub tombstones_gone: Option<Duration>,
    /// Churn end → no app of a deleted row left.
    pub apps_gone: Option<Duration>,
    /// When the bench stopped watching.
    pub left: Backlog,
}

impl Backlog {
    pub fn max(self, o: Backlog) -> Backlog {
        Backlog {
            tombstones: self.tombstones.max(o.tombstones),
            apps: self.apps.max(o.apps),
            machines: self.machines.max(o.machines),
        }
    }
}

/// The backlog now: tombstones, and the apps (and their live machines) of `deleted` rows.
pub async fn backlog(db: &BenchDb, sim: &SimHandle, deleted: &[String]) -> anyhow::Result<Backlog> {
    db.count(1);
    let sql = "SELECT count(*) FROM fly_preview_controller.tombstones";
    let tombstones: i64 = sqlx::query_scalar(sql).fetch_one(&db.pool).await?;
    let alive: HashSet<String> = sim.app_names().into_iter().collect();
    let named: HashSet<String> = db.all_app_names().await?.into_iter().collect();
    let mut b = Backlog { tombstones, ..Backlog::default() };
    for app in deleted.iter().filter(|n| alive.contains(*n) && !named.contains(*n)) {
        b.apps += 1;
        b.machines += sim.machines(app).len();
    }
    Ok(b)
}

/// Watches the backlog from the churn's end until it is gone or [`DRAIN_LIMIT`] passed.
pub async fn observe(
    db: &BenchDb,
    sim: &SimHandle,
    deleted: &[String],
    max_during: Backlog,
) -> anyhow::Result<Drain> {
    let t0 = Instant::now();
    let at_end = backlog(db, sim, deleted).await?;
    let mut d = Drain { deletes: deleted.len(), max_during, at_end, ..Drain::default() };
    let (mut b, mut printed) = (at_end, Instant::now());
    loop {
        if d.tombstones_gone.is_none() && b.tombstones == 0 {
            d.tombstones_gone = Some(t0.elapsed());
        }
        if d.apps_gone.is_none() && b.apps == 0 {
            d.apps_gone = Some(t0.elapsed());
        }
        if (d.tombstones_gone.is_some() && d.apps_gone.is_some()) || t0.elapsed() > DRAIN_LIMIT {
            break;
        }
        if printed.elapsed() > Duration::from_secs(30) {
            eprintln!("bench: drain: {b:?} after {:.0} s", t0.elapsed().as_secs_f64());
            printed = Instant::now();
        }
        tokio::time::sleep(EVERY).await;
        b = backlog(db, sim, deleted).await?;
    }
    d.left = b;
    Ok(d)
}

/// The drain's rows of the churn table.
pub fn rows(d: &Drain, minutes: f64) -> String {
    let secs = |t: Option<Duration>| {
        t.map_or_else(
            || format!("not within {} s", DRAIN_LIMIT.as_secs()),
            |t| format!("{:.1} s", t.as_secs_f64()),
        )
    };
    format!(
        "| rows deleted (per minute; Fly allows 100 app deletions a minute org-wide, the client 90) | {} ({:.0}) |\n\
         | tombstones pending: max during the churn / at its end | {} / {} |\n\
         | apps of deleted rows alive: max during the churn / at its end | {} / {} |\n\
         | live machines in apps of deleted rows: max during the churn / at its end | **{}** / **{}** |\n\
         | churn end → no tombstone left / no app of a deleted row left | {} / {} |\n\
         | left when the bench stopped watching: tombstones / apps / machines | {} / **{}** / {} |\n",
        d.deletes,
        d.deletes as f64 / minutes.max(1.0 / 60.0),
        d.max_during.tombstones,
        d.at_end.tombstones,
        d.max_during.apps,
        d.at_end.apps,
        d.max_during.machines,
        d.at_end.machines,
        secs(d.tombstones_gone),
        secs(d.apps_gone),
        d.left.tombstones,
        d.left.apps,
        d.left.machines,
    )
}
