//! Fly's published rate limits as token buckets per (action, identifier).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::fault::Action;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by action and machine id / app name / org slug.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: HashMap<(Action, String), Bucket>,
}

/// (sustained requests per second, burst) for an action.
pub(crate) fn limit_for(action: Action) -> (f64, f64) {
    match action {
        // "Get Machine: 5 req/s, bursts up to 10"; single-resource reads of apps alike.
        Action::GetMachine | Action::GetApp => (5.0, 10.0),
        // "App deletions: 100 per minute".
        Action::DeleteApp => (100.0 / 60.0, 100.0),
        // "1 req/s sustained, short bursts up to 3 req/s" per action per identifier.
        _ => (1.0, 3.0),
    }
}

impl RateLimiter {
    /// Takes one token; `false` means the request must be answered with 429.
    pub(crate) fn allow(&mut self, action: Action, key: &str, now: Instant) -> bool {
        let (rate, burst) = limit_for(action);
        let bucket = self
            .buckets
            .entry((action, key.to_owned()))
            .or_insert(Bucket { tokens: burst, last: now });
        let refill = now.saturating_duration_since(bucket.last).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 - 1e-9 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets idle long enough to be full again (keeps memory bounded in long demos).
    pub(crate) fn prune(&mut self, now: Instant) {
        if self.buckets.len() > 10_000 {
            let idle = Duration::from_secs(120);
            self.buckets.retain(|_, b| now.saturating_duration_since(b.last) < idle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill() {
        let mut limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.allow(Action::StartMachine, "m1", now));
        }
        assert!(!limiter.allow(Action::StartMachine, "m1", now));
        assert!(limiter.allow(Action::StartMachine, "m2", now), "buckets are per id");
        assert!(limiter.allow(Action::StopMachine, "m1", now), "buckets are per action");
        assert!(limiter.allow(Action::StartMachine, "m1", now + Duration::from_secs(1)));
        for _ in 0..100 {
            assert!(limiter.allow(Action::DeleteApp, "personal", now));
        }
        assert!(!limiter.allow(Action::DeleteApp, "personal", now));
    }
}
