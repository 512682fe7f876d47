//! The pure outcome decision: one table of pass results and the write (or no write) each
//! must produce, at a fixed `now` with a seeded rng.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use fly_preview_controller::fly::{ErrorInfo, FlyError};
use fly_preview_controller::preview::error::{GlobalCondition, KINDS, Policy, ReconcileError};
use fly_preview_controller::preview::outcome::{Decision, decide, label};
use fly_preview_controller::preview::reconcile::{MachineRef, Outcome};
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::{PreviewRow, StatusWrite};
use rand::SeedableRng;
use rand::rngs::StdRng;
use uuid::Uuid;

use crate::support::{DesiredState, Reason, Status};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

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
        machine_state: Some("stopped".into()),
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
    }
}

fn settings() -> Settings {
    let mut s = Settings::for_tests("personal");
    s.health_poll = Duration::from_secs(1);
    s
}

#[allow(clippy::needless_pass_by_value)] // the table reads better with owned results
fn run(r: &PreviewRow, result: Result<Outcome, ReconcileError>) -> Decision {
    decide(&settings(), r, &result, now(), &mut StdRng::seed_from_u64(7))
}

fn write(d: Decision) -> StatusWrite {
    match d {
        Decision::Write(w) => w,
        other => panic!("expected a write, got {other:?}"),
    }
}

fn info(status: u16) -> ErrorInfo {
    ErrorInfo {
        status: Some(status),
        request_id: Some("01REQ-ID-SECRET".into()),
        code: None,
        message: "boom".into(),
    }
}

#[test]
fn success_outcomes() {
    let r = row(Status::Initializing, 2);
    let m = MachineRef { id: "m1".into(), state: "started".into() };
    let w = write(run(&r, Ok(Outcome::Running { machine: m.clone() })));
    assert_eq!(
        (w.status, w.reason, w.attempts, w.next_attempt_at),
        (Status::Running, Reason::Ready, 0, None)
    );
    assert_eq!((w.fly_machine_id.as_deref(), w.observed_generation), (Some("m1"), Some(3)));
    assert_eq!(w.preview_url.as_deref(), Some("https://roseram-0000abcd.fly.dev"));

    let suspended = MachineRef { state: "suspended".into(), ..m };
    assert_eq!(write(run(&r, Ok(Outcome::Running { machine: suspended }))).reason, Reason::Idle);

    let p = Outcome::Progressing {
        reason: Reason::WaitingForHealthCheck,
        machine: None,
        retry_in: Duration::from_secs(2),
    };
    let w = write(run(&r, Ok(p)));
    assert_eq!(
        (w.status, w.attempts),
        (Status::Initializing, 2),
        "progress keeps the attempt count"
    );
    assert_eq!(w.next_attempt_at, Some(now() + chrono::Duration::seconds(2)));
    assert_eq!(w.fly_machine_id.as_deref(), Some("m-old"), "no machine seen: keep the known one");

    let w = write(run(&r, Ok(Outcome::Stopped)));
    assert_eq!((w.status, w.reason, w.fly_machine_id), (Status::Stopped, Reason::Stopped, None));

    let w = write(run(&row(Status::Running, 0), Ok(Outcome::TearingDown)));
    assert_eq!(
        (w.status, w.reason),
        (Status::Running, Reason::TearingDown),
        "status stays truthful"
    );
    assert_eq!(w.next_attempt_at, Some(now() + chrono::Duration::seconds(1)));
}

#[test]
fn a_throttled_change_keeps_the_status_and_waits_for_the_window() {
    let r = row(Status::Running, 0);
    let until = now() + chrono::Duration::minutes(7);
    let w = write(run(&r, Ok(Outcome::Throttled { until, message: "later".into() })));
    assert_eq!(
        (w.status, w.reason, w.next_attempt_at, w.observed_generation),
        (Status::Running, Reason::RedeployThrottled, Some(until), None),
        "status stays truthful; the change stays pending"
    );
    assert_eq!(w.error_message.as_deref(), Some("later"));
}

