//! The row-queue runtime: generic machinery that runs a reconciler over rows of a Postgres work
//! queue (claims, leases, fencing, due-time sleeps, backoff). It knows nothing about Fly or
//! previews.

pub mod backoff;
