//! The row-queue runtime: generic machinery that runs a reconciler over rows of a Postgres work
//! queue (claims, leases, fencing, due-time sleeps, backoff). It knows nothing about Fly or
//! previews.

pub mod backoff;
pub mod contract;
pub mod driver;

pub use contract::{Action, Claimed, Queue, QueueError, Reconciler};
pub use driver::{InFlight, Runtime, Timing};
