//! The teardown's pure decisions.

use super::*;
use crate::fly::ErrorInfo;
use crate::ops::metrics::TEARDOWN_RESULTS;
use crate::preview::outcome::OUTAGE_RECHECK;
use crate::store::StoreError;
use rand::SeedableRng;
use rand::rngs::StdRng;

const B: Backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(300) };

/// An error of the Fly call `call` (the teardown makes `list_machines`, `delete_app`,
/// `get_app`).
fn on(call: &'static str, make: fn(ErrorInfo) -> FlyError) -> ReconcileError {
    make(ErrorInfo { call: Some(call), ..ErrorInfo::default() }).into()
}

/// What a failure means for the tombstone, with Fly up or down, after `attempts`.
fn decide(e: &ReconcileError, fly_down: bool, attempts: i32) -> Action<GlobalCondition> {
    let now = DateTime::<Utc>::UNIX_EPOCH;
    action(error::classify(e, fly_down), attempts, &B, now, &mut StdRng::seed_from_u64(3))
}

/// The delay of a requeue, from the fixed `now` above.
fn after(a: Action<GlobalCondition>) -> Duration {
    let at = a.due_at().expect("a requeue");
    (at - DateTime::<Utc>::UNIX_EPOCH).to_std().unwrap()
}

#[test]
fn a_rejected_token_blocks_everything() {
    for call in ["list_machines", "delete_app", "get_app"] {
        let e = on(call, FlyError::Unauthorized);
        assert_eq!(decide(&e, false, 0), Action::Block(GlobalCondition::FlyTokenRejected));
    }
}

#[test]
fn an_outage_looks_again_after_30s_whatever_the_attempts() {
    let cases = [
        (FlyError::unavailable().into(), false),
        (on("delete_app", FlyError::Transient), true),
        (on("list_machines", FlyError::Timeout), true),
    ];
    for (e, fly_down) in &cases {
        for attempts in [0, 3, 20] {
            assert_eq!(after(decide(e, *fly_down, attempts)), OUTAGE_RECHECK, "{e}");
        }
    }
    assert_eq!(OUTAGE_RECHECK, Duration::from_secs(30));
}

#[test]
fn everything_else_backs_off_by_the_persisted_attempts() {
    let rate_limited = |info| FlyError::RateLimited { retry_after: None, info };
    let cases = [
        on("delete_app", rate_limited),
        on("delete_app", FlyError::Transient),
        on("get_app", FlyError::Timeout),
        on("delete_app", FlyError::Permanent),
        on("list_machines", FlyError::Decode),
        ReconcileError::Store(StoreError::Connect("down".into())),
        ReconcileError::NotVisibleYet("still listed"),
        ReconcileError::Fenced,
    ];
    for e in &cases {
        for attempts in [0, 1, 4, 12] {
            let d = after(decide(e, false, attempts));
            let ceiling = B.ceiling(u32::try_from(attempts).unwrap());
            assert!(d >= Duration::from_millis(10) && d <= ceiling, "{e} after {attempts}: {d:?}");
        }
    }
    // the persisted count is what grows the delay (seeded: the same draw, a larger ceiling)
    let e = on("delete_app", FlyError::Transient);
    assert!(after(decide(&e, false, 8)) > after(decide(&e, false, 0)));
}

#[test]
fn every_verdict_is_a_pre_initialised_metric_label() {
    let verdicts = [
        Verdict::Destroyed,
        Verdict::Absent,
        Verdict::Kept(Keep::NotOurPrefix),
        Verdict::Kept(Keep::NameInUse),
        Verdict::Kept(Keep::Refused),
        Verdict::Kept(Keep::ForeignMachines),
    ];
    let labels: std::collections::BTreeSet<&str> = verdicts.iter().map(|v| v.label()).collect();
    let known: std::collections::BTreeSet<&str> = TEARDOWN_RESULTS.iter().copied().collect();
    assert_eq!(labels, known);
}

#[test]
fn only_our_machines_for_the_deleted_row_allow_the_delete() {
    let row = Uuid::new_v4();
    let machine = |metadata: serde_json::Value, state: &str| -> Machine {
        serde_json::from_value(serde_json::json!({
            "id": "m1", "state": state, "config": {"metadata": metadata},
        }))
        .unwrap()
    };
    let ours =
        serde_json::json!({"managed-by": "fly-preview-controller", "preview-id": row.to_string()});
    let other_row = serde_json::json!({"managed-by": "fly-preview-controller", "preview-id": Uuid::new_v4().to_string()});
    let foreign = serde_json::json!({"fly_platform_version": "v2"});
    assert!(all_ours(&[], row), "an app without machines");
    assert!(all_ours(&[machine(ours.clone(), "started")], row));
    assert!(!all_ours(&[machine(ours.clone(), "started"), machine(other_row, "stopped")], row));
    assert!(!all_ours(&[machine(foreign.clone(), "started")], row));
    assert!(
        all_ours(&[machine(ours, "started"), machine(foreign, "destroyed")], row),
        "inactive machines do not count"
    );
}
