//! Report sections of the scheduler: the controller against the ideal driver, the abuse
//! scenario, and the scheduler's targets.

use std::fmt::Write as _;

use super::Results;
use super::abuse::AbuseRun;
use super::controller::ControllerRun;
use super::ideal::IdealRun;

fn fleet_time(r: &ControllerRun) -> f64 {
    r.conv.projected.unwrap_or(r.conv.wall).as_secs_f64()
}

pub fn ideal(runs: &[ControllerRun], ideals: &[IdealRun]) -> String {
    let mut o = String::from("### Controller against the ideal driver (same invocation)\n\n");
    o += "The ideal driver makes the same Fly calls as the controller's happy path and only the two status writes \
          per app (`initializing`, `running`), all rows at once, with no leases, claims or controller logic: the \
          bound of this machine, this Postgres and this simulator. Fleet time is insert → every row running (bench \
          clock); per-row time is request → running (database clock).\n\n";
    o += "| rows | controller fleet | ideal fleet | ratio | controller per row: first / p50 / p99 | ideal per row: first / p50 / p99 | controller p50 / fleet | ideal Fly calls per app | ideal 429s |\n|---|---|---|---|---|---|---|---|---|\n";
    for i in ideals {
        let Some(r) = runs.iter().find(|r| r.rows == i.rows) else { continue };
        let (c, t) = (&r.timings, &i.timings);
        let fleet = fleet_time(r);
        let _ = writeln!(
            o,
            "| {} | {fleet:.1} s | {:.1} s | {:.2}× | {:.1} / {:.1} / {:.1} s | {:.1} / {:.1} / {:.1} s | {:.0} % | {:.2} | {} |",
            i.rows,
            i.wall.as_secs_f64(),
            fleet / i.wall.as_secs_f64().max(1e-9),
            c.min,
            c.p50,
            c.p99,
            t.min,
            t.p50,
            t.p99,
            c.p50 / fleet.max(1e-9) * 100.0,
            i.calls_per_app,
            i.rate_limited
        );
    }
    o + "\n"
}

pub fn abuse(a: Option<&AbuseRun>) -> String {
    let Some(a) = a else { return "### Abuse scenario\n\nNot run.\n\n".into() };
    let mut o = String::from(
        "### Abuse scenario (production defaults: MAX_PREVIEWS_PER_USER 10, REDEPLOY_BUDGET 20 per 10m)\n\n",
    );
    o += "One user inserts 2,000 rows in one statement and toggles one of its running rows between `stopped` and \
          `pending` 500 times within a minute; 5 s in, a second user inserts one row. Time to running is request → \
          running on the database clock; the idle figure is the same user's row inserted before the abuse.\n\n";
    let _ = writeln!(
        o,
        "| victim on the idle system | victim during the abuse | delay | abuser's Fly calls | abuser rows running / refused (QuotaExceeded) | quota refusals / throttled passes (metrics) | 429s | toggles sent in |\n|---|---|---|---|---|---|---|---|\n| {:.2} s | {:.2} s | {:+.2} s | {} | {} / {} | {:.0} / {:.0} | {} | {:.1} s |\n",
        a.idle_ttr,
        a.victim_ttr,
        a.victim_ttr - a.idle_ttr,
        a.abuser_calls,
        a.abuser_running,
        a.abuser_refused,
        a.quota_refusals,
        a.throttled,
        a.rate_limited,
        a.toggles_sent_in.as_secs_f64()
    );
    o + "\n" + &super::abuse::stop_report(a)
}

fn line(o: &mut String, target: &str, value: impl std::fmt::Display, ok: bool) {
    let _ = writeln!(o, "| {target} | {value} | {} |", if ok { "met" } else { "**missed**" });
}

fn per_run(o: &mut String, r: &ControllerRun, i: Option<&IdealRun>) {
    let n = r.rows;
    let (fleet, bound) = (fleet_time(r), r.bound.as_secs_f64());
    let t = &r.timings;
    let first = format!("first row running ≤ 2× the critical path ({n} rows)");
    line(
        o,
        &first,
        format!("{:.1} s vs {:.1} s ({:.2}×)", t.min, bound, t.min / bound),
        t.min <= 2.0 * bound,
    );
    let p50 = format!("p50 ≤ 35 % of the fleet's total ({n} rows)");
    line(o, &p50, format!("{:.0} %", t.p50 / fleet * 100.0), t.p50 <= 0.35 * fleet);
    if let Some(i) = i {
        let ideal = i.wall.as_secs_f64();
        let base = if n >= 10_000 { ideal } else { ideal.max(bound) };
        let what =
            if n >= 10_000 { "the ideal driver" } else { "max(critical path, ideal driver)" };
        let ratio = fleet / base;
        line(o, &format!("fleet ≤ 1.5× {what} ({n} rows)"), format!("{ratio:.2}×"), ratio <= 1.5);
    }
    let (_, p99, _) = r.wake.summary();
    line(o, &format!("wake p99 ≤ 25 ms ({n} rows)"), format!("{p99:.1} ms"), p99 <= 25.0);
    if let Some(s) = &r.steady {
        // The daemon's own statements (its counter), not `pg_stat_database`, which counts
        // every client of the database, the bench's own sampling included.
        let stmts = s.statements.per_s();
        let v = format!("{stmts:.3} statements/s, {:.2} Fly calls/s", s.fly_per_s);
        line(
            o,
            &format!("idle ≤ 0.2 of the daemon's statements/s and ≤ 0.1 Fly calls/s ({n} rows)"),
            v,
            stmts <= 0.2 && s.fly_per_s <= 0.1,
        );
    }
}

pub fn targets(all: &Results) -> String {
    let mut o =
        String::from("### Scheduler targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    for r in &all.runs {
        per_run(&mut o, r, all.ideals.iter().find(|i| i.rows == r.rows));
    }
    if let Some(a) = &all.abuse {
        let delay = a.victim_ttr - a.idle_ttr;
        line(&mut o, "victim delayed ≤ 1 s by the abuser", format!("{delay:+.2} s"), delay <= 1.0);
        line(
            &mut o,
            "0 self-caused 429s (abuse scenario)",
            a.rate_limited.to_string(),
            a.rate_limited == 0,
        );
    }
    o + "\n"
}
