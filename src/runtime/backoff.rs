//! The one backoff of every loop: `base · 2^attempts`, capped, with full jitter for retries
//! that many callers share (rows, Fly requests) and without it for a single loop's pauses
//! (the notification listener's reconnects, machine waits, sync retries). For rows the attempt
//! count lives in the row, so the schedule survives restarts and is shared by all replicas;
//! for Fly requests [`Backoff::retries`] feeds `backon`.

use std::time::Duration;

use rand::Rng;

/// `base · 2^attempts`, capped at `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay (attempt 0).
    pub base: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling for the retry after `attempts` failures so far (0-based): base·2^attempts, capped.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let factor = 2u32.checked_pow(attempts.min(31)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).unwrap_or(self.cap).min(self.cap)
    }

    /// A delay drawn uniformly from `[10 ms, ceiling]` (full jitter, never below 10 ms) so a
    /// broken dependency is not hammered in a tight loop.
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempts).as_millis().max(10) as u64;
        Duration::from_millis(rng.random_range(10..=ceiling.max(10)))
    }

    /// At most `times` jittered delays, for `backon`'s retry loop (`.retry(b.retries(3))`).
    pub fn retries(self, times: usize) -> Retries {
        Retries { backoff: self, attempt: 0, times }
    }
}

/// The delays of [`Backoff::retries`].
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    backoff: Backoff,
    attempt: u32,
    times: usize,
}

impl Iterator for Retries {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempt as usize >= self.times {
            return None;
        }
        let d = self.backoff.delay(self.attempt, &mut rand::rng());
        self.attempt += 1;
        Some(d)
    }
}

impl backon::BackoffBuilder for Backoff {
    type Backoff = Retries;

    /// Three retries, like every idempotent Fly request.
    fn build(self) -> Retries {
        self.retries(3)
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
    fn retries_are_bounded_and_jittered() {
        let ds: Vec<Duration> = B.retries(3).collect();
        assert_eq!(ds.len(), 3);
        assert!(ds.iter().zip(0..).all(|(d, n)| *d <= B.ceiling(n)), "{ds:?}");
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
