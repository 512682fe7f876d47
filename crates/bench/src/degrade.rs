//! `--scenario partial-degradation`: `--scenario-rows` rows are inserted at once while the
//! simulator answers `--fault-error-rate` of every Fly call with a 503 and delays every call by
//! `--fault-latency` (its own `--api-latency` on top), for `--fault-duration`; then the fault
//! clears. The daemon runs with every production default.
//!
//! Measured: rows that were ever in `error` (the timeline's `error` events, and the rows seen
//! in `error` by sampling every 500 ms), the highest attempt count, app-create calls per app,
//! the time from the fault clearing to every row running, and whether the retry messages'
//! promised times ("retrying automatically at HH:MM:SS UTC") were kept: each promise seen
//! while sampling is matched with the first Fly request naming the row's app after the
//! message appeared (see [`promises`]). A message that names its time as "after HH:MM:SS"
//! promises only "not before": those are counted apart, with the ones retried early.
//!
//! Assumed: the failed pass's own requests arrived before the sample preceding its message
//! (true while every call takes longer than a sampling interval plus a sample's query, as
//! with the default `--fault-latency 2s`); with a shorter latency a failed pass's last
//! request could be taken for its retry and counted early.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::child::{self, Daemon, metric_sum};
use super::db::BenchDb;
use super::fleet::{app_of, pct, sorted};
use crate::args::BenchArgs;
use fly_preview_controller::model::state::{Reason, Status};
use fly_sim::{LoggedRequest, SimHandle, Simulator};

const TAG: &str = "degrade";
const SAMPLE: Duration = Duration::from_millis(500);
/// Longest wait for every row to run once the fault has cleared.
const RECOVER_LIMIT: Duration = Duration::from_secs(300);
/// A retry that starts this much after its promised second (which is truncated) is late.
pub const KEPT_WITHIN: f64 = 2.0;

#[derive(Debug, Clone, Default)]
pub struct DegradeRun {
    pub rows: usize,
    pub fault: Duration,
    /// Rows with an `error` event in their timeline (not the quota's).
    pub error_events: i64,
    /// Rows seen in `error` (not the quota's) by the sampling.
    pub seen_in_error: usize,
    pub max_attempts: i32,
    pub running_at_clear: i64,
    /// Insert → every row running (whether during the fault or after).
    pub all_running: Option<Duration>,
    /// Fault cleared → every row running (zero when all ran during the fault).
    pub after_clear: Option<Duration>,
    pub create_app_calls: u64,
    pub apps: usize,
    pub name_taken: u64,
    pub promise: PromiseStats,
    pub fly_requests: u64,
    pub injected_503: u64,
    pub breaker_trips: f64,
}

/// The retry messages' promises against the retries.
#[derive(Debug, Clone, Default)]
pub struct PromiseStats {
    /// "after <time>" messages seen, and those retried before their time.
    pub not_before: usize,
    pub not_before_early: usize,
    /// Actual − promised, seconds, ascending (promised is the message's whole second).
    pub lateness: Vec<f64>,
    pub early: usize,
    pub late: usize,
    pub unmatched: usize,
}

/// The wall clock when the simulator started: its request log counts from there.
#[derive(Clone, Copy)]
struct Clock {
    wall0: DateTime<Utc>,
}

impl Clock {
    fn wall_of(&self, r: &LoggedRequest) -> DateTime<Utc> {
        let ms = i64::try_from(r.at_ms).unwrap_or(i64::MAX);
        self.wall0 + chrono::Duration::milliseconds(ms)
    }
}

