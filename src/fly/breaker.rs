//! A circuit breaker over the outcomes of this replica's Fly API calls: the shared view of
//! whether Fly is failing platform-wide.
//!
//! Every answered request is a signal: a 5xx, a timeout or a lost connection is a platform
//! failure; any other answer (2xx, 404, 422, 401 …) proves Fly is up. After
//! [`TRIP_AFTER`] platform failures in a row the breaker opens: the transport then refuses
//! every request without sending it ([`FlyError::Unavailable`])
//! except probes, which the controller sends at most once a second. The first probe that
//! Fly answers closes it again. 429s say nothing about Fly's health and are ignored, and so
//! does an exec that outlives its deadline (a 408 `deadline_exceeded` or no answer in time):
//! the command runs the tenant's code inside its machine, so its hanging is that preview's
//! failure, never Fly's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::FlyError;

/// Platform failures in a row that open the breaker. Eight in a row is one in 10⁸ at a 10 %
/// random failure rate, and a few seconds into a real outage.
pub const TRIP_AFTER: u32 = 8;

/// What one finished request says about Fly's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Fly answered (whatever the status).
    Answered,
    /// 5xx, timeout, lost connection.
    PlatformFailure,
    /// Says nothing about health (429, a `/wait` that timed out as asked).
    Neutral,
}

impl Signal {
    /// The signal of a failed request.
    pub fn of(e: &FlyError, wait: bool) -> Signal {
        match e {
            FlyError::RateLimited { .. } | FlyError::Unavailable(_) => Signal::Neutral,
            // `/wait` answers 408 when the machine did not get there in time: Fly is fine.
            FlyError::Timeout(i) if wait && i.status == Some(408) => Signal::Answered,
            FlyError::Transient(_) | FlyError::Timeout(_) => Signal::PlatformFailure,
            FlyError::AmbiguousCreate(i) => match i.status {
                None | Some(408) | Some(500..=599) => Signal::PlatformFailure,
                Some(_) => Signal::Answered,
            },
            _ => Signal::Answered,
        }
    }

    /// The signal of a failed exec: a timeout says nothing about Fly (the command is the
    /// tenant's and may hang); anything else counts as for any other call.
    pub fn of_exec(e: &FlyError) -> Signal {
        match e {
            FlyError::Timeout(_) => Signal::Neutral,
            _ => Signal::of(e, false),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    failures_in_a_row: u32,
    open: bool,
}

/// The breaker; one per [`FlyClient`](super::FlyClient), shared by its clones.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    open_tx: watch::Sender<bool>,
    trips: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            open_tx: watch::Sender::new(false),
            trips: AtomicU64::new(0),
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may be sent: always while closed; only probes while open.
    pub fn admit(&self, probe: bool) -> bool {
        probe || !self.lock().open
    }

    /// True while Fly is considered down.
    pub fn is_open(&self) -> bool {
        self.lock().open
    }

    /// Changes of the open flag (`true` = open).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.open_tx.subscribe()
    }

    /// How many times the breaker has opened.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Records the signal of one finished request; true when it opened the breaker.
    pub fn record(&self, signal: Signal) -> bool {
        let mut s = self.lock();
        let was_open = s.open;
        match signal {
            Signal::Neutral => return false,
            Signal::Answered => {
                s.failures_in_a_row = 0;
                s.open = false;
            }
            Signal::PlatformFailure => {
                s.failures_in_a_row = s.failures_in_a_row.saturating_add(1);
                if s.failures_in_a_row >= TRIP_AFTER {
                    s.open = true;
                }
            }
        }
        let open = s.open;
        drop(s);
        self.open_tx.send_if_modified(|v| std::mem::replace(v, open) != open);
        let tripped = open && !was_open;
        if tripped {
            self.trips.fetch_add(1, Ordering::Relaxed);
        }
        tripped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::ErrorInfo;

    #[test]
    fn opens_after_failures_in_a_row_and_closes_on_any_answer() {
        let b = Breaker::default();
        let mut rx = b.subscribe();
        for _ in 0..TRIP_AFTER - 1 {
            b.record(Signal::PlatformFailure);
        }
        b.record(Signal::Answered);
        for _ in 0..TRIP_AFTER - 1 {
            b.record(Signal::PlatformFailure);
        }
        assert!(!b.is_open() && b.admit(false));
        assert!(!b.record(Signal::Neutral));
        assert!(b.record(Signal::PlatformFailure), "this one opened it");
        assert!(!b.record(Signal::PlatformFailure), "already open");
        assert!(b.is_open() && !b.admit(false) && b.admit(true));
        assert_eq!(b.trips(), 1);
        assert!(rx.has_changed().unwrap() && *rx.borrow_and_update());
        b.record(Signal::Answered);
        assert!(!b.is_open() && !*rx.borrow_and_update());
    }

    #[test]
    fn signals() {
        let info = |status| ErrorInfo { status, ..ErrorInfo::default() };
        assert_eq!(
            Signal::of(&FlyError::Transient(info(Some(503))), false),
            Signal::PlatformFailure
        );
        assert_eq!(Signal::of(&FlyError::Timeout(info(None)), true), Signal::PlatformFailure);
        assert_eq!(Signal::of(&FlyError::Timeout(info(Some(408))), true), Signal::Answered);
        assert_eq!(Signal::of(&FlyError::NotFound(info(Some(404))), false), Signal::Answered);
        assert_eq!(
            Signal::of(&FlyError::RateLimited { retry_after: None, info: info(Some(429)) }, false),
            Signal::Neutral
        );
        assert_eq!(
            Signal::of(&FlyError::AmbiguousCreate(info(Some(502))), false),
            Signal::PlatformFailure
        );
    }

    #[test]
    fn a_hanging_exec_is_the_tenants_not_flys() {
        let info = |status| ErrorInfo { status, ..ErrorInfo::default() };
        let b = Breaker::default();
        for status in [Some(408), None] {
            let e = FlyError::Timeout(info(status));
            assert_eq!(Signal::of_exec(&e), Signal::Neutral);
            for _ in 0..TRIP_AFTER * 4 {
                b.record(Signal::of_exec(&e));
            }
        }
        assert!(!b.is_open() && b.trips() == 0);
        let e = FlyError::Transient(info(Some(503)));
        assert_eq!(Signal::of_exec(&e), Signal::PlatformFailure, "a 5xx is still Fly's");
    }
}
