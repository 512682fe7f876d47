//! The issue-22 report sections of the fleet runs: the daemon's own statements at rest by
//! name ([`crate::statements`]), next to the `pg_stat_database` transactions (which also count
//! Postgres' own work, prepare-only round trips and other clients of the database); memory by
//! fleet size and the convergence time of the largest fleet against 10,000 rows.

use std::fmt::Write;

use crate::controller::ControllerRun;

/// "Daemon statements at rest" table: one line per fleet.
pub fn table(runs: &[ControllerRun]) -> String {
    let mut o = String::from("### Daemon statements at rest, by statement\n\n");
    o += "From the daemon's `fly_preview_db_statements_total{statement}` over the steady window \
          (the `pg_stat_database` transactions of the same window are in the table above).\n\n";
    o += "| rows | window | statements/s | by statement |\n|---|---|---|---|\n";
    for r in runs {
        if let Some(st) = &r.steady {
            let s = &st.statements;
            let _ = writeln!(
                o,
                "| {} | {:.0} s | {:.3} | {} |",
                r.rows,
                s.window.as_secs_f64(),
                s.per_s(),
                s.list()
            );
        }
    }
    o + "\n"
}

/// Peak RSS target by fleet size (issue 22): 100 MB up to 10,000 rows, 150 MB beyond.
pub fn rss_target_mb(rows: usize) -> f64 {
    if rows <= 10_000 { 100.0 } else { 150.0 }
}

/// The largest fleet's convergence against the 10,000-row one, when both ran.
pub fn scale(runs: &[ControllerRun]) -> String {
    let ten = runs.iter().find(|r| r.rows == 10_000 && r.conv.converged);
    let big = runs.iter().filter(|r| r.rows > 10_000).max_by_key(|r| r.rows);
    let (Some(ten), Some(big)) = (ten, big) else { return String::new() };
    let mut o = String::from("### Fleet size: 10,000 rows against the largest\n\n");
    o += "| rows | converged in | ratio to 10,000 | rows ratio | peak RSS |\n|---|---|---|---|---|\n";
    for r in [ten, big] {
        let _ = writeln!(
            o,
            "| {} | {:.1} s{} | {:.2}× | {:.0}× | {:.1} MB |",
            r.rows,
            r.conv.wall.as_secs_f64(),
            if r.conv.converged { "" } else { " (not converged)" },
            r.conv.wall.as_secs_f64() / ten.conv.wall.as_secs_f64(),
            r.rows as f64 / ten.rows as f64,
            r.daemon_end.peak_rss_mb
        );
    }
    o + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_targets() {
        assert_eq!(rss_target_mb(10_000), 100.0);
        assert_eq!(rss_target_mb(100_000), 150.0);
    }
}
