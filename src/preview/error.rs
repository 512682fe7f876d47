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
    /// Fly is failing platform-wide (the breaker is open): nothing about this row.
    #[error("Fly API unavailable: {0}")]
    FlyDown(FlyError),
    /// The controller's own configuration is wrong (token, org, runner image).
    #[error("{0:?}: {1}")]
    Misconfigured(GlobalCondition, FlyError),
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
    /// Fly is failing platform-wide: the row keeps its status (reason `FlyUnavailable`),
    /// its attempts do not grow, and it is retried as soon as Fly answers again.
    FlyDown,
}

/// Conditions that stop the whole controller, not one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalCondition {
    /// Fly answered 401: the token is missing, revoked or expired.
    FlyTokenRejected,
    /// Fly answered 403 on the organization: the token is not allowed into `FLY_ORG`.
    FlyOrgForbidden,
    /// Fly answered 404 on the organization: `FLY_ORG` names no organization.
    FlyOrgNotFound,
    /// Fly refused the runner image on machine create.
    RunnerImageRejected,
}

impl GlobalCondition {
    /// One line for `/readyz` and the log, naming the setting to fix.
    pub fn describe(self) -> &'static str {
        match self {
            GlobalCondition::FlyTokenRejected => {
                "the Fly API rejects FLY_API_TOKEN (HTTP 401): set a valid org token (`fly tokens create org`)"
            }
            GlobalCondition::FlyOrgForbidden => {
                "FLY_API_TOKEN may not use the organization FLY_ORG (HTTP 403): set FLY_ORG to the token's org or use a token of that org"
            }
            GlobalCondition::FlyOrgNotFound => {
                "the Fly API knows no organization FLY_ORG (HTTP 404): set FLY_ORG to an org slug from `fly orgs list`"
            }
            GlobalCondition::RunnerImageRejected => {
                "Fly refuses the runner image RUNNER_IMAGE on machine create: push the image or set RUNNER_IMAGE to one Fly can pull"
            }
        }
    }

    /// Whether a cheap Fly probe (org machine listing) can tell that it cleared; otherwise
    /// a paced probe pass over one row finds out.
    pub fn probe_clears(self) -> bool {
        !matches!(self, GlobalCondition::RunnerImageRejected)
    }

    /// The condition behind an error of an org-scoped call (app create, org listings).
    pub fn of_org_call(e: &FlyError) -> Option<GlobalCondition> {
        match e {
            FlyError::Unauthorized(_) => Some(GlobalCondition::FlyTokenRejected),
            FlyError::Forbidden(_) => Some(GlobalCondition::FlyOrgForbidden),
            FlyError::NotFound(_) => Some(GlobalCondition::FlyOrgNotFound),
            _ => None,
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
    "unavailable",
];

impl ReconcileError {
    pub fn is_retryable(&self) -> bool {
        self.policy() == Policy::Retry
    }

    /// A Fly failure of the platform (5xx, timeout, lost connection, breaker open).
    pub fn is_platform_failure(&self) -> bool {
        match self {
            ReconcileError::FlyDown(_) => true,
            ReconcileError::Fly(e) => e.is_platform_failure(),
            _ => false,
        }
    }

    /// The policy this error calls for.
    pub fn policy(&self) -> Policy {
        match self {
            ReconcileError::Fly(FlyError::Unauthorized(_)) => {
                Policy::Global(GlobalCondition::FlyTokenRejected)
            }
            ReconcileError::Misconfigured(c, _) => Policy::Global(*c),
            ReconcileError::FlyDown(_) | ReconcileError::Fly(FlyError::Unavailable(_)) => {
                Policy::FlyDown
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
            ReconcileError::FlyDown(_) | ReconcileError::Fly(FlyError::Unavailable(_)) => {
                Reason::FlyUnavailable
            }
            ReconcileError::Fly(_) => Reason::FlyApiError,
            ReconcileError::Misconfigured(..) => Reason::ConfigRejected,
            ReconcileError::Store(_) => Reason::DatabaseError,
            ReconcileError::NotVisibleYet(_) => Reason::WaitingForFly,
            ReconcileError::Fenced => Reason::Fenced,
        }
    }

    /// A fixed short name for metric labels (one of [`KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Fly(e) | ReconcileError::Misconfigured(_, e) => e.kind(),
            ReconcileError::FlyDown(_) => "unavailable",
            ReconcileError::Store(e) => e.kind(),
            ReconcileError::NotVisibleYet(_) => "not_visible_yet",
            ReconcileError::Fenced => "fenced",
        }
    }

    /// What a person reading the row needs: what went wrong, without request ids, API
    /// messages or URLs (the full error goes to the log and to `status_detail`).
    pub fn summary(&self) -> String {
        match self {
            ReconcileError::Fly(e) => fly_summary(e),
            ReconcileError::FlyDown(_) => {
                "Fly.io is having an outage; the preview is retried as soon as Fly answers again"
                    .into()
            }
            ReconcileError::Misconfigured(..) => {
                "the preview service is misconfigured; its operators have been alerted".into()
            }
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
        FlyError::Permanent(_) => format!("Fly rejected the preview's configuration{status}"),
        FlyError::Forbidden(_) => format!("Fly refused access to the preview's app{status}"),
        FlyError::Config(_) => "the controller could not form the Fly API request".into(),
        FlyError::Unauthorized(_) => "the Fly API rejected the controller's token".into(),
        FlyError::Unavailable(_) => "Fly.io is having an outage".into(),
        FlyError::NotFound(_) | FlyError::NameTaken(_) | FlyError::LeaseConflict(_) => {
            format!("the Fly API answered unexpectedly{status}")
        }
    }
}
