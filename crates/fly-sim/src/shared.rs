//! The state the HTTP front, the routes and the `/wait` long-polls share.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::LoggedRequest;
use super::fault::FaultEngine;
use super::ids::{IdGen, SimClock};
use super::limits::RateLimiter;
use super::world::World;

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the server and the handle share.
pub(crate) struct Shared {
    pub clock: SimClock,
    pub org: String,
    pub token: Option<String>,
    pub api_latency: Duration,
    pub rate_limits: bool,
    pub retry_after: Option<u64>,
    pub world: Mutex<World>,
    /// Revisions and `sync` behaviour for `exec`.
    pub exec: Mutex<super::revisions::ExecState>,
    pub faults: Mutex<FaultEngine>,
    pub limiter: Mutex<RateLimiter>,
    pub request_ids: Mutex<IdGen>,
    pub log: Mutex<VecDeque<LoggedRequest>>,
    pub requests_total: AtomicU64,
    pub rate_limited_total: AtomicU64,
    pub faults_injected_total: AtomicU64,
    /// Woken after every mutation so `/wait` long-polls re-check.
    pub changed: Notify,
    pub shutdown: watch::Sender<bool>,
}
