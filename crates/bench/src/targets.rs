//! The throughput targets (wake latency, convergence, Fly calls per app, 429s, idle load,
//! memory, speed-up over the baseline), checked against one bench run.

use std::fmt::Write as _;

use super::baseline::BaselineRun;
use super::controller::ControllerRun;

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

struct Line {
    target: String,
    value: String,
    ok: Option<bool>,
}

fn per_run(r: &ControllerRun) -> Vec<Line> {
    let n = r.rows;
    let (_, p99, _) = r.wake.summary();
    let conv = r.conv.projected.unwrap_or(r.conv.wall).as_secs_f64();
    let ratio = conv / r.bound.as_secs_f64();
    let calls = (!r.calls.wrapped).then_some(r.calls.per_app.0);
    let mut v = vec![
        Line {
            target: format!("wake latency p99 ≤ 50 ms ({n} rows)"),
            value: format!("{p99:.1} ms"),
            ok: Some(p99 <= 50.0 && r.wake.missing == 0),
        },
        Line {
            target: format!("converge within 1.25× the lower bound ({n} rows)"),
            value: format!("{ratio:.2}×{}", if r.conv.converged { "" } else { " (projected)" }),
            ok: Some(r.conv.converged && ratio <= 1.25),
        },
        Line {
            target: format!("≤ 6 Fly calls per app, happy path ({n} rows)"),
            value: calls
                .map_or("log wrapped".into(), |c| format!("{c:.2} (max {:.0})", r.calls.per_app.2)),
            ok: calls.map(|c| c <= 6.0),
        },
        Line {
            target: format!("0 self-caused 429s ({n} rows)"),
            value: r.sim.rate_limited_total.to_string(),
            ok: Some(r.sim.rate_limited_total == 0),
        },
    ];
    v.extend(idle_and_memory(r));
    v
}

fn idle_and_memory(r: &ControllerRun) -> [Line; 2] {
    let n = r.rows;
    let steady = r.steady.as_ref();
    let idle = Line {
        target: format!("at rest ≤ 0.2 daemon statements/s and ≤ 0.1 Fly calls/s ({n} rows)"),
        value: steady.map_or("—".into(), |s| {
            format!(
                "{:.3} statements/s ({:.2} pg transactions/s), {:.3} calls/s",
                s.statements.per_s(),
                s.db_per_s,
                s.fly_per_s
            )
        }),
        ok: steady.map(|s| s.fly_per_s <= 0.1 && s.statements.per_s() <= 0.2),
    };
    let (rss, max) = (r.daemon_end.peak_rss_mb, super::idle::rss_target_mb(n));
    let memory = Line {
        target: format!("peak RSS ≤ {max:.0} MB ({n} rows)"),
        value: format!("{rss:.1} MB"),
        ok: Some(rss <= max),
    };
    [idle, memory]
}

fn vs_baseline(b: &BaselineRun, runs: &[ControllerRun]) -> Option<Line> {
    let r = runs.iter().find(|r| r.rows == b.rows)?;
    let ctl = r.conv.projected.unwrap_or(r.conv.wall).as_secs_f64();
    let x = b.total.as_secs_f64() / ctl;
    Some(Line {
        target: format!("≥ 50× faster than the baseline ({} rows)", b.rows),
        value: format!("{x:.1}×{}", if b.extrapolated { " (baseline extrapolated)" } else { "" }),
        ok: Some(x >= 50.0),
    })
}

pub fn table(runs: &[ControllerRun], base: &[BaselineRun]) -> String {
    let mut lines: Vec<Line> = runs.iter().flat_map(per_run).collect();
    lines.extend(base.iter().filter_map(|b| vs_baseline(b, runs)));
    let mut o = String::from("### Targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    for l in lines {
        let _ = writeln!(o, "| {} | {} | {} |", l.target, l.value, verdict(l.ok));
    }
    o + "\n"
}
