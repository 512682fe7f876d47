//! The gate in front of all work: whether Fly's health and the controller's own Fly
//! configuration let passes run, rows be written and this replica lead (see
//! [`watch`](crate::preview::gate::watch) for who opens and shuts it).

pub mod watch;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ops::health::Health;
use crate::preview::error::GlobalCondition;

/// While the runner image is refused, one probe pass over a row this often.
pub const IMAGE_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// What may run now; shared by the preview reconciler, the local lane, drift and the watcher.
#[derive(Debug)]
pub struct FlyGate {
    health: Arc<Health>,
    condition: Mutex<Option<GlobalCondition>>,
    checked: AtomicBool,
    last_image_probe: Mutex<Option<Instant>>,
}

impl FlyGate {
    pub fn new(health: Arc<Health>) -> Self {
        Self {
            health,
            condition: Mutex::new(None),
            checked: AtomicBool::new(false),
            last_image_probe: Mutex::new(None),
        }
    }

    fn cond(&self) -> std::sync::MutexGuard<'_, Option<GlobalCondition>> {
        self.condition.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks all work (logged when it starts and once a minute while it is re-reported).
    pub fn block(&self, c: GlobalCondition) {
        let newly = self.cond().replace(c) != Some(c);
        if newly && !c.probe_clears() {
            // The pass that found it was the probe; the next one waits a full interval.
            *self.last_image_probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        self.health.set_blocked(Some(c.describe()));
    }

    /// Clears the condition (logged once).
    pub fn clear(&self) {
        if self.cond().take().is_some() {
            self.health.set_blocked(None);
        }
    }

    /// A pass succeeded: that proves every condition a pass can test.
    pub fn pass_ok(&self) {
        if self.condition().is_some_and(|c| !c.probe_clears()) {
            self.clear();
        }
    }

    pub fn condition(&self) -> Option<GlobalCondition> {
        *self.cond()
    }

    /// The first probe was answered (or timed out) and no condition blocks work.
    pub fn open(&self) -> bool {
        self.checked.load(Ordering::Relaxed) && self.condition().is_none()
    }

    pub(crate) fn checked(&self) {
        self.checked.store(true, Ordering::Relaxed);
    }

    /// How many passes may run at once now.
    pub fn pass_limit(&self, max: usize) -> usize {
        if !self.checked.load(Ordering::Relaxed) {
            return 0;
        }
        match self.condition() {
            None => max,
            Some(c) if c.probe_clears() => 0,
            Some(_) => {
                let mut last = self.last_image_probe.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|t| t.elapsed() < IMAGE_PROBE_INTERVAL) {
                    return 0;
                }
                *last = Some(Instant::now());
                1
            }
        }
    }
}
