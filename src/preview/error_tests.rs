//! The classifier's table: every error kind, on which call, with Fly up or down, and the
//! policy it must get.

use super::*;
use crate::fly::ErrorInfo;

fn info(status: u16, call: &'static str, message: &str) -> ErrorInfo {
    ErrorInfo {
        status: Some(status),
        message: message.into(),
        call: Some(call),
        ..ErrorInfo::default()
    }
}

fn on(call: &'static str, make: fn(ErrorInfo) -> FlyError, status: u16) -> ReconcileError {
    make(info(status, call, "boom")).into()
}

#[test]
fn the_table() {
    use GlobalCondition::*;
    use Policy::*;
    let image = FlyError::Permanent(info(422, "create_machine", "invalid image reference"));
    let rows: Vec<(ReconcileError, bool, Policy)> = vec![
        (on("get_machine", FlyError::Unauthorized, 401), false, Global(FlyTokenRejected)),
        (on("create_app", FlyError::Forbidden, 403), false, Global(FlyOrgForbidden)),
        (on("list_org_machines", FlyError::NotFound, 404), false, Global(FlyOrgNotFound)),
        (on("get_app", FlyError::Forbidden, 403), false, WaitForChange),
        (on("get_app", FlyError::NotFound, 404), false, Retry),
        (image.into(), false, Global(RunnerImageRejected)),
        (on("create_machine", FlyError::Permanent, 422), false, WaitForChange),
        (on("assign_ip", FlyError::Permanent, 400), false, WaitForChange),
        (on("create_app", FlyError::Transient, 503), false, Retry),
        (on("create_app", FlyError::Transient, 503), true, FlyDown),
        (on("get_machine", FlyError::Timeout, 408), true, FlyDown),
        (on("get_machine", rate_limited, 429), true, Retry),
        (FlyError::unavailable().into(), false, FlyDown),
        (on("create_machine", FlyError::AmbiguousCreate, 503), false, Retry),
        (on("create_machine", FlyError::Config, 0), false, WaitForChange),
        (ReconcileError::Fenced, false, Retry),
        (ReconcileError::NotVisibleYet("x"), false, Retry),
        (ReconcileError::Store(StoreError::Connect("down".into())), true, Retry),
        (
            ReconcileError::Rejected(Rejection {
                reason: Reason::InvalidSpec,
                message: "bad branch".into(),
                detail: None,
                machine: None,
            }),
            true,
            WaitForChange,
        ),
    ];
    for (e, fly_down, want) in rows {
        assert_eq!(classify(&e, fly_down), want, "{e} (Fly down: {fly_down})");
    }
}

fn rate_limited(info: ErrorInfo) -> FlyError {
    FlyError::RateLimited { retry_after: None, info }
}

#[test]
fn reasons_follow_the_policy() {
    let e = on("create_app", FlyError::Transient, 503);
    assert_eq!(e.reason(Policy::FlyDown), Reason::FlyUnavailable);
    assert_eq!(e.reason(Policy::Retry), Reason::FlyApiError);
    let e = on("create_machine", FlyError::Permanent, 422);
    assert_eq!(e.reason(classify(&e, false)), Reason::ConfigRejected);
    assert!(e.to_string().contains("create_machine"), "the failed call is named: {e}");
}

#[test]
fn labels_and_kinds_form_fixed_sets() {
    let all = [
        FlyError::NotFound(info(404, "get_app", "")),
        FlyError::NameTaken(info(422, "create_app", "")),
        FlyError::Forbidden(info(403, "get_app", "")),
        FlyError::Unauthorized(info(401, "get_app", "")),
        FlyError::LeaseConflict(info(409, "update_machine", "")),
        FlyError::RateLimited { retry_after: None, info: info(429, "get_app", "") },
        FlyError::Timeout(info(408, "get_app", "")),
        FlyError::Transient(info(500, "get_app", "")),
        FlyError::Permanent(info(400, "get_app", "")),
        FlyError::AmbiguousCreate(info(500, "create_machine", "")),
        FlyError::Decode(info(200, "get_app", "")),
        FlyError::Config(info(0, "get_app", "")),
        FlyError::unavailable(),
    ];
    for e in all {
        let e = ReconcileError::from(e);
        assert!(KINDS.contains(&e.kind()), "{} missing from KINDS", e.kind());
        let l = result_label(&e, classify(&e, false));
        assert!(["error", "permanent", "blocked"].contains(&l), "{l}");
    }
    assert_eq!(result_label(&ReconcileError::Fenced, Policy::Retry), "fenced");
    for e in [ReconcileError::Fenced, ReconcileError::NotVisibleYet("x")] {
        assert!(KINDS.contains(&e.kind()));
    }
}
