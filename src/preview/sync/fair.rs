//! The sync lane's bounds, so one preview's syncs cannot cost another preview anything:
//!
//! # Guarantees
//! - at most one exec per row is in flight (the lane's `inflight` set);
//! - one user's rows hold at most [`SyncSettings::per_user`] of the lane's slots at once, so a
//!   user whose syncs hang (the exec runs the tenant's code) leaves the other slots to others;
//! - one row gets at most [`SyncSettings::save_budget`] execs per
//!   [`SyncSettings::save_window`] (a token bucket); saves beyond it coalesce into the latest
//!   revision, tried when the next token is there.
//!
//! # Assumptions
//! The owner of a row never changes (`user_id` is not a steering column). Per replica: two
//! replicas each apply the bounds to what they run.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::SyncSettings;

/// A row's exec tokens.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-user slots and per-row budgets of the lane (single task, no locking).
#[derive(Debug)]
pub(crate) struct Fair {
    per_user: usize,
    budget: f64,
    window: Duration,
    owners: HashMap<Uuid, Uuid>,
    running: HashMap<Uuid, usize>,
    buckets: HashMap<Uuid, Bucket>,
}

impl Fair {
    pub fn new(s: &SyncSettings) -> Self {
        Self {
            per_user: s.per_user.max(1),
            budget: f64::from(s.save_budget),
            window: s.save_window,
            owners: HashMap::new(),
            running: HashMap::new(),
            buckets: HashMap::new(),
        }
    }

    /// Of `ids`, those whose owner is not known yet.
    pub fn unknown(&self, ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
        ids.into_iter().filter(|id| !self.owners.contains_key(id)).collect()
    }

    /// Remembers `row`'s owner.
    pub fn learn(&mut self, row: Uuid, user: Uuid) {
        self.owners.insert(row, user);
    }

    /// The user `row` counts against: its owner, or the row itself while unknown (a row the
    /// database could not name an owner for is tried alone; its claim decides).
    fn user(&self, row: Uuid) -> Uuid {
        self.owners.get(&row).copied().unwrap_or(row)
    }

    /// Whether `row`'s user already has every slot it may hold.
    pub fn user_full(&self, row: Uuid) -> bool {
        self.running.get(&self.user(row)).copied().unwrap_or(0) >= self.per_user
    }

    /// Takes one of `row`'s exec tokens, or says when the next one is there.
    pub fn take(&mut self, row: Uuid, now: Instant) -> Result<(), Instant> {
        if self.budget <= 0.0 || self.window.is_zero() {
            return Ok(());
        }
        let rate = self.budget / self.window.as_secs_f64();
        let b = self.buckets.entry(row).or_insert(Bucket { tokens: self.budget, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(self.budget);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        Err(now + Duration::from_secs_f64((1.0 - b.tokens) / rate))
    }

    pub fn started(&mut self, row: Uuid) {
        *self.running.entry(self.user(row)).or_default() += 1;
    }

    pub fn finished(&mut self, row: Uuid) {
        let user = self.user(row);
        if let Some(n) = self.running.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(&user);
            }
        }
    }

    /// Forgets rows the lane no longer tracks (`keep` false) once their budget is full again:
    /// memory follows the rows being synced, not every row ever saved.
    pub fn prune(&mut self, now: Instant, keep: impl Fn(&Uuid) -> bool) {
        let rate =
            if self.window.is_zero() { 0.0 } else { self.budget / self.window.as_secs_f64() };
        let budget = self.budget;
        self.buckets.retain(|id, b| {
            let full = b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate;
            keep(id) || full < budget
        });
        let buckets = &self.buckets;
        self.owners.retain(|id, _| keep(id) || buckets.contains_key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fair(per_user: usize, save_budget: u32) -> Fair {
        let s = SyncSettings {
            per_user,
            save_budget,
            save_window: Duration::from_secs(60),
            ..SyncSettings::default()
        };
        Fair::new(&s)
    }

    #[test]
    fn one_user_holds_at_most_its_slots() {
        let mut f = fair(2, 0);
        let (alice, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let rows: Vec<Uuid> = (10..14).map(Uuid::from_u128).collect();
        for r in &rows {
            f.learn(*r, alice);
        }
        let b1 = Uuid::from_u128(20);
        f.learn(b1, bob);
        f.started(rows[0]);
        assert!(!f.user_full(rows[1]));
        f.started(rows[1]);
        assert!(f.user_full(rows[2]) && f.user_full(rows[3]), "alice has her two slots");
        assert!(!f.user_full(b1), "bob is not held back by alice");
        f.finished(rows[0]);
        assert!(!f.user_full(rows[2]));
        // A row with no known owner counts as its own user.
        let stray = Uuid::from_u128(99);
        assert_eq!(f.unknown([stray, b1]), vec![stray]);
        assert!(!f.user_full(stray));
    }

    #[tokio::test(start_paused = true)]
    async fn saves_beyond_the_budget_wait_for_the_next_token() {
        let mut f = fair(4, 3);
        let row = Uuid::from_u128(5);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.take(row, t0), Ok(()));
        }
        let next = f.take(row, t0).unwrap_err();
        assert_eq!(next - t0, Duration::from_secs(20), "3 per minute: one every 20 s");
        assert!(f.take(row, next).is_ok());
        assert!(f.take(Uuid::from_u128(6), t0).is_ok(), "another row has its own budget");
        assert!(fair(4, 0).take(row, t0).is_ok(), "0 = no limit");
    }

    #[tokio::test(start_paused = true)]
    async fn prune_forgets_untracked_rows_with_full_budgets() {
        let mut f = fair(4, 3);
        let t0 = Instant::now();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        for r in [a, b] {
            f.learn(r, Uuid::from_u128(7));
            f.take(r, t0).unwrap();
        }
        f.prune(t0, |_| false);
        assert_eq!(f.buckets.len(), 2, "budgets still being repaid are kept");
        f.prune(t0 + Duration::from_secs(60), |id| *id == a);
        assert_eq!((f.buckets.len(), f.owners.len()), (1, 1));
        assert!(f.owners.contains_key(&a));
    }
}