#[test]
fn a_quota_refusal_waits_for_a_free_slot_with_a_safety_net() {
    let r = row(Status::Pending, 0);
    let f =
        Outcome::Failed { reason: Reason::QuotaExceeded, message: "full".into(), machine: None };
    let w = write(run(&r, Ok(f)));
    assert_eq!((w.status, w.reason, w.attempts), (Status::Error, Reason::QuotaExceeded, 1));
    assert_eq!(w.next_attempt_at, Some(now() + chrono::Duration::minutes(10)));
    let again =
        Outcome::Failed { reason: Reason::QuotaExceeded, message: "x".into(), machine: None };
    let w = write(run(&row(Status::Error, 9), Ok(again)));
    assert_eq!(w.next_attempt_at, Some(now() + chrono::Duration::minutes(160)), "capped");
}

#[test]
fn permanent_failures_wait_for_a_change() {
    let r = row(Status::Initializing, 0);
    let f =
        Outcome::Failed { reason: Reason::MachineExited, message: "exited".into(), machine: None };
    let w = write(run(&r, Ok(f)));
    assert_eq!(
        (w.status, w.reason, w.attempts, w.next_attempt_at),
        (Status::Error, Reason::MachineExited, 1, None)
    );

    let w = write(run(&r, Err(FlyError::Permanent(info(422)).into())));
    assert_eq!(
        (w.status, w.reason, w.next_attempt_at),
        (Status::Error, Reason::ConfigRejected, None)
    );
    let msg = w.error_message.unwrap();
    assert!(msg.contains("will not fix itself") && msg.contains("'pending'"), "{msg}");
    assert!(!msg.contains("01REQ-ID-SECRET"), "request ids stay in the logs: {msg}");
}

#[test]
fn transient_errors_back_off_deterministically() {
    let r = row(Status::Initializing, 3);
    let d1 = run(&r, Err(FlyError::Transient(info(503)).into()));
    let d2 = run(&r, Err(FlyError::Transient(info(503)).into()));
    assert_eq!(d1, d2, "same now + same seed = same decision");
    let w = write(d1);
    assert_eq!(
        (w.status, w.reason, w.attempts, w.observed_generation),
        (Status::Error, Reason::FlyApiError, 4, None)
    );
    let at = w.next_attempt_at.unwrap();
    let cap = settings().backoff.ceiling(3);
    assert!(at > now() && at <= now() + chrono::Duration::from_std(cap).unwrap(), "{at}");
    let msg = w.error_message.unwrap();
    assert!(msg.contains("retrying automatically") && msg.contains("attempt 4"), "{msg}");
    assert!(!msg.contains("01REQ-ID-SECRET"), "{msg}");

    let w = write(run(&r, Err(ReconcileError::NotVisibleYet("x"))));
    assert_eq!(w.reason, Reason::WaitingForFly);
}

#[test]
fn a_rejected_token_is_global_and_writes_nothing() {
    let r = row(Status::Running, 0);
    let e: ReconcileError = FlyError::Unauthorized(info(401)).into();
    assert_eq!(e.policy(), Policy::Global(GlobalCondition::FlyTokenRejected));
    assert_eq!(run(&r, Err(e)), Decision::Blocked(GlobalCondition::FlyTokenRejected));
    assert!(GlobalCondition::FlyTokenRejected.describe().contains("FLY_API_TOKEN"));
}

#[test]
fn labels_and_kinds_form_fixed_sets() {
    let all = [
        FlyError::NotFound(info(404)),
        FlyError::NameTaken(info(422)),
        FlyError::Forbidden(info(403)),
        FlyError::Unauthorized(info(401)),
        FlyError::LeaseConflict(info(409)),
        FlyError::RateLimited { retry_after: None, info: info(429) },
        FlyError::Timeout(info(408)),
        FlyError::Transient(info(500)),
        FlyError::Permanent(info(400)),
        FlyError::AmbiguousCreate(info(500)),
        FlyError::Decode(info(200)),
        FlyError::Config(info(0)),
    ];
    for e in all {
        let e = ReconcileError::from(e);
        assert!(KINDS.contains(&e.kind()), "{} missing from KINDS", e.kind());
        let l = label(&Err(e));
        assert!(["error", "permanent", "blocked"].contains(&l), "{l}");
    }
    for e in [ReconcileError::Fenced, ReconcileError::NotVisibleYet("x")] {
        assert!(KINDS.contains(&e.kind()));
        assert_eq!(e.policy(), Policy::Retry);
    }
}
