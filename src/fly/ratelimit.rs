//! Client-side token buckets keyed by (action, identifier), matching Fly's published limits
//! so the controller slows itself down instead of collecting 429s.
//!
//! Reservation semantics: a caller always takes a token, possibly driving the bucket
//! negative, and sleeps until its token would have existed. Concurrent callers therefore
//! queue fairly without holding the lock across an `.await`. Buckets that have refilled
//! completely carry no information and are evicted, so memory stays proportional to the
//! identifiers used in the last few seconds, not to the number of apps ever seen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Sustained rate and burst size of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub per_second: f64,
    pub burst: f64,
}

/// Sustained rates run 10 % under Fly's published figures: with identical buckets on both
/// sides, network jitter alone would push a drained bucket's next request into a 429. The
/// per-action burst also keeps one token in hand (2 of Fly's 3): sequential calls on one key
/// (the org-wide listings' pages) arriving bunched up by a loaded host stay within Fly's
/// bucket. The happy path never needs more than 2 calls of one action on one key.
impl Limits {
    /// Fly's default: 1 req/s per action per id, bursts up to 3.
    pub const PER_ACTION: Limits = Limits { per_second: 0.9, burst: 2.0 };
    /// Get Machine: 5 req/s, bursts up to 10.
    pub const GET_MACHINE: Limits = Limits { per_second: 4.5, burst: 10.0 };
    /// App deletes, one global bucket: any 60 s window admits at most 10 + 90 = 100.
    pub const APP_DELETES: Limits = Limits { per_second: 1.5, burst: 10.0 };
}

/// Below this many buckets no sweep is attempted.
const MIN_SWEEP: usize = 1024;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limits: Limits,
}

impl Bucket {
    fn new(limits: Limits, now: Instant) -> Self {
        Bucket { tokens: limits.burst, last: now, limits }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limits.per_second).min(self.limits.burst);
        self.last = now;
    }

    /// Take one token; the returned duration is how long until it is really available.
    fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limits.per_second)
        }
    }

    /// Take one token if it is there within `max`; otherwise take nothing and say how long
    /// until it would be.
    fn reserve_within(&mut self, now: Instant, max: Duration) -> Result<Duration, Duration> {
        let wait = self.reserve(now);
        if wait <= max {
            return Ok(wait);
        }
        self.tokens += 1.0;
        Err(wait)
    }

    /// Full again: indistinguishable from a fresh bucket, safe to forget.
    fn is_idle(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.limits.per_second >= self.limits.burst
    }
}

#[derive(Debug)]
struct State {
    buckets: HashMap<(&'static str, String), Bucket>,
    sweep_at: usize,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new() -> Self {
        RateLimiter { state: Mutex::new(State { buckets: HashMap::new(), sweep_at: MIN_SWEEP }) }
    }

    /// Reserve a token for `(action, key)` at `now`; returns the required wait.
    pub fn reserve(
        &self,
        action: &'static str,
        key: &str,
        limits: Limits,
        now: Instant,
    ) -> Duration {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.buckets.len() >= st.sweep_at {
            st.buckets.retain(|_, b| !b.is_idle(now));
            st.sweep_at = (st.buckets.len() * 2).max(MIN_SWEEP);
        }
        let bucket =
            st.buckets.entry((action, key.to_owned())).or_insert_with(|| Bucket::new(limits, now));
        bucket.reserve(now)
    }

    /// Like [`RateLimiter::reserve`], but takes the token only if it is there within `max`:
    /// `Err(wait)` = not taken, it would have been there after `wait`.
    pub fn reserve_within(
        &self,
        action: &'static str,
        key: &str,
        limits: Limits,
        now: Instant,
        max: Duration,
    ) -> Result<Duration, Duration> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let bucket =
            st.buckets.entry((action, key.to_owned())).or_insert_with(|| Bucket::new(limits, now));
        bucket.reserve_within(now, max)
    }

