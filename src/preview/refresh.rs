//! When the gauges read from the database (queue statistics, the fleet's machines and cost,
//! tombstones pending) are worth a statement: at most every `stats_interval` while something
//! happens, and at least every `stats_max_age` at rest.
//!
//! # Guarantees
//! Nothing changes the rows these gauges count without a pass, a notification (every write to a
//! row by anyone else NOTIFYs), a drift repair or a teardown being counted in the metrics, so a
//! refresh is skipped only when none of those moved since the last one. The first tick always
//! refreshes.
//! # Caveats
//! `queue_lag` and `due_rows` are time-dependent: a row whose retry falls due at rest is seen
//! by the next refresh after its pass (the pass counts as activity), not before it.

use std::time::Duration;

use tokio::time::Instant;

use crate::ops::metrics::{Metrics, RESULTS, TEARDOWN_RESULTS};

/// Counts everything that can change what the gauges show.
fn activity(m: &Metrics) -> u64 {
    let passes: u64 = RESULTS.iter().map(|r| m.reconciles.with_label_values(&[r]).get()).sum();
    let teardowns: u64 =
        TEARDOWN_RESULTS.iter().map(|r| m.teardowns.with_label_values(&[r]).get()).sum();
    passes + teardowns + m.notifications.get() + m.drift_repairs.get()
}

/// A refresh gate: ask [`Refresh::due`] on every tick of `stats_interval`.
pub struct Refresh {
    max_age: Duration,
    seen: Option<(u64, Instant)>,
}

impl Refresh {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, seen: None }
    }

    /// True when the gauges should be read now (and remembers that they were).
    pub fn due(&mut self, m: &Metrics) -> bool {
        let now = (activity(m), Instant::now());
        let due = self.seen.is_none_or(|(n, at)| n != now.0 || at.elapsed() >= self.max_age);
        if due {
            self.seen = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refreshes_on_activity_or_age_only() {
        let m = Metrics::new();
        let mut r = Refresh::new(Duration::from_secs(300));
        assert!(r.due(&m), "the first tick refreshes");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!r.due(&m), "nothing happened");
        m.notifications.inc();
        assert!(r.due(&m), "a notification");
        assert!(!r.due(&m));
        m.reconciles.with_label_values(&["ok"]).inc();
        assert!(r.due(&m), "a pass");
        m.teardowns.with_label_values(&["destroyed"]).inc();
        assert!(r.due(&m), "a teardown");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(!r.due(&m));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(r.due(&m), "at the latest after max_age");
    }
}
