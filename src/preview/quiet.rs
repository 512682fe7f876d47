//! Quiet at rest, measured: a pass whose final write tells the row nothing new and leaves it
//! waiting for a change was not needed; counted (`fly_preview_reconciles_unchanged_total`) so
//! a loop that keeps re-reconciling converged rows shows on the dashboard.

use crate::ops::metrics::Metrics;
use crate::store::{PreviewRow, StatusWrite};

/// True when writing `w` over `row` changes nothing a reader of the row sees (status, reason,
/// message, machine, observed generation) and the row waits for a change afterwards.
/// Attempts and the operators' detail are left out: a loop is exactly a row whose attempts
/// climb while everything else stays the same.
pub fn changes_nothing(row: &PreviewRow, w: &StatusWrite) -> bool {
    w.next_attempt_at.is_none()
        && row.status == w.status
        && row.status_reason == Some(w.reason)
        && row.error_message == w.error_message
        && w.preview_url.as_ref().is_none_or(|u| row.preview_url.as_ref() == Some(u))
        && row.fly_machine_id == w.fly_machine_id
        && row.machine_state == w.machine_state
        && w.observed_generation.is_none_or(|g| g == row.observed_generation)
}

/// Counts the landed final write of a pass if it changed nothing.
pub fn count(metrics: &Metrics, row: &PreviewRow, w: &StatusWrite) {
    if changes_nothing(row, w) {
        metrics.reconciles_unchanged.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::{DesiredState, Reason, Status};
    use chrono::{TimeZone, Utc};

    const MSG: &str = "the preview machine exited with code 128";

    /// A row in error about its exited machine, due now (drift requeued it).
    fn exited_row() -> PreviewRow {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        PreviewRow {
            id: uuid::Uuid::nil(),
            user_id: uuid::Uuid::nil(),
            project_id: "p".into(),
            fly_app_name: "roseram-00000000".into(),
            preview_url: Some("https://roseram-00000000.fly.dev".into()),
            status: Status::Error,
            error_message: Some(MSG.into()),
            github_repo_url: Some("https://github.com/acme/does-not-exist".into()),
            github_branch: Some("main".into()),
            desired_state: DesiredState::Running,
            generation: 1,
            observed_generation: 1,
            status_reason: Some(Reason::MachineExited),
            fly_machine_id: Some("m1".into()),
            machine_state: Some(crate::model::MachineState::Stopped),
            attempts: 3,
            next_attempt_at: Some(t),
            lease_owner: Some("a".into()),
            lease_expires_at: Some(t),
            last_transition_at: t,
            requested_at: t,
            created_at: t,
            updated_at: t,
            status_detail: None,
            redeploys: 0,
            redeploy_window_start: None,
            redeploy_generation: 0,
            fly_app_created: true,
            root_directory: None,
            opened_at: None,
        }
    }

    /// The same verdict again, one attempt later.
    fn same_verdict() -> StatusWrite {
        StatusWrite {
            status: Status::Error,
            reason: Reason::MachineExited,
            error_message: Some(MSG.into()),
            detail: Some("request id 42".into()),
            preview_url: None,
            fly_machine_id: Some("m1".into()),
            machine_state: Some(crate::model::MachineState::Stopped),
            observed_generation: Some(1),
            attempts: 4,
            next_attempt_at: None,
        }
    }

    #[test]
    fn the_same_verdict_again_changes_nothing() {
        let row = exited_row();
        assert!(changes_nothing(&row, &same_verdict()));
        let kept = StatusWrite { observed_generation: None, ..same_verdict() };
        assert!(changes_nothing(&row, &kept), "None keeps the observed generation");
        let url = StatusWrite { preview_url: row.preview_url.clone(), ..same_verdict() };
        assert!(changes_nothing(&row, &url), "the same URL again");
    }

    #[test]
    fn any_visible_difference_is_a_change() {
        let row = exited_row();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap();
        let changed: [(&str, StatusWrite); 9] = [
            ("status", StatusWrite { status: Status::Running, ..same_verdict() }),
            ("reason", StatusWrite { reason: Reason::HealthDeadlineExceeded, ..same_verdict() }),
            ("message", StatusWrite { error_message: Some("other".into()), ..same_verdict() }),
            (
                "url",
                StatusWrite { preview_url: Some("https://x.fly.dev".into()), ..same_verdict() },
            ),
            ("machine id", StatusWrite { fly_machine_id: Some("m2".into()), ..same_verdict() }),
            (
                "machine state",
                StatusWrite { machine_state: Some("started".into()), ..same_verdict() },
            ),
            ("no machine", StatusWrite { machine_state: None, ..same_verdict() }),
            ("generation", StatusWrite { observed_generation: Some(2), ..same_verdict() }),
            ("due again", StatusWrite { next_attempt_at: Some(t), ..same_verdict() }),
        ];
        for (what, w) in changed {
            assert!(!changes_nothing(&row, &w), "{what}");
        }
    }

    #[test]
    fn a_row_without_a_reason_yet_is_changed() {
        let row = PreviewRow { status_reason: None, ..exited_row() };
        assert!(!changes_nothing(&row, &same_verdict()));
    }

    #[test]
    fn only_unchanged_writes_are_counted() {
        let m = Metrics::new();
        count(&m, &exited_row(), &same_verdict());
        count(&m, &exited_row(), &StatusWrite { status: Status::Running, ..same_verdict() });
        assert_eq!(m.reconciles_unchanged.get(), 1);
        assert!(m.encode().contains("fly_preview_reconciles_unchanged_total 1"));
    }
}
