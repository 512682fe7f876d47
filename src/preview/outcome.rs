//! The outcome of a pass, decided: the row's new status with its due time, and for a failed
//! pass the [`Action`] its [`Policy`] calls for and the write that records it. Pure: `now`
//! and the rng are arguments, so the table tests beside this file pin every decision.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::model::state::{DesiredState, Reason, Status};
use crate::model::{MachineState, naming};
use crate::preview::error::{GlobalCondition, Policy, ReconcileError};
use crate::preview::expiry;
use crate::preview::plan::MachineRef;
use crate::preview::settings::Settings;
use crate::runtime::Action;
use crate::runtime::backoff::Backoff;
use crate::store::{PreviewRow, StatusWrite};

/// The runtime's action for a preview row.
pub type PreviewAction = Action<GlobalCondition>;

/// How a pass that did not fail ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Running {
        machine: MachineRef,
    },
    /// Work continues; come back after `retry_in`.
    Progressing {
        reason: Reason,
        machine: Option<MachineRef>,
        retry_in: Duration,
    },
    Stopped,
    /// Teardown requested, app deletion not confirmed yet.
    TearingDown,
    /// The row used its redeploy budget: nothing done; the latest request is applied at `until`.
    Throttled {
        until: DateTime<Utc>,
        message: String,
    },
    /// The user has no free preview slot: nothing done; the row is parked (not claimable, no
    /// database work while it waits) and deploys when a slot is freed (the quota-wake trigger,
    /// or the re-check after the refusal's write).
    Refused {
        message: String,
    },
    /// Nobody opened it for `PREVIEW_IDLE_TTL`: its app is gone; it waits to be opened again.
    Expired,
    /// The user opened it and its machine, asleep (`from`), was started.
    Woken {
        machine: MachineRef,
        from: MachineState,
    },
}

/// Longest a row waits during an outage before it is looked at again (normally Fly's
/// recovery makes every `FlyUnavailable` row due at once).
pub const OUTAGE_RECHECK: Duration = Duration::from_secs(30);

