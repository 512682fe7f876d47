//! Wake latency: rows inserted (and rows changed) one at a time into an idle, converged
//! system; latency = the simulator's arrival time of the first request for that app minus
//! the moment the bench sent the statement (so the statement's own round trip is included).
//!
//! Clocks: the request log's `at_ms` counts whole milliseconds of tokio time since the
//! simulator's clock started; the bench reads `Instant::now()` right before starting the
//! simulator, so `sim_t0 + at_ms` is at most ~1 ms earlier than the true arrival (the
//! figures are at worst ~1 ms optimistic; the statement round trip makes them pessimistic).

use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::db::BenchDb;
use super::fleet::{app_of, pct, sorted};
use fly_sim::{LoggedRequest, SimHandle};

const SPACING: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Default)]
pub struct WakeStats {
    /// Milliseconds, ascending.
    pub inserts: Vec<f64>,
    pub updates: Vec<f64>,
    /// Rows whose first request never came (within 10 s).
    pub missing: usize,
    /// Median round trip of the bench's INSERT statement, ms.
    pub insert_rtt_p50: f64,
}

impl WakeStats {
    pub fn all(&self) -> Vec<f64> {
        sorted(self.inserts.iter().chain(&self.updates).copied().collect())
    }

    /// (p50, p99, max) over inserts and updates together.
    pub fn summary(&self) -> (f64, f64, f64) {
        let v = self.all();
        (pct(&v, 50.0), pct(&v, 99.0), v.last().copied().unwrap_or(0.0))
    }
}

struct Sent {
    app: String,
    at: Instant,
}

pub async fn measure(
    db: &BenchDb,
    sim: &SimHandle,
    sim_t0: Instant,
    samples: usize,
    fleet: &str,
) -> anyhow::Result<WakeStats> {
    let user = Uuid::from_u128(0x0b5e_7a11_4e57_4000_8000_0000_0000_0001);
    let (mut inserted, mut rtts) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let at = Instant::now();
        let (_, app) = db.insert_one(user, &format!("wake-{i}")).await?;
        rtts.push(at.elapsed().as_secs_f64() * 1000.0);
        inserted.push(Sent { app, at });
        tokio::time::sleep(SPACING).await;
    }
    let mut updated = Vec::new();
    for (i, (id, app)) in db.some_running(fleet, samples).await?.into_iter().enumerate() {
        let at = Instant::now();
        db.change_branch(id, &format!("wake-{i}")).await?;
        updated.push(Sent { app, at });
        tokio::time::sleep(SPACING).await;
    }
    let log = wait_for_first_requests(sim, sim_t0, &inserted, &updated).await;
    let (ins, miss_i) = latencies(&log, sim_t0, &inserted, &windows(&inserted));
    let (upd, miss_u) = latencies(&log, sim_t0, &updated, &vec![None; updated.len()]);
    Ok(WakeStats {
        inserts: ins,
        updates: upd,
        missing: miss_i + miss_u,
        insert_rtt_p50: pct(&sorted(rtts), 50.0),
    })
}

fn arrival(sim_t0: Instant, r: &LoggedRequest) -> Instant {
    sim_t0 + Duration::from_millis(r.at_ms)
}

/// The first request for `s.app` that arrived after the statement was sent (1 ms slack for
/// the log's millisecond resolution). `POST /v1/apps` names its app only in the body, so a
/// create-app counts for the row whose insert was the last one sent before it arrived
/// (`until` is when the next insert was sent); nothing else creates apps meanwhile.
fn first_after(
    log: &[LoggedRequest],
    sim_t0: Instant,
    s: &Sent,
    until: Option<Instant>,
) -> Option<Instant> {
    let after = |t: &Instant| *t + Duration::from_millis(1) >= s.at;
    let own =
        log.iter().filter(|r| app_of(&r.path) == Some(s.app.as_str())).map(|r| arrival(sim_t0, r));
    let create = log
        .iter()
        .filter(|r| until.is_some() && r.action == "create_app")
        .map(|r| arrival(sim_t0, r))
        .filter(|t| until.is_none_or(|u| *t < u));
    own.chain(create).filter(after).min()
}

/// For inserts (which create apps): when the next insert was sent, or 10 s after the last.
fn windows(sent: &[Sent]) -> Vec<Option<Instant>> {
    let next = sent
        .iter()
        .skip(1)
        .map(|s| s.at)
        .chain(sent.last().map(|s| s.at + Duration::from_secs(10)));
    next.map(Some).collect()
}

async fn wait_for_first_requests(
    sim: &SimHandle,
    sim_t0: Instant,
    inserted: &[Sent],
    updated: &[Sent],
) -> Vec<LoggedRequest> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = sim.request_log();
        let done = latencies(&log, sim_t0, inserted, &windows(inserted)).1 == 0
            && latencies(&log, sim_t0, updated, &vec![None; updated.len()]).1 == 0;
        if done || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn latencies(
    log: &[LoggedRequest],
    sim_t0: Instant,
    sent: &[Sent],
    until: &[Option<Instant>],
) -> (Vec<f64>, usize) {
    let mut out = Vec::new();
    let mut missing = 0;
    for (s, u) in sent.iter().zip(until) {
        match first_after(log, sim_t0, s, *u) {
            Some(t) => out.push(t.saturating_duration_since(s.at).as_secs_f64() * 1000.0),
            None => missing += 1,
        }
    }
    (sorted(out), missing)
}
