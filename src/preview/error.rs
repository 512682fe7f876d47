//! Errors of a preview pass, and [`classify`]: the one place an error becomes a [`Policy`].
//!
//! Every failure of a pass is a [`ReconcileError`] that keeps the typed error of its boundary
//! (a [`FlyError`] names the call that failed; a [`StoreError`] the statement's SQLSTATE).
//! [`classify`] decides, for all of them: retry the row with backoff; wait for the row to
//! change (retrying the same request fails the same way); park the row while Fly is down;
//! or a global condition of the whole controller (Fly rejects our token, org or image),
//! which no row can fix and which must not churn rows. The gate's probe and drift's org
//! listings use the same function for their Fly errors.

use std::time::Duration;

use crate::fly::FlyError;
use crate::model::state::Reason;
use crate::preview::plan::MachineRef;
use crate::store::StoreError;

/// Errors of one pass.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Fly API {0}")]
    Fly(#[from] FlyError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Fly has not caught up with our own write yet (eventual consistency).
    #[error("{0}")]
    NotVisibleYet(&'static str),
    /// Another writer changed the row (or took the lease) while we worked.
    #[error("the row changed while it was being reconciled")]
    Fenced,
    /// The preview cannot run as the row asks (invalid spec, the machine exited, the dev
    /// server never answered, the name belongs to another org): a verdict, not a fault.
    #[error("{}: {}", .0.reason, .0.message)]
    Rejected(Rejection),
}

/// A verdict on the row, with the message its owner reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
    /// The operators' detail (`status_detail`): codes, the runner's report, the setting.
    pub detail: Option<String>,
    /// The preview's machine as the pass last saw it.
    pub machine: Option<MachineRef>,
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
    /// Fly's budget for a call is spent until this much later (its 429 `Retry-After`, or
    /// our own bucket for Fly's limit, request not sent): the row keeps its status and its
    /// attempts and comes back then, its worker slot given back meanwhile.
    Wait(Duration),
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
}

/// Calls scoped to the organization: a 403/404 there is about `FLY_ORG`, not about a row.
const ORG_CALLS: &[&str] = &["create_app", "list_apps", "list_org_machines"];
/// Calls that send the runner image.
const IMAGE_CALLS: &[&str] = &["create_machine", "update_machine"];

/// The policy for a Fly error; `fly_down` says whether the client's breaker is open now.
pub fn classify_fly(e: &FlyError, fly_down: bool) -> Policy {
    let call = e.info().call.unwrap_or_default();
    let org_call = ORG_CALLS.contains(&call);
    match e {
        FlyError::Unauthorized(_) => Policy::Global(GlobalCondition::FlyTokenRejected),
        FlyError::Forbidden(_) if org_call => Policy::Global(GlobalCondition::FlyOrgForbidden),
        FlyError::NotFound(_) if org_call => Policy::Global(GlobalCondition::FlyOrgNotFound),
        FlyError::Permanent(_)
            if IMAGE_CALLS.contains(&call)
                && e.message().to_ascii_lowercase().contains("image") =>
        {
            Policy::Global(GlobalCondition::RunnerImageRejected)
        }
        FlyError::Unavailable(_) => Policy::FlyDown,
        _ if fly_down && e.is_platform_failure() => Policy::FlyDown,
        FlyError::Permanent(_) | FlyError::Forbidden(_) | FlyError::Config(_) => {
            Policy::WaitForChange
        }
        FlyError::RateLimited { retry_after: Some(after), .. } => Policy::Wait(*after),
        _ => Policy::Retry,
    }
}

/// The policy for any error of a pass: the only place this is decided.
pub fn classify(e: &ReconcileError, fly_down: bool) -> Policy {
    match e {
        ReconcileError::Fly(f) => classify_fly(f, fly_down),
        ReconcileError::Rejected(_) => Policy::WaitForChange,
        ReconcileError::Store(_) | ReconcileError::NotVisibleYet(_) | ReconcileError::Fenced => {
            Policy::Retry
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
    "rejected",
];

impl ReconcileError {
    /// Whether the pass failed on Fly's own trouble (what the client's breaker counts as a
    /// platform failure), not on anything the row or its user could change.
    pub fn is_fly_trouble(&self) -> bool {
        matches!(self, ReconcileError::Fly(f) if f.is_platform_failure())
    }

    /// `status_reason` for the row under `policy`.
    pub fn reason(&self, policy: Policy) -> Reason {
        match (self, policy) {
            (_, Policy::FlyDown) => Reason::FlyUnavailable,
            (_, Policy::Global(_)) => Reason::ConfigRejected,
            (ReconcileError::Rejected(r), _) => r.reason,
            (ReconcileError::Fly(FlyError::Permanent(_) | FlyError::Forbidden(_)), _) => {
                Reason::ConfigRejected
            }
            (ReconcileError::Fly(_), _) => Reason::FlyApiError,
            (ReconcileError::Store(_), _) => Reason::DatabaseError,
            (ReconcileError::NotVisibleYet(_), _) => Reason::WaitingForFly,
            (ReconcileError::Fenced, _) => Reason::Fenced,
        }
    }

    /// A fixed short name for metric labels (one of [`KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Fly(e) => e.kind(),
            ReconcileError::Store(e) => e.kind(),
            ReconcileError::NotVisibleYet(_) => "not_visible_yet",
            ReconcileError::Fenced => "fenced",
            ReconcileError::Rejected(_) => "rejected",
        }
    }

    /// What a person reading the row needs: what went wrong, without request ids, API
    /// messages or URLs (the full error goes to the log and to `status_detail`).
    pub fn summary(&self, policy: Policy) -> String {
        match (self, policy) {
            (_, Policy::FlyDown) => {
                "Fly.io is having an outage; the preview is retried as soon as Fly answers again"
                    .into()
            }
            (_, Policy::Global(_)) => {
                "the preview service is misconfigured; its operators have been alerted".into()
            }
            (ReconcileError::Fly(e), _) => fly_summary(e),
            (ReconcileError::Rejected(r), _) => r.message.clone(),
            (ReconcileError::Store(_), _) => "the controller could not reach its database".into(),
            (ReconcileError::NotVisibleYet(_), _) => {
                "waiting for Fly to show a change we made".into()
            }
            (ReconcileError::Fenced, _) => "the row changed while it was being deployed".into(),
        }
    }
}

/// Metric label of a failed pass (`fly_preview_reconciles_total{result}`).
pub fn result_label(e: &ReconcileError, policy: Policy) -> &'static str {
    match (e, policy) {
        (ReconcileError::Fenced, _) => "fenced",
        (_, Policy::Retry) => "error",
        (_, Policy::Wait(_)) => "requeue",
        (_, Policy::WaitForChange) => "permanent",
        (_, Policy::Global(_) | Policy::FlyDown) => "blocked",
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

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
