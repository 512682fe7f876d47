//! Errors of a reconcile pass and the policy each one calls for.
//!
//! Every error maps to exactly one [`Policy`]: retry the row with backoff; wait for the row
//! to change (retrying the same request fails the same way); or a global condition of the
//! whole controller (Fly rejects our token), which no row can fix and which must not churn
//! rows. The outcome module turns the policy into the row's write (or into no write).

use crate::fly::FlyError;
use crate::model::state::Reason;
use crate::store::StoreError;

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Fly API: {0}")]
    Fly(#[from] FlyError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Fly has not caught up with our own write yet (eventual consistency).
    #[error("{0}")]
    NotVisibleYet(&'static str),
    /// Another writer changed the row (or took the lease) while we worked.
    #[error("the row changed while it was being reconciled")]
    Fenced,
}

/// What an error means for the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Temporary: try the row again after its backoff.
    Retry,
    /// Permanent for this spec: the row waits until someone changes it.
    WaitForChange,
    /// Not about this row: the controller cannot work at all until the condition clears.
    Global(GlobalCondition),
}

/// Conditions that stop the whole controller, not one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalCondition {
    /// Fly answered 401: the token is missing, revoked or expired.
    FlyTokenRejected,
}

impl GlobalCondition {
    /// One line for `/readyz` and the log, naming the setting to fix.
    pub fn describe(self) -> &'static str {
        match self {
            GlobalCondition::FlyTokenRejected => {
                "the Fly API rejects FLY_API_TOKEN (HTTP 401): set a valid org token (`fly tokens create org`)"
            }
        }
    }
}

/// Every value [`ReconcileError::kind`] can return: the fixed label set of
/// `fly_preview_reconcile_errors_total{kind}`.
pub const KINDS: &[&str] = &[
    "not_found",
    "name_taken",
    "forbidden",
    "unauthorized",
    "lease_conflict",
    "rate_limited",
    "timeout",
    "transient",
    "permanent",
    "ambiguous_create",
    "decode",
    "config",
    "db_connect",
    "db_query",
    "db_migrate",
    "db_transaction_pooler",
    "db_access",
    "not_visible_yet",
    "fenced",
];

impl ReconcileError {
    pub fn is_retryable(&self) -> bool {
        self.policy() == Policy::Retry
    }

    /// The policy this error calls for.
    pub fn policy(&self) -> Policy {
        match self {
            ReconcileError::Fly(FlyError::Unauthorized(_)) => {
                Policy::Global(GlobalCondition::FlyTokenRejected)
            }
            ReconcileError::Fly(
                FlyError::Permanent(_) | FlyError::Forbidden(_) | FlyError::Config(_),
            ) => Policy::WaitForChange,
            ReconcileError::Fly(_)
            | ReconcileError::Store(_)
            | ReconcileError::NotVisibleYet(_)
            | ReconcileError::Fenced => Policy::Retry,
        }
    }

    /// `status_reason` for the row.
    pub fn reason(&self) -> Reason {
        match self {
            ReconcileError::Fly(FlyError::Permanent(_) | FlyError::Forbidden(_)) => {
                Reason::ConfigRejected
            }
            ReconcileError::Fly(_) => Reason::FlyApiError,
            ReconcileError::Store(_) => Reason::DatabaseError,
            ReconcileError::NotVisibleYet(_) => Reason::WaitingForFly,
            ReconcileError::Fenced => Reason::Fenced,
        }
    }

    /// A fixed short name for metric labels (one of [`KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Fly(e) => e.kind(),
            ReconcileError::Store(e) => e.kind(),
            ReconcileError::NotVisibleYet(_) => "not_visible_yet",
            ReconcileError::Fenced => "fenced",
        }
    }

    /// What a person reading the row needs: what went wrong, without request ids or API
    /// URLs (those go to the controller's log).
    pub fn summary(&self) -> String {
        match self {
            ReconcileError::Fly(e) => fly_summary(e),
            ReconcileError::Store(_) => "the controller could not reach its database".into(),
            ReconcileError::NotVisibleYet(_) => "waiting for Fly to show a change we made".into(),
            ReconcileError::Fenced => "the row changed while it was being deployed".into(),
        }
    }
}

fn fly_summary(e: &FlyError) -> String {
    let info = e.info();
    let status = info.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    match e {
        FlyError::RateLimited { .. } => "the Fly API is rate limiting requests".into(),
        FlyError::Timeout(_) => "the Fly API did not answer in time".into(),
        FlyError::Transient(_) | FlyError::Decode(_) => {
            format!("the Fly API had a temporary problem{status}")
        }
        FlyError::AmbiguousCreate(_) => "Fly did not confirm creating the machine".into(),
        FlyError::Permanent(_) => {
            format!("Fly rejected the preview's configuration{status}: {}", info.message)
        }
        FlyError::Forbidden(_) => format!("Fly refused access to the preview's app{status}"),
        FlyError::Config(_) => "the controller could not form the Fly API request".into(),
        FlyError::Unauthorized(_) => "the Fly API rejected the controller's token".into(),
        FlyError::NotFound(_) | FlyError::NameTaken(_) | FlyError::LeaseConflict(_) => {
            format!("the Fly API answered unexpectedly{status}")
        }
    }
}
