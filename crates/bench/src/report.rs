//! The markdown report: one table per concern, then the targets, met or missed.

use std::fmt::Write as _;
use std::time::Duration;

use super::baseline::BaselineRun;
use super::child::ProcStats;
use super::controller::ControllerRun;
use super::{Environment, Results};
use crate::args::BenchArgs;

fn s(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn list(items: &[(String, impl std::fmt::Display)]) -> String {
    if items.is_empty() {
        return "—".into();
    }
    items.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Convergence time used for ratios: measured, or projected when the budget ran out.
fn conv_time(r: &ControllerRun) -> Duration {
    r.conv.projected.unwrap_or(r.conv.wall)
}

pub fn one_line(r: &ControllerRun) -> String {
    let state = if r.conv.converged { "converged" } else { "NOT converged" };
    format!(
        "{state} in {} ({} running, {} in error), lower bound {}, sim 429s {}",
        s(r.conv.wall),
        r.conv.running,
        r.conv.errors,
        s(r.bound),
        r.sim.rate_limited_total
    )
}

pub fn render(a: &BenchArgs, env: &Environment, all: &Results, bench: &ProcStats) -> String {
    let (runs, base) = (&all.runs[..], &all.baselines[..]);
    let mut out = header(a, env);
    out += &convergence(runs);
    out += &super::report_sched::ideal(runs, &all.ideals);
    out += &efficiency(runs);
    out += &steady(runs);
    out += &super::idle::table(runs);
    out += &super::idle::scale(runs);
    out += &wake(runs);
    out += &resources(runs, bench);
    out += &baseline(base, runs);
    out += &super::report_sched::abuse(all.abuse.as_ref());
    out += &super::targets::table(runs, base);
    out += &super::report_sched::targets(all);
    out
}

fn header(a: &BenchArgs, env: &Environment) -> String {
    let mut o = format!("## fly-preview-controller bench, {}\n\n", env.date);
    let _ = writeln!(
        o,
        "- machine: {} cores, {}, {} RAM; PostgreSQL {}",
        env.cores, env.cpu, env.memory, env.postgres
    );
    let _ = writeln!(
        o,
        "- simulator (in the bench process): API latency {:?} per request, create→start 50ms, boot {:?}, checks pass {:?} after start, Fly rate limits {}",
        a.api_latency,
        a.boot_time,
        a.check_delay,
        if a.sim_rate_limits { "on" } else { "OFF" }
    );
    let _ = writeln!(
        o,
        "- controller: `fly-preview-controller run` as a child process, concurrency {}, DB pool {}, every other setting at its production default\n",
        a.concurrency,
        (u32::from(a.concurrency) / 2).clamp(4, 32)
    );
    o
}

fn convergence(runs: &[ControllerRun]) -> String {
    let mut o = String::from("### Fleet convergence (insert → every row `running`)\n\n");
    o += "Lower bound: one app's critical path, 5 × API latency (create app, 2 IPs, create machine, the read that sees \
          the checks pass) + create→start + boot + check delay; Fly's per-app limits do not bind and apps do not share \
          buckets, so it does not grow with the fleet. Wall time is the bench's view (250 ms polling); DB span is \
          first `requested_at` → last transition to `running`, both on the database clock.\n\n";
    o += "| rows | converged | wall time | DB span | lower bound | ratio | per row: first / p50 / p99 / last | host CPU busy (load before) |\n|---|---|---|---|---|---|---|---|\n";
    for r in runs {
        let conv = if r.conv.converged {
            "yes".to_string()
        } else {
            format!("no: {} of {} after {}", r.conv.running, r.rows, s(r.conv.wall))
        };
        let wall = match r.conv.projected {
            Some(p) => format!("{} (projected)", s(p)),
            None => s(r.conv.wall),
        };
        let ratio = conv_time(r).as_secs_f64() / r.bound.as_secs_f64();
        let t = &r.timings;
        let per_row = format!("{:.1} / {:.1} / {:.1} / {:.1} s", t.min, t.p50, t.p99, t.max);
        let host = format!("{:.0} % ({:.1})", r.conv.host_busy_pct, r.conv.load_before);
        let _ = writeln!(
            o,
            "| {} | {conv} | {wall} | {:.1} s | {} | {ratio:.2}× | {per_row} | {host} |",
            r.rows,
            t.span,
            s(r.bound)
        );
    }
    o + "\n"
}

fn efficiency(runs: &[ControllerRun]) -> String {
    let mut o = String::from("### Efficiency during convergence\n\n");
    o += "| rows | Fly calls per app (mean / p50 / max, non-429) | per app, by action | org-wide listings | 429s from the simulator | client: 429s seen / waits on its own limiter | reconciles (per app) | DB transactions per reconcile (per app) |\n|---|---|---|---|---|---|---|---|\n";
    for r in runs {
        let c = &r.calls;
        let per_app = if c.wrapped {
            format!("request log wrapped ({} kept)", c.total_requests)
        } else {
            format!("{:.2} / {:.0} / {:.0}", c.per_app.0, c.per_app.1, c.per_app.2)
        };
        let by_action: Vec<(String, String)> =
            c.by_action.iter().map(|(k, v)| (k.clone(), format!("{v:.2}"))).collect();
        let limited = format!("{} ({})", r.sim.rate_limited_total, list(&c.rate_limited));
        let n = r.rows as f64;
        let _ = writeln!(
            o,
            "| {} | {per_app} | {} | {} | {limited} | {:.0} / {:.0} | {:.0} ({:.2}) | {:.2} ({:.2}) |",
            r.rows,
            list(&by_action),
            list(&c.org_wide),
            r.client_429,
            r.client_throttled,
            r.reconciles,
            r.reconciles / n,
            r.db_xacts / r.reconciles.max(1.0),
            r.db_xacts / n
        );
    }
    o + "\n"
}

fn steady(runs: &[ControllerRun]) -> String {
    let mut o = String::from("### Steady state (converged fleet, idle)\n\n");
    o += "| rows | window | Fly calls/s | Fly calls by action | DB transactions/s | daemon CPU |\n|---|---|---|---|---|---|\n";
    for r in runs {
        match &r.steady {
            Some(st) => {
                let _ = writeln!(
                    o,
                    "| {} | {} from {} after convergence | {:.2} | {} | {:.2} | {:.1} % |",
                    r.rows,
                    s(st.window),
                    s(st.after),
                    st.fly_per_s,
                    list(&st.fly_by_action),
                    st.db_per_s,
                    st.cpu_pct
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "| {} | not measured: the fleet did not converge | | | | |",
                    r.rows
                );
            }
        }
    }
    o + "\n"
}

fn wake(runs: &[ControllerRun]) -> String {
    let mut o = String::from("### Wake latency (row written → first Fly request for its app)\n\n");
    o += "| rows | samples | p50 | p99 | max | inserts p50 / max | updates p50 / max | no request within 10 s | INSERT round trip p50 |\n|---|---|---|---|---|---|---|---|---|\n";
    for r in runs {
        let w = &r.wake;
        let (p50, p99, max) = w.summary();
        let part = |v: &[f64]| {
            format!(
                "{:.1} / {:.1} ms",
                super::fleet::pct(v, 50.0),
                v.last().copied().unwrap_or(0.0)
            )
        };
        let _ = writeln!(
            o,
            "| {} | {} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {} | {} | {} | {:.1} ms |",
            r.rows,
            w.all().len(),
            part(&w.inserts),
            part(&w.updates),
            w.missing,
            w.insert_rtt_p50
        );
    }
    o + "\n"
}

fn resources(runs: &[ControllerRun], bench: &ProcStats) -> String {
    let mut o = String::from("### Resources of the daemon process\n\n");
    o += "| rows | peak RSS | RSS at the end | CPU to converge | CPU in total |\n|---|---|---|---|---|\n";
    for r in runs {
        let (c, e) = (&r.daemon_at_conv, &r.daemon_end);
        let _ = writeln!(
            o,
            "| {} | {:.1} MB | {:.1} MB | {:.1} s | {:.1} s |",
            r.rows, e.peak_rss_mb, e.rss_mb, c.cpu_s, e.cpu_s
        );
    }
    let _ = writeln!(
        o,
        "\nThe bench process itself (simulator + bench, not the daemon): peak RSS {:.1} MB, CPU {:.1} s.\n",
        bench.peak_rss_mb, bench.cpu_s
    );
    o
}

fn baseline(base: &[BaselineRun], runs: &[ControllerRun]) -> String {
    if base.is_empty() {
        return "### Naive baseline\n\nNot run.\n\n".into();
    }
    let mut o = String::from("### Naive baseline (sequential job, ticks every 60 s)\n\n");
    o += "| rows | rows deployed | in | per row mean / p50 / max | all rows | 429s | controller | controller speed-up |\n|---|---|---|---|---|---|---|---|\n";
    for b in base {
        let Some(r) = runs.iter().find(|r| r.rows == b.rows) else { continue };
        let total = if b.extrapolated {
            format!("{} (extrapolated: {} × mean)", s(b.total), b.rows)
        } else {
            s(b.total)
        };
        let ctl = conv_time(r);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.2} / {:.2} / {:.2} s | {total} | {} | {} | {:.1}× |",
            b.rows,
            b.deployed,
            s(b.elapsed),
            b.per_row.0,
            b.per_row.1,
            b.per_row.2,
            b.rate_limited,
            s(ctl),
            b.total.as_secs_f64() / ctl.as_secs_f64()
        );
    }
    o + "\n"
}
