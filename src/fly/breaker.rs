//! A circuit breaker over the outcomes of this replica's Fly API calls: the shared view of
//! whether Fly is failing platform-wide.
//!
//! Every answered request is a signal: a 5xx, a timeout or a lost connection is a platform
//! failure; any other answer (2xx, 404, 422, 401 …) proves Fly is up. After
//! [`TRIP_AFTER`] platform failures in a row the breaker opens: the transport then refuses
//! every request without sending it ([`FlyError::Unavailable`])
//! except probes, which the controller sends at most once a second. The first probe that
//! Fly answers closes it again. 429s say nothing about Fly's health and are ignored.

use std::sync::Mutex;

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
}

impl Default for Breaker {
    fn default() -> Self {
        Self { state: Mutex::new(State::default()), open_tx: watch::Sender::new(false) }
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

    /// Records the signal of one finished request.
    pub fn record(&self, signal: Signal) {
        let mut s = self.lock();
        match signal {
            Signal::Neutral => return,
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
        b.record(Signal::Neutral);
        b.record(Signal::PlatformFailure);
        assert!(b.is_open() && !b.admit(false) && b.admit(true));
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
}
