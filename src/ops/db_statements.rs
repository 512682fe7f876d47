//! `fly_preview_db_statements_total{statement}`: the database statements this process sent,
//! by the fixed name of the statement (`src/store/sql/<name>.sql`, or a short name given where
//! the text is inline). It makes the daemon's own database load attributable (the bench reads
//! it at rest) without `pg_stat_statements`.
//!
//! # Guarantees
//! The label set is the fixed set of statement names in the code: no per-row or per-app value
//! ever becomes a label. Counted when the statement is issued (successful or not).
//! # Caveats
//! One counter per process, shared by every `Metrics` value (each registry exports the
//! same series): statements are issued by the store, which holds no
//! metrics handle. Tests that read it compare differences, never absolute values.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};

use super::prom::bug;

pub const NAME: &str = "fly_preview_db_statements_total";

static STATEMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let opts = Opts::new(NAME, "Database statements sent by this process, by statement name.");
    IntCounterVec::new(opts, &["statement"]).unwrap_or_else(|e| bug(NAME, e))
});

/// Counts one statement named `name` (a fixed name from the code).
pub fn count(name: &'static str) {
    STATEMENTS.with_label_values(&[name]).inc();
}

/// How many statements named `name` this process has sent.
pub fn sent(name: &str) -> u64 {
    STATEMENTS.with_label_values(&[name]).get()
}

/// The collector, for a registry to export.
pub(crate) fn collector() -> Box<dyn prometheus::core::Collector> {
    Box::new(STATEMENTS.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_name_and_exports() {
        let before = sent("unit_test_statement");
        count("unit_test_statement");
        count("unit_test_statement");
        assert_eq!(sent("unit_test_statement"), before + 2);
        let r = prometheus::Registry::new();
        r.register(collector()).unwrap();
        let families = r.gather();
        let exported = families.iter().find(|f| f.name() == NAME).unwrap();
        let labels: Vec<&str> = exported
            .get_metric()
            .iter()
            .flat_map(|m| m.get_label().iter().map(|l| l.value()))
            .collect();
        assert!(labels.contains(&"unit_test_statement"), "{labels:?}");
    }
}
