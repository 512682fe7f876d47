//! Turning the outcome of a pass into the row's new status, with persisted backoff.

use chrono::Utc;

use crate::reconcile::{Outcome, ReconcileError, url_of};
use crate::settings::Settings;
use crate::store::{PreviewRow, StatusWrite};

/// Metric label of a pass.
pub fn label(result: &Result<Outcome, ReconcileError>) -> &'static str {
    match result {
        Ok(Outcome::Running { .. } | Outcome::Stopped) => "ok",
        Ok(Outcome::Progressing { .. } | Outcome::TearingDown) => "requeue",
        Ok(Outcome::Failed { .. }) => "permanent",
        Err(_) => "error",
    }
}

fn known_status(s: &str) -> &'static str {
    match s {
        "initializing" => "initializing",
        "running" => "running",
        "stopped" => "stopped",
        "error" => "error",
        _ => "pending",
    }
}

fn base(row: &PreviewRow, status: &'static str, reason: &'static str) -> StatusWrite {
    StatusWrite {
        status,
        reason,
        error_message: None,
        preview_url: None,
        fly_machine_id: row.fly_machine_id.clone(),
        machine_state: row.machine_state.clone(),
        observed_generation: Some(row.generation),
        attempts: 0,
        next_attempt_at: None,
    }
}

/// The status write for a pass over `row`.
pub fn status_write(
    s: &Settings,
    row: &PreviewRow,
    result: &Result<Outcome, ReconcileError>,
) -> StatusWrite {
    let now = Utc::now();
    let after = |d: std::time::Duration| {
        now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
    };
    match result {
        Ok(Outcome::Running { machine_id, state }) => StatusWrite {
            preview_url: Some(url_of(row)),
            fly_machine_id: Some(machine_id.clone()),
            machine_state: Some(state.clone()),
            ..base(row, "running", if state == "started" { "Ready" } else { "Idle" })
        },
        Ok(Outcome::Progressing { reason, machine, retry_in }) => StatusWrite {
            fly_machine_id: machine
                .as_ref()
                .map(|m| m.0.clone())
                .or_else(|| row.fly_machine_id.clone()),
            machine_state: machine.as_ref().map(|m| m.1.clone()),
            attempts: row.attempts,
            next_attempt_at: Some(after(*retry_in)),
            ..base(row, "initializing", reason)
        },
        Ok(Outcome::Stopped) => StatusWrite {
            fly_machine_id: None,
            machine_state: None,
            ..base(row, "stopped", "Stopped")
        },
        Ok(Outcome::TearingDown) => StatusWrite {
            attempts: row.attempts,
            next_attempt_at: Some(after(s.health_poll)),
            ..base(row, known_status(&row.status), "TearingDown")
        },
        Ok(Outcome::Failed { reason, message, machine }) => StatusWrite {
            error_message: Some(message.clone()),
            fly_machine_id: machine
                .as_ref()
                .map(|m| m.0.clone())
                .or_else(|| row.fly_machine_id.clone()),
            machine_state: machine
                .as_ref()
                .map(|m| m.1.clone())
                .or_else(|| row.machine_state.clone()),
            attempts: row.attempts.saturating_add(1),
            ..base(row, "error", reason)
        },
        Err(e) => transient(s, row, e),
    }
}

fn transient(s: &Settings, row: &PreviewRow, e: &ReconcileError) -> StatusWrite {
    let attempts = u32::try_from(row.attempts).unwrap_or(0);
    let delay = s.backoff.delay(attempts, &mut rand::rng());
    let reason = match e {
        ReconcileError::Fly(_) => "FlyApiError",
        ReconcileError::Store(_) => "DatabaseError",
        ReconcileError::NotVisibleYet(_) => "WaitingForFly",
        ReconcileError::Fenced => "Fenced",
    };
    StatusWrite {
        error_message: Some(format!("{e}; retrying (attempt {})", row.attempts.saturating_add(1))),
        attempts: row.attempts.saturating_add(1),
        next_attempt_at: Some(
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        ),
        observed_generation: None,
        ..base(row, "error", reason)
    }
}
