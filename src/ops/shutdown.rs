//! Signals: the first SIGTERM/SIGINT drains (stop claiming, let in-flight work finish within
//! the deadline, release leases); a second one aborts.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Abort,
}

/// A channel the daemon watches; `trigger` moves it forward (tests use it instead of signals).
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self { tx: watch::channel(Phase::Running).0 }
    }

    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }

    /// Moves to the next phase: Running → Draining → Abort.
    pub fn trigger(&self) {
        self.tx.send_modify(|p| {
            *p = match p {
                Phase::Running => Phase::Draining,
                _ => Phase::Abort,
            }
        });
    }

    /// Translates process signals into phases, forever.
    pub fn listen_for_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                wait_signal().await;
                me.trigger();
                tracing::warn!(phase = ?*me.tx.borrow(), "signal received");
            }
        });
    }
}

#[cfg(unix)]
async fn wait_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves once the phase is at least `at_least`.
pub async fn reached(rx: &mut watch::Receiver<Phase>, at_least: Phase) {
    let _ = rx.wait_for(|p| *p >= at_least).await;
}
