//! Rows for the domain's pure unit tests.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::model::MachineState;
use crate::model::state::{DesiredState, Status};
use crate::store::PreviewRow;

/// The fixed `now` of the table tests.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

/// A row at generation 3 (2 observed) with a known, stopped machine.
pub fn row(status: Status, attempts: i32) -> PreviewRow {
    PreviewRow {
        id: Uuid::nil(),
        user_id: Uuid::nil(),
        project_id: "p".into(),
        fly_app_name: "roseram-0000abcd".into(),
        preview_url: None,
        status,
        error_message: None,
        github_repo_url: Some("https://github.com/acme/site".into()),
        github_branch: Some("main".into()),
        desired_state: DesiredState::Running,
        generation: 3,
        observed_generation: 2,
        status_reason: None,
        fly_machine_id: Some("m-old".into()),
        machine_state: Some(MachineState::Stopped),
        attempts,
        next_attempt_at: None,
        lease_owner: None,
        lease_expires_at: None,
        last_transition_at: now(),
        requested_at: now(),
        created_at: now(),
        updated_at: now(),
        status_detail: None,
        redeploys: 0,
        redeploy_window_start: None,
        redeploy_generation: 0,
        fly_app_created: true,
        root_directory: None,
        opened_at: None,
    }
}
