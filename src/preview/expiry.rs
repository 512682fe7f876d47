//! Idle expiry and wake on open, decided (pure): a settled running preview nobody opened for
//! `PREVIEW_IDLE_TTL` is torn down (status `stopped`, reason `Expired`), and so is a settled
//! preview in `error` that may still hold a Fly app ([`holds_fly`]); a user's open of a
//! running preview (the open trigger's `WakeRequested`) starts its machine if Fly's autostop
//! suspended or stopped it, and a wake whose Fly call failed is retried until it succeeds
//! (within [`WAKE_RETRY_WINDOW`] of the open). The executor is [`idle`](crate::preview::idle).
//!
//! # Guarantees
//! A settled running row, and a row in `error` that waits for a change and may hold a Fly
//! app, is due exactly when it expires ([`due`], [`error_due`]), so no sweep reads the
//! table. An expired row is never deployed again by a pass alone: only a new generation
//! (writing `opened_at` or status 'pending') brings it back.
//! # Caveats
//! A row in `error` that holds nothing on Fly never expires and keeps its message: refused
//! for the quota (`QuotaExceeded`: the quota is asked before any Fly call, and a refused row's
//! machine goes with its app), invalid (`InvalidSpec`: its pass stops at validation, before
//! Fly), a name owned by another org (`NameOwnedElsewhere`: the app is not ours), or a row
//! that never had an app (`fly_app_created` false). They wait for the row to change, due
//! never (`'infinity'`), as before.
//! # Assumptions
//! `opened_at` comes from the web app's clock (normally the database's `now()`); a row
//! settled under an older TTL is re-decided with the current one when it comes due.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::state::{DesiredState, Reason, Status};
use crate::store::PreviewRow;

/// What idleness asks of a pass over a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Nothing: the pass goes on (deploy, repair, teardown).
    Active,
    /// Nobody opened it for the TTL: delete its Fly app, then write `Expired`.
    Expire,
    /// Expired already and nothing asked for it since: write it again, no Fly call.
    StayExpired,
    /// The user opened it: start its machine if autostop put it to sleep.
    Wake,
}

/// `PREVIEW_IDLE_TTL`: a humantime duration (`7d`, `36h`), or `0` for never.
pub fn parse_ttl(s: &str) -> Result<Duration, humantime::DurationError> {
    if s.trim() == "0" { Ok(Duration::ZERO) } else { humantime::parse_duration(s) }
}

/// When the preview was last used: the later of its last open and its last deploy request
/// (a preview deployed or saved to recently is in use even if the builder has not opened it).
pub fn last_used(row: &PreviewRow) -> DateTime<Utc> {
    row.opened_at.map_or(row.requested_at, |o| o.max(row.requested_at))
}

/// When the row expires if it stays unused (`None`: a zero TTL, never).
pub fn due(ttl: Duration, row: &PreviewRow) -> Option<DateTime<Utc>> {
    if ttl.is_zero() {
        return None;
    }
    let ttl = chrono::Duration::from_std(ttl).ok()?;
    last_used(row).checked_add_signed(ttl)
}

/// Reasons of a row in `error` that holds nothing on Fly (see the module's caveats).
pub const HOLDS_NOTHING: &[Reason] =
    &[Reason::QuotaExceeded, Reason::InvalidSpec, Reason::NameOwnedElsewhere];

/// Whether a row in `error` for `reason` may hold a Fly app of ours (and a machine in it):
/// it may have had one, and its failure is not one that holds nothing.
pub fn holds_fly(row: &PreviewRow, reason: Option<Reason>) -> bool {
    row.fly_app_created && reason.is_none_or(|r| !HOLDS_NOTHING.contains(&r))
}

/// When a settled row written in `error` for `reason`, waiting for a change, expires:
/// [`due`] if it wants to run and may hold a Fly app, else `None` (it waits for a change).
pub fn error_due(ttl: Duration, row: &PreviewRow, reason: Reason) -> Option<DateTime<Utc>> {
    let wants = row.desired_state == DesiredState::Running;
    if wants && holds_fly(row, Some(reason)) { due(ttl, row) } else { None }
}

/// The step idleness asks of a pass over `row` at `now`. Only a settled row counts (wanting
/// to run, its generation applied): a deploy in progress or requested is never expired.
pub fn step(ttl: Duration, row: &PreviewRow, now: DateTime<Utc>) -> Idle {
    if row.desired_state != DesiredState::Running || row.observed_generation != row.generation {
        return Idle::Active;
    }
    let expired = due(ttl, row).is_some_and(|d| d <= now);
    match row.status {
        Status::Stopped if row.status_reason == Some(Reason::Expired) => Idle::StayExpired,
        Status::Running if expired => Idle::Expire,
        Status::Error if expired && holds_fly(row, row.status_reason) => Idle::Expire,
        Status::Running if wake_asked(row, now) => Idle::Wake,
        _ => Idle::Active,
    }
}

/// How long after an open a retried pass still wakes the machine (a wake whose Fly call failed
/// is retried with the failure's reason in place of `WakeRequested`).
pub const WAKE_RETRY_WINDOW: Duration = Duration::from_secs(300);

/// The user opened the preview (`WakeRequested`), or opened it within [`WAKE_RETRY_WINDOW`]
/// and the wake is being retried after a failure.
fn wake_asked(row: &PreviewRow, now: DateTime<Utc>) -> bool {
    if row.status_reason == Some(Reason::WakeRequested) {
        return true;
    }
    let window = chrono::Duration::from_std(WAKE_RETRY_WINDOW).unwrap_or_default();
    row.attempts > 0 && row.opened_at.is_some_and(|o| now - o <= window)
}

/// What the builder shows on an expired preview.
pub fn message(ttl: Duration) -> String {
    format!("stopped after {} unused; opening the project starts it again", spoken(ttl))
}

/// A TTL as people say it: "7 days", "36 hours", "1 minute", "90 seconds".
fn spoken(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
#[path = "expiry_tests.rs"]
mod tests;
