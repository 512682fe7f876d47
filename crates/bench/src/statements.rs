//! The daemon's own database statements, by name, from its `/metrics`
//! (`fly_preview_db_statements_total{statement}`), and their difference between two scrapes.

use std::collections::BTreeMap;
use std::time::Duration;

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
}
