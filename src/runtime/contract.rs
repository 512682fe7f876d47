//! The contract between the queue runtime and a domain: one [`Queue`] of rows to claim and one
//! [`Reconciler`] that works a claimed row, both answering "when do we look again?" with one
//! small type, [`Action`].
//!
//! # Expected flow
//! 1. the runtime claims due rows ([`Queue::claim`]) and holds a lease on each while it works;
//! 2. for each row it runs [`Reconciler::reconcile`]; on `Ok(action)` the domain has already
//!    written the row's new state and due time (fenced, lease released);
//! 3. on `Err(e)` it asks [`Reconciler::error_policy`] (pure) what the failure means, then
//!    [`Reconciler::record_error`] writes it, unless the action is [`Action::Block`]: then
//!    nothing is written, the lease is given back ([`Queue::release`]) and
//!    [`Reconciler::block`] stops all work until the condition clears.
//!
//! # Guarantees
//! A row is worked by at most one pass at a time across replicas (leases, renewed while the
//! pass runs); at shutdown every lease this replica holds is released.
//!
//! # Assumptions
//! `reconcile` is idempotent and level-triggered (it reads the row and the world, never "what
//! woke it"), and safe to cancel at any `.await`; the domain's writes are fenced by the lease,
//! so a pass that lost its lease cannot overwrite newer work.
//!
//! # Caveats
//! The runtime does not persist due times itself: the domain writes them with its status, in
//! one statement, so a pass costs one final write.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// When to look at a row again if nothing else wakes it, or that nothing may run at all.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<B> {
    /// Look again at this time (the row's persisted due time).
    RequeueAt(DateTime<Utc>),
    /// Only a change to the row (a user's write, a NOTIFY) brings it back.
    AwaitChange,
    /// The row is finished and has left the queue (a completed teardown).
    Done,
    /// Not about this row: no pass may run until the condition clears; the row is left
    /// exactly as it was.
    Block(B),
}

impl<B> Action<B> {
    /// Look again `after` this long from `now`.
    pub fn requeue(now: DateTime<Utc>, after: Duration) -> Self {
        Action::RequeueAt(now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX))
    }

    /// The persisted due time: `None` when only a change brings the row back.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Action::RequeueAt(t) => Some(*t),
            Action::AwaitChange | Action::Done | Action::Block(_) => None,
        }
    }
}

/// A claimed row: what the runtime needs to know of it.
pub trait Claimed: Send + Sync + 'static {
    /// The row's key (lease renewal and release).
    fn id(&self) -> Uuid;
    /// A short description for the pass's log span (never a secret).
    fn span(&self) -> tracing::Span;
}

/// Errors of the queue's own statements (claims, leases): the runtime logs and counts them,
/// then carries on (a lost lease expires by itself).
pub type QueueError = Box<dyn std::error::Error + Send + Sync>;

/// A table used as a work queue: due rows, leases, release.
pub trait Queue: Send + Sync + 'static {
    /// What a claim returns.
    type Row: Claimed;
    /// Passes the loop may run beyond its concurrency, only for rows the queue itself ranks
    /// first (see [`Queue::claim`]): a queue that makes promises about when a row runs keeps
    /// them with these while every other slot is busy. The loop adds them to the free slots
    /// it asks `claim` to fill; `claim` fills them only with such rows.
    fn reserve(&self) -> usize {
        0
    }
    /// Leases up to `limit` due, unleased rows to this replica (`limit` counts the free
    /// [`Queue::reserve`] slots too).
    fn claim(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Self::Row>, QueueError>> + Send;
    /// How long until the earliest claimable row is due (zero if one is due now); `None`
    /// when no row will become due by itself.
    fn next_due(&self) -> impl Future<Output = Result<Option<Duration>, QueueError>> + Send;
    /// Extends the leases of these rows; returns the ids still held.
    fn renew(&self, ids: &[Uuid]) -> impl Future<Output = Result<Vec<Uuid>, QueueError>> + Send;
    /// Gives one row back unchanged.
    fn release(&self, id: Uuid) -> impl Future<Output = Result<bool, QueueError>> + Send;
    /// Gives back every row this replica holds (shutdown).
    fn release_all(&self) -> impl Future<Output = Result<u64, QueueError>> + Send;
}

/// The domain's side of the contract.
pub trait Reconciler: Send + Sync + 'static {
    /// The claimed row it works on (the [`Queue`]'s).
    type Row: Claimed;
    /// Everything a pass can fail with, typed per boundary.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A condition of the whole controller (not of a row) that stops every pass.
    type Block: Copy + Debug + Send + Sync + 'static;

    /// One pass over a claimed row: look, act, write the row's new state with the returned
    /// action's due time (fenced), and give the lease back.
    fn reconcile(
        &self,
        row: &Self::Row,
    ) -> impl Future<Output = Result<Action<Self::Block>, Self::Error>> + Send;

    /// What a failed pass means for the row. Pure: the one place errors become policy.
    fn error_policy(&self, row: &Self::Row, error: &Self::Error) -> Action<Self::Block>;

    /// Writes a failed pass into the row with the action `error_policy` chose (fenced; the
    /// lease goes back). Never called for [`Action::Block`].
    fn record_error(
        &self,
        row: &Self::Row,
        error: &Self::Error,
        action: Action<Self::Block>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A fixed short name of the error for metric labels (`reconcile_errors_total{kind}`).
    fn error_kind(error: &Self::Error) -> &'static str;

    /// The result label of a failed pass (`reconciles_total{result}`: `error`, `permanent`,
    /// `blocked`, `fenced`).
    fn error_label(&self, error: &Self::Error) -> &'static str;

    /// How many passes may run at once now (`max` unless something global holds them back).
    fn pass_limit(&self, max: usize) -> usize {
        max
    }

    /// A pass ended in [`Action::Block`]: stop all work until the condition clears.
    fn block(&self, condition: Self::Block);

    /// A pass succeeded (proof that no global condition holds).
    fn pass_ok(&self) {}
}
