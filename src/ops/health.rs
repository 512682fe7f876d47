//! Liveness and readiness state shared by the loops and the admin server.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// Liveness fails only if the main loop stops beating for this long (never because the
/// database or Fly is down: an outage there must not become a restart storm).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Health {
    db_ok: AtomicBool,
    listener_up: AtomicBool,
    first_sync: AtomicBool,
    shutting_down: AtomicBool,
    heartbeat_ms: AtomicI64,
    /// A condition that blocks all work (e.g. Fly rejects the token), and when it was last logged.
    blocked: Mutex<Option<(&'static str, i64)>>,
    /// Work continues but a dependency is impaired (Fly failing platform-wide).
    degraded: Mutex<Option<&'static str>>,
    /// Ready, but configured against advice (e.g. a superuser role); shown on `/readyz`.
    warning: Mutex<Option<String>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Health {
    pub fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }
    pub fn set_db(&self, ok: bool) {
        self.db_ok.store(ok, Ordering::Relaxed);
    }
    pub fn set_listener(&self, up: bool) {
        self.listener_up.store(up, Ordering::Relaxed);
    }
    pub fn synced(&self) {
        self.first_sync.store(true, Ordering::Relaxed);
    }
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Sets or clears the condition that blocks all work. Logged when it starts, at most once
    /// a minute while it lasts, and when it clears.
    pub fn set_blocked(&self, condition: Option<&'static str>) {
        let mut b = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        match (condition, b.as_mut()) {
            (Some(c), Some((old, logged))) if *old == c => {
                if now - *logged >= 60_000 {
                    tracing::error!(
                        condition = c,
                        "the controller is blocked; no rows are touched"
                    );
                    *logged = now;
                }
            }
            (Some(c), _) => {
                tracing::error!(condition = c, "the controller is blocked; no rows are touched");
                *b = Some((c, now));
            }
            (None, Some((c, _))) => {
                tracing::info!(condition = *c, "condition cleared; resuming work");
                *b = None;
            }
            (None, None) => {}
        }
    }

    /// Sets or clears a degradation (logged by the caller on change).
    pub fn set_degraded(&self, why: Option<&'static str>) {
        *self.degraded.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// A standing configuration warning for `/readyz` (ready, yet worth fixing).
    pub fn set_warning(&self, warning: Option<String>) {
        *self.warning.lock().unwrap_or_else(|p| p.into_inner()) = warning;
    }

    pub fn warning(&self) -> Option<String> {
        self.warning.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current degradation, if any.
    pub fn degraded(&self) -> Option<&'static str> {
        *self.degraded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The condition blocking all work, if any.
    pub fn blocked(&self) -> Option<&'static str> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner()).map(|(c, _)| c)
    }

    /// `/healthz`: the process and its main loop are alive.
    pub fn live(&self) -> bool {
        let last = self.heartbeat_ms.load(Ordering::Relaxed);
        last > 0 && now_ms() - last < STALE_AFTER.as_millis() as i64
    }

    /// `/readyz`: database reachable, listener up, first sync done, not blocked, not
    /// degraded, not shutting down.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err("shutting down");
        }
        if let Some(c) = self.blocked() {
            return Err(c);
        }
        if let Some(d) = self.degraded() {
            return Err(d);
        }
        if !self.first_sync.load(Ordering::Relaxed) {
            return Err("first sync not done");
        }
        if !self.db_ok.load(Ordering::Relaxed) {
            return Err("database unreachable");
        }
        if !self.listener_up.load(Ordering::Relaxed) {
            return Err("notification listener down");
        }
        Ok(())
    }
}
