//! The outcome of a pass, decided: the row's new status (with persisted backoff) or, for a
//! global condition, no write at all. Pure: `now` and the rng are arguments, so the table
//! test in `tests/it/outcome.rs` pins every decision.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::model::state::{Reason, Status};
use crate::preview::error::{GlobalCondition, Policy, ReconcileError};
use crate::preview::reconcile::{MachineRef, Outcome, url_of};
use crate::preview::settings::Settings;
use crate::store::{PreviewRow, StatusWrite};

/// What to do with the row after a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this status (fenced) and release the lease.
    Write(StatusWrite),
    /// Leave the row exactly as it is (release the lease): the controller as a whole is
    /// blocked by this condition.
    Blocked(GlobalCondition),
}

/// Metric label of a pass (`fly_preview_reconciles_total{result}`).
pub fn label(result: &Result<Outcome, ReconcileError>) -> &'static str {
    match result {
        Ok(Outcome::Running { .. } | Outcome::Stopped) => "ok",
        Ok(Outcome::Progressing { .. } | Outcome::TearingDown | Outcome::Throttled { .. }) => {
            "requeue"
        }
        Ok(Outcome::Failed { .. }) => "permanent",
        Err(e) => match e.policy() {
            Policy::Retry => "error",
            Policy::WaitForChange => "permanent",
            Policy::Global(_) | Policy::FlyDown => "blocked",
        },
    }
}

fn at(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
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
fn machine_fields(row: &PreviewRow, m: Option<&MachineRef>) -> (Option<String>, Option<String>) {
    match m {
        Some(m) => (Some(m.id.clone()), Some(m.state.clone())),
        None => (row.fly_machine_id.clone(), row.machine_state.clone()),
    }
}

/// The decision for a pass over `row` that ended with `result`, at `now`.
pub fn decide(
    s: &Settings,
    row: &PreviewRow,
    result: &Result<Outcome, ReconcileError>,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Decision {
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return failed(s, row, e, now, rng),
    };
    Decision::Write(match outcome {
        Outcome::Running { machine } => StatusWrite {
            preview_url: Some(url_of(row)),
            fly_machine_id: Some(machine.id.clone()),
            machine_state: Some(machine.state.clone()),
            ..base(
                row,
                Status::Running,
                if machine.state == "started" { Reason::Ready } else { Reason::Idle },
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
        Outcome::Failed { reason, message, machine } => {
            let (fly_machine_id, machine_state) = machine_fields(row, machine.as_ref());
            let attempts = row.attempts.saturating_add(1);
            StatusWrite {
                error_message: Some(message.clone()),
                fly_machine_id,
                machine_state,
                attempts,
                // A refused row is woken when its user frees a slot; this is the safety net.
                next_attempt_at: (*reason == Reason::QuotaExceeded)
                    .then(|| at(now, s.quota_recheck(attempts))),
                ..base(row, Status::Error, *reason)
            }
        }
    })
}

/// An error: retried with backoff, parked until the row changes, or no write at all.
fn failed(
    s: &Settings,
    row: &PreviewRow,
    e: &ReconcileError,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Decision {
    let attempts = row.attempts.saturating_add(1);
    match e.policy() {
        Policy::Global(c) => Decision::Blocked(c),
        Policy::FlyDown => Decision::Write(fly_down(row, e, now)),
        Policy::WaitForChange => Decision::Write(StatusWrite {
            error_message: Some(format!(
                "{}; this will not fix itself: change the row (github_repo_url, github_branch) or \
                 set status to 'pending' to retry",
                e.summary()
            )),
            attempts,
            detail: Some(e.to_string()),
            ..base(row, Status::Error, e.reason())
        }),
        Policy::Retry => {
            let delay = s.backoff.delay(u32::try_from(row.attempts).unwrap_or(0), rng);
            Decision::Write(StatusWrite {
                error_message: Some(format!(
                    "{}; retrying automatically in {} (attempt {attempts})",
                    e.summary(),
                    humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
                )),
                attempts,
                detail: Some(e.to_string()),
                next_attempt_at: Some(at(now, delay)),
                observed_generation: None,
                ..base(row, retry_status(row, e, attempts), e.reason())
            })
        }
    }
}

/// A platform failure (5xx, timeout) shows as `error` only from the third attempt in a row:
/// the first ones are usually an outage starting (the breaker then takes over) or a blip.
pub const PLATFORM_FAILURES_BEFORE_ERROR: i32 = 3;

fn retry_status(row: &PreviewRow, e: &ReconcileError, attempts: i32) -> Status {
    if e.is_platform_failure() && attempts < PLATFORM_FAILURES_BEFORE_ERROR {
        row.status
    } else {
        Status::Error
    }
}

/// Fly is down: status and attempts stay, the reason says why; due again after
/// [`OUTAGE_RECHECK`] at the latest (the heal signal makes it due at once).
fn fly_down(row: &PreviewRow, e: &ReconcileError, now: DateTime<Utc>) -> StatusWrite {
    StatusWrite {
        error_message: Some(e.summary()),
        detail: Some(e.to_string()),
        attempts: row.attempts,
        next_attempt_at: Some(at(now, OUTAGE_RECHECK)),
        observed_generation: None,
        ..base(row, row.status, Reason::FlyUnavailable)
    }
}

/// Longest a row waits during an outage before it is looked at again (normally Fly's
/// recovery makes every `FlyUnavailable` row due at once).
pub const OUTAGE_RECHECK: Duration = Duration::from_secs(30);