fn at(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The action a write stands for: its due time, or a wait for a change.
pub fn action_of(w: &StatusWrite) -> PreviewAction {
    w.next_attempt_at.map_or(Action::AwaitChange, Action::RequeueAt)
}

fn base(row: &PreviewRow, status: Status, reason: Reason) -> StatusWrite {
    StatusWrite {
        status,
        reason,
        error_message: None,
        detail: None,
        preview_url: None,
        fly_machine_id: row.fly_machine_id.clone(),
        machine_state: row.machine_state.clone(),
        observed_generation: Some(row.generation),
        attempts: 0,
        next_attempt_at: None,
    }
}

/// The machine fields of a write: what the pass saw, else what the row had.
fn machine_fields(
    row: &PreviewRow,
    m: Option<&MachineRef>,
) -> (Option<String>, Option<MachineState>) {
    match m {
        Some(m) => (Some(m.id.clone()), Some(m.state.clone())),
        None => (row.fly_machine_id.clone(), row.machine_state.clone()),
    }
}

/// The write for a pass over `row` that ended with `outcome`, at `now`.
pub fn decide(
    s: &Settings,
    row: &PreviewRow,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> StatusWrite {
    match outcome {
        Outcome::Running { machine } | Outcome::Woken { machine, .. } => StatusWrite {
            preview_url: Some(naming::preview_url(&row.fly_app_name)),
            fly_machine_id: Some(machine.id.clone()),
            machine_state: Some(machine.state.clone()),
            // Looked at again when it expires, unless it is opened or changed before.
            next_attempt_at: expiry::due(s.idle_ttl, row),
            ..base(
                row,
                Status::Running,
                if machine.state == MachineState::Started { Reason::Ready } else { Reason::Idle },
            )
        },
        Outcome::Progressing { reason, machine, retry_in } => StatusWrite {
            fly_machine_id: machine
                .as_ref()
                .map(|m| m.id.clone())
                .or_else(|| row.fly_machine_id.clone()),
            machine_state: machine.as_ref().map(|m| m.state.clone()),
            attempts: row.attempts,
            next_attempt_at: Some(at(now, *retry_in)),
            ..base(row, Status::Initializing, *reason)
        },
        Outcome::Stopped => StatusWrite {
            fly_machine_id: None,
            machine_state: None,
            ..base(row, Status::Stopped, Reason::Stopped)
        },
        Outcome::TearingDown => StatusWrite {
            attempts: row.attempts,
            next_attempt_at: Some(at(now, s.health_poll)),
            ..base(row, row.status, Reason::TearingDown)
        },
        Outcome::Throttled { until, message } => StatusWrite {
            error_message: Some(message.clone()),
            attempts: row.attempts,
            next_attempt_at: Some(*until),
            observed_generation: None,
            ..base(row, row.status, Reason::RedeployThrottled)
        },
        Outcome::Expired => StatusWrite {
            error_message: Some(expiry::message(s.idle_ttl)),
            fly_machine_id: None,
            machine_state: None,
            ..base(row, Status::Stopped, Reason::Expired)
        },
        Outcome::Refused { message } => {
            let attempts = row.attempts.saturating_add(1);
            StatusWrite {
                error_message: Some(message.clone()),
                attempts,
                next_attempt_at: None,
                fly_machine_id: None,
                machine_state: None,
                ..base(row, Status::Error, Reason::QuotaExceeded)
            }
        }
    }
}

/// Longest wait before the retry of a pass that failed on Fly's own trouble (a 5xx, a
/// timeout, a connection error: nothing the user can fix) while Fly as a whole is not down:
/// a partial degradation that clears is noticed by every row within this, however many
/// times it failed (the full `BACKOFF_CAP` left rows waiting minutes after Fly recovered).
pub const FLY_TROUBLE_CAP: Duration = Duration::from_secs(30);

/// What a failed pass means for the row: the error policy's action. A retry's delay is
/// drawn from the persisted backoff (full jitter), capped at [`FLY_TROUBLE_CAP`] when the
/// failure was Fly's own trouble; an outage rechecks after [`OUTAGE_RECHECK`] at the latest
/// (the heal signal makes the row due at once). A failure that waits for a change is due
/// when the row expires if it may still hold a Fly app ([`expiry::error_due`]): a crashed or
/// failed preview is not billed past `PREVIEW_IDLE_TTL`.
pub fn error_action(
    s: &Settings,
    row: &PreviewRow,
    e: &ReconcileError,
    policy: Policy,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> PreviewAction {
    if policy == Policy::WaitForChange
        && let Some(at) = expiry::error_due(s.idle_ttl, row, e.reason(policy))
    {
        return Action::RequeueAt(at);
    }
    let backoff = if e.is_fly_trouble() {
        Backoff { cap: s.backoff.cap.min(FLY_TROUBLE_CAP.max(s.backoff.base)), ..s.backoff }
    } else {
        s.backoff
    };
    policy_action(policy, row.attempts, &backoff, now, rng)
}

/// The action a policy calls for, given the persisted attempt count (shared by every
/// reconciler of the domain: preview rows and tombstones).
pub fn policy_action(
    policy: Policy,
    attempts: i32,
    backoff: &Backoff,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> PreviewAction {
    match policy {
        Policy::Global(c) => Action::Block(c),
        Policy::FlyDown => Action::requeue(now, OUTAGE_RECHECK),
        // Up to a tenth more, so rows refused together do not all come back at one instant.
        Policy::Wait(after) => {
            Action::requeue(now, after.mul_f64(1.0 + rng.random::<f64>() / 10.0))
        }
        Policy::WaitForChange => Action::AwaitChange,
        Policy::Retry => {
            Action::requeue(now, backoff.delay(u32::try_from(attempts).unwrap_or(0), rng))
        }
    }
}

/// The write that records a failed pass under `policy` with the chosen `action`.
pub fn error_write(
    row: &PreviewRow,
    e: &ReconcileError,
    policy: Policy,
    action: PreviewAction,
) -> StatusWrite {
    let attempts = row.attempts.saturating_add(1);
    let summary = e.summary(policy);
    let write = StatusWrite {
        detail: Some(e.to_string()),
        next_attempt_at: action.due_at(),
        ..base(row, Status::Error, e.reason(policy))
    };
    match (e, policy) {
        (_, Policy::Wait(_)) => with_retry_message(
            row,
            &summary,
            None,
            StatusWrite {
                status: row.status,
                attempts: row.attempts,
                observed_generation: None,
                ..write
            },
        ),
        (_, Policy::FlyDown | Policy::Global(_)) => StatusWrite {
            status: row.status,
            error_message: Some(summary),
            attempts: row.attempts,
            observed_generation: None,
            ..write
        },
        (ReconcileError::Rejected(r), _) => {
            let (fly_machine_id, machine_state) = machine_fields(row, r.machine.as_ref());
            StatusWrite {
                error_message: Some(summary),
                fly_machine_id,
                machine_state,
                attempts,
                detail: r.detail.clone(),
                ..write
            }
        }
        (_, Policy::WaitForChange) => StatusWrite {
            error_message: Some(format!(
                "{summary}; the preview service's operators have the details, and restarting \
                 the preview helps only once they have fixed the cause"
            )),
            attempts,
            ..write
        },
        (_, Policy::Retry) => with_retry_message(
            row,
            &summary,
            Some(attempts),
            StatusWrite {
                attempts,
                observed_generation: None,
                status: retry_status(row, e),
                ..write
            },
        ),
    }
}

/// `w`, a retry of `row`, with the message that names its next attempt.
///
/// # Guarantees
/// The time named is the instant `w` stores in `next_attempt_at`; the row is never claimed
/// before it. "at <time>" is said only of a row the claim ranks with started work
/// ([`ranks_with_started_work`]): it is claimed at that time ahead of every row queued
/// before it. Any other retry says "after <time>": it waits in its priority behind work
/// queued before it (src/store/sql/claim.sql).
/// # Caveats
/// "at" is kept to the second only while a worker slot is free for it. An eighth of the
/// slots is kept free of other work for started work, and a quarter more run only started
/// work beyond the concurrency, retries first (`PreviewQueue`); but retries alone can fill
/// them all, a user never has more than the per-user cap of rows in flight, and nothing is
/// claimed while the replica is blocked (a global condition, a Fly outage); then the retry
/// starts when a slot frees. Under 4 workers no slot is kept or reserved.
fn with_retry_message(
    row: &PreviewRow,
    summary: &str,
    attempt: Option<i32>,
    w: StatusWrite,
) -> StatusWrite {
    let word = if ranks_with_started_work(row, &w) { "at" } else { "after" };
    let when = w
        .next_attempt_at
        .map_or_else(String::new, |t| format!(" {word} {} UTC", t.format("%H:%M:%S")));
    let attempt = attempt.map_or_else(String::new, |n| format!(" (attempt {n})"));
    StatusWrite {
        error_message: Some(format!("{summary}; retrying automatically{when}{attempt}")),
        ..w
    }
}

/// Whether the claim ranks `row`, as `w` leaves it, with started work (priority 0 in
/// src/store/sql/claim.sql, the same predicate): a wake, and a deploy in progress with its
/// retries (`initializing` at its generation, or `initializing` after a failed pass).
pub fn ranks_with_started_work(row: &PreviewRow, w: &StatusWrite) -> bool {
    let observed = w.observed_generation.unwrap_or(row.observed_generation);
    (w.reason == Reason::WakeRequested && w.attempts == 0)
        || (w.status == Status::Initializing && (observed == row.generation || w.attempts > 0))
}

/// The status a retried row shows. A retry is for trouble no user can fix (Fly's errors,
/// its latency, our database): the row shows the work under way and says why in
/// `status_reason` and `error_message`. A deploy that reached Fly (it was admitted: Fly is
/// called only after the quota said yes) shows `initializing`, even if the row showed
/// `pending` or an `error` of the user's before; anything else keeps its status. `error` is
/// for what the user or their project can fix (invalid spec, a machine that exits, a dev
/// server that never answers, the quota, a configuration Fly refuses).
fn retry_status(row: &PreviewRow, e: &ReconcileError) -> Status {
    let reached_fly = matches!(e, ReconcileError::Fly(_) | ReconcileError::NotVisibleYet(_));
    match (row.status, row.desired_state) {
        (Status::Pending | Status::Error, DesiredState::Running) if reached_fly => {
            Status::Initializing
        }
        (status, _) => status,
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