    /// Wait for a token. Returns `true` when the caller had to wait (was throttled).
    pub async fn acquire(&self, action: &'static str, key: &str, limits: Limits) -> bool {
        let wait = self.reserve(action, key, limits, Instant::now());
        if wait.is_zero() {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approx(d: Duration, secs: f64) -> bool {
        (d.as_secs_f64() - secs).abs() < 0.001
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_one_per_second() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        let l = Limits::PER_ACTION;
        for _ in 0..2 {
            assert_eq!(rl.reserve("start", "m1", l, t0), Duration::ZERO);
        }
        assert!(approx(rl.reserve("start", "m1", l, t0), 1.0 / 0.9));
        assert!(approx(rl.reserve("start", "m1", l, t0), 2.0 / 0.9));
        // Another id or another action has its own bucket.
        assert_eq!(rl.reserve("start", "m2", l, t0), Duration::ZERO);
        assert_eq!(rl.reserve("stop", "m1", l, t0), Duration::ZERO);
        // After 3.4 s the debt (-2) is repaid and one token (3.4 * 0.9 = 3.06) is back.
        assert_eq!(rl.reserve("start", "m1", l, t0 + Duration::from_millis(3400)), Duration::ZERO);
        assert!(rl.reserve("start", "m1", l, t0 + Duration::from_millis(3400)) > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn get_machine_and_global_delete_limits() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(rl.reserve("get", "m", Limits::GET_MACHINE, t0), Duration::ZERO);
        }
        assert!(approx(rl.reserve("get", "m", Limits::GET_MACHINE, t0), 1.0 / 4.5));
        for _ in 0..10 {
            assert_eq!(rl.reserve("delete_app", "", Limits::APP_DELETES, t0), Duration::ZERO);
        }
        let wait = rl.reserve("delete_app", "", Limits::APP_DELETES, t0);
        assert!(wait > Duration::from_millis(600) && wait < Duration::from_millis(700), "{wait:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn sixty_second_window_admits_at_most_100_deletes() {
        let mut b = Bucket::new(Limits::APP_DELETES, Instant::now());
        let t0 = Instant::now();
        let mut admitted = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(60) {
            let wait = b.reserve(now);
            now += wait;
            if now < t0 + Duration::from_secs(60) {
                admitted += 1;
            }
        }
        assert!(admitted <= 100, "{admitted}");
        assert!(admitted >= 99, "{admitted}");
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_sleeps_and_reports_throttling() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(!rl.acquire("create", "app", Limits::PER_ACTION).await);
        }
        assert!(rl.acquire("create", "app", Limits::PER_ACTION).await);
        assert!(approx(Instant::now() - t0, 1.0 / 0.9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_allowed_takes_no_token() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        let (l, max) = (Limits::APP_DELETES, Duration::from_secs(1));
        for _ in 0..10 {
            assert_eq!(rl.reserve_within("delete_app", "", l, t0, max), Ok(Duration::ZERO));
        }
        let one = rl.reserve_within("delete_app", "", l, t0, max).unwrap();
        assert!(one > Duration::ZERO && one <= max, "{one:?}");
        let refused = rl.reserve_within("delete_app", "", l, t0, max).unwrap_err();
        assert!(refused > max, "{refused:?}");
        // Refusals leave no debt: the same wait again, however often it is asked.
        for _ in 0..100 {
            assert_eq!(rl.reserve_within("delete_app", "", l, t0, max), Err(refused));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_buckets_are_evicted() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        let mut max_len = 0;
        // 100 rounds, 10 s apart, each touching 1000 ids never seen before: 100k ids total.
        for round in 0..100u64 {
            let now = t0 + Duration::from_secs(10 * round);
            for i in 0..1000 {
                rl.reserve("get_app", &format!("app-{round}-{i}"), Limits::PER_ACTION, now);
                max_len = max_len.max(rl.len());
            }
        }
        assert!(max_len <= 2 * MIN_SWEEP + 1000, "{max_len}");
    }
}