pub async fn run(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<DegradeRun> {
    let db = BenchDb::recreate(admin, &a.database_url, &a.db_name).await?;
    let clock = Clock { wall0: Utc::now() };
    let sim = Simulator::start(super::controller::sim_config(a)).await.context("simulator")?;
    let exe = child::controller_bin(a.controller_bin.as_deref())?;
    let daemon = Daemon::spawn(&exe, &db.url, &sim.base_url(), a.concurrency, TAG, &[]).await?;
    let result = measure(a, &db, &sim, clock, &daemon).await;
    child::finish(result, daemon, &sim, db).await
}

async fn measure(
    a: &BenchArgs,
    db: &BenchDb,
    sim: &SimHandle,
    clock: Clock,
    daemon: &Daemon,
) -> anyhow::Result<DegradeRun> {
    let latency = a.fault_latency.as_millis();
    sim.add_fault(format!("any:latency={latency}ms").parse()?);
    sim.add_fault(format!("any:503:p={}", a.fault_error_rate).parse()?);
    let t0 = Instant::now();
    let n = db.insert_fleet(TAG, a.scenario_rows).await?;
    eprintln!("bench: degradation: {n} rows inserted; fault for {:?}", a.fault_duration);
    let mut obs = Observer::default();
    let mut all_running = None;
    while t0.elapsed() < a.fault_duration {
        obs.sample(db).await?;
        if all_running.is_none() && obs.running >= n as i64 {
            all_running = Some(t0.elapsed());
        }
        tokio::time::sleep(SAMPLE).await;
    }
    sim.clear_faults();
    let (cleared, fault, running_at_clear) = (Instant::now(), t0.elapsed(), obs.running);
    eprintln!("bench: degradation: fault cleared; {running_at_clear} of {n} running");
    let after_clear = loop {
        obs.sample(db).await?;
        if obs.running >= n as i64 {
            all_running = all_running.or(Some(t0.elapsed()));
            break Some(if running_at_clear >= n as i64 {
                Duration::ZERO
            } else {
                cleared.elapsed()
            });
        }
        if cleared.elapsed() > RECOVER_LIMIT {
            break None;
        }
        tokio::time::sleep(SAMPLE).await;
    };
    let log = sim.request_log();
    let metrics = daemon.metrics().await?;
    let (create_app_calls, apps, name_taken) = creates(&log);
    Ok(DegradeRun {
        rows: usize::try_from(n)?,
        fault,
        error_events: error_events(db).await?,
        seen_in_error: obs.in_error.len(),
        max_attempts: obs.max_attempts,
        running_at_clear,
        all_running,
        after_clear,
        create_app_calls,
        apps,
        name_taken,
        promise: promises(&obs.promises, &log, clock),
        fly_requests: log.len() as u64,
        injected_503: log.iter().filter(|r| r.status == 503).count() as u64,
        breaker_trips: metric_sum(&metrics, "fly_preview_fly_breaker_trips_total", None),
    })
}

/// One promise seen in a row's message: the retry must not start before `promised`, and the
/// message was written after `after` (the previous sample, which did not show it).
#[derive(Debug, Clone)]
struct Promise {
    app: String,
    promised: DateTime<Utc>,
    after: DateTime<Utc>,
    /// "at <time>" (kept within [`KEPT_WITHIN`]), not "after <time>" (not before).
    exact: bool,
}

#[derive(Default)]
struct Observer {
    prev: Option<DateTime<Utc>>,
    promises: HashMap<(String, DateTime<Utc>), Promise>,
    in_error: HashSet<String>,
    max_attempts: i32,
    running: i64,
}

type SampleRow = (String, bool, bool, i32, Option<String>);

impl Observer {
    async fn sample(&mut self, db: &BenchDb) -> anyhow::Result<()> {
        let sql = "SELECT fly_app_name, status = $2, \
                          status = $3 AND status_reason IS DISTINCT FROM $4, attempts, error_message \
                   FROM public.fly_preview_apps WHERE project_id LIKE $1 || '-%'";
        db.count(1);
        let now = Utc::now();
        let rows: Vec<SampleRow> = sqlx::query_as(sql)
            .bind(TAG)
            .bind(Status::Running)
            .bind(Status::Error)
            .bind(Reason::QuotaExceeded)
            .fetch_all(&db.pool)
            .await?;
        self.running = 0;
        for (app, running, in_error, attempts, message) in rows {
            self.running += i64::from(running);
            self.max_attempts = self.max_attempts.max(attempts);
            if in_error {
                self.in_error.insert(app.clone());
            }
            if let Some((promised, exact)) = message.as_deref().and_then(|m| promised_at(m, now)) {
                let after = self.prev.unwrap_or(now);
                self.promises.entry((app.clone(), promised)).or_insert(Promise {
                    app,
                    promised,
                    after,
                    exact,
                });
            }
        }
        self.prev = Some(now);
        Ok(())
    }
}

/// The instant in "retrying automatically at HH:MM:SS UTC" (`true`) or "… after HH:MM:SS UTC"
/// (`false`), on the day nearest `now`.
pub fn promised_at(message: &str, now: DateTime<Utc>) -> Option<(DateTime<Utc>, bool)> {
    let rest = message.split("retrying automatically ").nth(1)?;
    let (rest, exact) = match rest.strip_prefix("at ") {
        Some(rest) => (rest, true),
        None => (rest.strip_prefix("after ")?, false),
    };
    let time = chrono::NaiveTime::parse_from_str(rest.get(..8)?, "%H:%M:%S").ok()?;
    let t = now.date_naive().and_time(time).and_utc();
    let half_day = chrono::Duration::hours(12);
    let t = if t > now + half_day {
        t - chrono::Duration::days(1)
    } else if t < now - half_day {
        t + chrono::Duration::days(1)
    } else {
        t
    };
    Some((t, exact))
}

/// Each promise against the first request naming its app after the message appeared.
fn promises(
    all: &HashMap<(String, DateTime<Utc>), Promise>,
    log: &[LoggedRequest],
    clock: Clock,
) -> PromiseStats {
    let mut by_app: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    for r in log {
        // an app create names its app in the body: a retry that starts with one counts from it
        if let Some(app) = app_of(&r.path).or(r.created_app.as_deref()) {
            by_app.entry(app).or_default().push(clock.wall_of(r));
        }
    }
    let mut s = PromiseStats::default();
    for p in all.values() {
        let first = by_app.get(p.app.as_str()).and_then(|ts| ts.iter().find(|t| **t >= p.after));
        let Some(first) = first else {
            s.unmatched += 1;
            continue;
        };
        let late = (*first - p.promised).num_milliseconds() as f64 / 1000.0;
        if !p.exact {
            s.not_before += 1;
            s.not_before_early += usize::from(late < -0.1);
            continue;
        }
        s.early += usize::from(late < -0.1);
        s.late += usize::from(late > KEPT_WITHIN);
        s.lateness.push(late);
    }
    s.lateness = sorted(s.lateness);
    s
}

/// (app-create calls, apps created, creates answered 422 name taken: a retried create of an
/// app an earlier, ambiguous create had made). `POST /v1/apps` names its app in the body,
/// which the log does not keep, so the figures are totals.
fn creates(log: &[LoggedRequest]) -> (u64, usize, u64) {
    let calls = log.iter().filter(|r| r.action == "create_app").count() as u64;
    let ok = log.iter().filter(|r| r.action == "create_app" && r.status < 300).count();
    let conflicts = log.iter().filter(|r| r.action == "create_app" && r.status == 422).count();
    (calls, ok, conflicts as u64)
}

/// Rows whose timeline has an `error` event other than the quota's.
async fn error_events(db: &BenchDb) -> anyhow::Result<i64> {
    let sql = "SELECT count(DISTINCT preview_id) FROM public.fly_preview_events \
               WHERE kind = 'error' AND reason IS DISTINCT FROM $1";
    db.count(1);
    Ok(sqlx::query_scalar(sql).bind(Reason::QuotaExceeded).fetch_one(&db.pool).await?)
}

/// The scenario as markdown.
pub fn render(r: &DegradeRun, a: &BenchArgs) -> String {
    let secs = |d: Option<Duration>| {
        d.map_or_else(|| "not within 300 s".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    let p = &r.promise.lateness;
    format!(
        "### Partial degradation: {} rows deploying, {:.0} % of Fly calls 503 and +{:?} on every \
         call for {:.0} s (concurrency {})\n\n\
         | figure | value |\n|---|---|\n\
         | rows ever in `error` (timeline events / seen by sampling) | **{}** / {} |\n\
         | highest attempt count | {} |\n\
         | rows running when the fault cleared | {} of {} |\n\
         | insert → every row running | {} |\n\
         | fault cleared → every row running | {} |\n\
         | app-create calls / apps created (per app) / 422 name taken | {} / {} ({:.2}) / {} |\n\
         | retry promises seen / kept (retry ≤ {KEPT_WITHIN:.0} s after the promised second) / early / late | {} / {} / {} / {} |\n\
         | retry − promised second: p50 / p99 / max | {:.2} / {:.2} / {:.2} s |\n\
         | \"after\" (not before) messages seen / retried early | {} / {} |\n\
         | Fly requests / 503s injected | {} / {} |\n\
         | breaker trips | {} |\n",
        r.rows,
        a.fault_error_rate * 100.0,
        a.fault_latency,
        r.fault.as_secs_f64(),
        a.concurrency,
        r.error_events,
        r.seen_in_error,
        r.max_attempts,
        r.running_at_clear,
        r.rows,
        secs(r.all_running),
        secs(r.after_clear),
        r.create_app_calls,
        r.apps,
        r.create_app_calls as f64 / r.apps.max(1) as f64,
        r.name_taken,
        p.len() + r.promise.unmatched,
        p.len() - r.promise.early - r.promise.late,
        r.promise.early,
        r.promise.late,
        pct(p, 50.0),
        pct(p, 99.0),
        p.last().copied().unwrap_or(0.0),
        r.promise.not_before,
        r.promise.not_before_early,
        r.fly_requests,
        r.injected_503,
        r.breaker_trips,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promised_times_are_read_on_the_nearest_day() {
        let now = "2026-12-06T23:59:50Z".parse::<DateTime<Utc>>().ok();
        let now = now.unwrap_or_default();
        let m = "Fly answered 503; retrying automatically at 00:00:04 UTC (attempt 2)";
        let want = "2026-12-07T00:00:04Z".parse::<DateTime<Utc>>().ok();
        assert_eq!(promised_at(m, now), want.map(|t| (t, true)));
        let m = "Fly answered 503; retrying automatically after 00:00:04 UTC (attempt 2)";
        assert_eq!(promised_at(m, now), want.map(|t| (t, false)));
        assert_eq!(promised_at("retrying automatically (attempt 2)", now), None);
    }
}
