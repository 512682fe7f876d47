//! Persisted retry delays: `base · 2^attempts` with full jitter, capped. The attempt count
//! lives in the row, so the schedule survives restarts and is shared by all replicas.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling for the retry after `attempts` failures so far (0-based): base·2^attempts, capped.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let factor = 2u32.checked_pow(attempts.min(31)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).unwrap_or(self.cap).min(self.cap)
    }

    /// A delay drawn uniformly from `[0, ceiling]` (full jitter), never below 10 ms so a
    /// broken dependency is not hammered in a tight loop.
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempts).as_millis().max(10) as u64;
        Duration::from_millis(rng.random_range(10..=ceiling.max(10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const B: Backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(300) };

    #[test]
    fn ceiling_doubles_then_caps() {
        assert_eq!(B.ceiling(0), Duration::from_secs(1));
        assert_eq!(B.ceiling(1), Duration::from_secs(2));
        assert_eq!(B.ceiling(5), Duration::from_secs(32));
        assert_eq!(B.ceiling(9), Duration::from_secs(300));
        assert_eq!(B.ceiling(1000), Duration::from_secs(300), "no overflow");
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempts in 0..20 {
            let ds: Vec<Duration> = (0..200).map(|_| B.delay(attempts, &mut rng)).collect();
            assert!(ds.iter().all(|d| *d <= B.ceiling(attempts).max(Duration::from_millis(10))));
            assert!(ds.iter().all(|d| *d >= Duration::from_millis(10)));
            let distinct: std::collections::HashSet<_> = ds.iter().collect();
            assert!(distinct.len() > 50, "full jitter spreads retries (attempt {attempts})");
        }
    }
}
