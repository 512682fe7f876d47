//! The daemon's own database statements, by name, from its `/metrics`
//! (`fly_preview_db_statements_total{statement}`): what it sends at rest, attributed, next to
//! the `pg_stat_database` transactions (which also count Postgres' own work, prepare-only round
//! trips and other clients of the database). Also the issue-22 figures that compare fleets:
//! memory by fleet size and the convergence time of the largest fleet against 10,000 rows.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::controller::ControllerRun;

const STATEMENTS: &str = "fly_preview_db_statements_total";

/// Statement name → statements sent so far, from one scrape.
pub fn scrape(metrics: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{STATEMENTS}{{statement=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (name, value) = rest.split_once("\"} ")?;
            Some((name.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The statements sent between two scrapes.
#[derive(Debug, Clone, Default)]
pub struct Statements {
    pub window: Duration,
    /// (name, statements in the window), most first; names with none left out.
    pub by_name: Vec<(String, u64)>,
}

impl Statements {
    pub fn between(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>, window: Duration) -> Self {
        let mut by_name: Vec<(String, u64)> = b
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(a.get(k).copied().unwrap_or(0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        by_name.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        Self { window, by_name }
    }

    pub fn total(&self) -> u64 {
        self.by_name.iter().map(|(_, n)| n).sum()
    }

    pub fn per_s(&self) -> f64 {
        self.total() as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// `claim 4 (0.07/s), next_due 4 (0.07/s)`.
    pub fn list(&self) -> String {
        let secs = self.window.as_secs_f64().max(1e-9);
        let items: Vec<String> = self
            .by_name
            .iter()
            .map(|(k, n)| format!("`{k}` {n} ({:.3}/s)", *n as f64 / secs))
            .collect();
        if items.is_empty() { "none".into() } else { items.join(", ") }
    }
}

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
    fn scrapes_and_diffs_by_statement() {
        let a = scrape(
            "# TYPE fly_preview_db_statements_total counter\n\
             fly_preview_db_statements_total{statement=\"claim\"} 10\n\
             fly_preview_db_statements_total{statement=\"stats\"} 2\n\
             fly_preview_reconciles_total{result=\"ok\"} 5\n",
        );
        assert_eq!(a.get("claim"), Some(&10));
        assert_eq!(a.len(), 2);
        let b = scrape(
            "fly_preview_db_statements_total{statement=\"claim\"} 14\n\
             fly_preview_db_statements_total{statement=\"stats\"} 2\n\
             fly_preview_db_statements_total{statement=\"fleet/by_state\"} 1\n",
        );
        let s = Statements::between(&a, &b, Duration::from_secs(10));
        assert_eq!(s.by_name, vec![("claim".to_owned(), 4), ("fleet/by_state".to_owned(), 1)]);
        assert_eq!(s.total(), 5);
        assert!((s.per_s() - 0.5).abs() < 1e-9);
        assert!(s.list().starts_with("`claim` 4 (0.400/s)"), "{}", s.list());
    }

    #[test]
    fn rss_targets() {
        assert_eq!(rss_target_mb(10_000), 100.0);
        assert_eq!(rss_target_mb(100_000), 150.0);
    }
}
