//! The pure outcome decisions: one table of pass results and the write (or no write) each
//! must produce, at a fixed `now` with a seeded rng.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::fly::{ErrorInfo, FlyError};
use crate::preview::error::{Rejection, classify};
use crate::preview::test_rows::{now, row};

fn settings() -> Settings {
    let mut s = Settings::for_tests("personal");
    s.health_poll = Duration::from_secs(1);
    s
}

#[allow(clippy::needless_pass_by_value)] // the table reads better with owned outcomes
fn ok(r: &PreviewRow, o: Outcome) -> StatusWrite {
    decide(&settings(), r, &o, now())
}

/// The runtime's sequence for a failed pass: policy, action, then the write (none on a block).
#[allow(clippy::needless_pass_by_value)]
fn failed(r: &PreviewRow, e: ReconcileError) -> Result<StatusWrite, GlobalCondition> {
    let policy = classify(&e, false);
    match error_action(&settings(), r, &e, policy, now(), &mut StdRng::seed_from_u64(7)) {
        Action::Block(c) => Err(c),
        action => Ok(error_write(r, &e, policy, action)),
    }
}

fn info(status: u16) -> ErrorInfo {
    ErrorInfo {
        status: Some(status),
        request_id: Some("01REQ-ID-SECRET".into()),
        message: "boom".into(),
        ..ErrorInfo::default()
    }
}

#[test]
fn success_outcomes() {
    let r = row(Status::Initializing, 2);
    let m = MachineRef { id: "m1".into(), state: MachineState::Started };
    let w = ok(&r, Outcome::Running { machine: m.clone() });
    assert_eq!(
        (w.status, w.reason, w.attempts, w.next_attempt_at),
        (Status::Running, Reason::Ready, 0, None)
    );
    assert_eq!(action_of(&w), Action::AwaitChange);
    assert_eq!((w.fly_machine_id.as_deref(), w.observed_generation), (Some("m1"), Some(3)));
    assert_eq!(w.preview_url.as_deref(), Some("https://roseram-0000abcd.fly.dev"));

    let suspended = MachineRef { state: MachineState::Suspended, ..m };
    assert_eq!(ok(&r, Outcome::Running { machine: suspended }).reason, Reason::Idle);

    let p = Outcome::Progressing {
        reason: Reason::WaitingForHealthCheck,
        machine: None,
        retry_in: Duration::from_secs(2),
    };
    let w = ok(&r, p);
    assert_eq!((w.status, w.attempts), (Status::Initializing, 2), "progress keeps the attempts");
    assert_eq!(action_of(&w), Action::RequeueAt(now() + chrono::Duration::seconds(2)));
    assert_eq!(w.fly_machine_id.as_deref(), Some("m-old"), "no machine seen: keep the known one");

    let w = ok(&r, Outcome::Stopped);
    assert_eq!((w.status, w.reason, w.fly_machine_id), (Status::Stopped, Reason::Stopped, None));

    let w = ok(&row(Status::Running, 0), Outcome::TearingDown);
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
    let w = ok(&r, Outcome::Throttled { until, message: "later".into() });
    assert_eq!(
        (w.status, w.reason, w.next_attempt_at, w.observed_generation),
        (Status::Running, Reason::RedeployThrottled, Some(until), None),
        "status stays truthful; the change stays pending"
    );
    assert_eq!(w.error_message.as_deref(), Some("later"));
}

#[test]
fn a_quota_refusal_is_parked_until_a_slot_frees() {
    let w = ok(&row(Status::Pending, 0), Outcome::Refused { message: "full".into() });
    assert_eq!((w.status, w.reason, w.attempts), (Status::Error, Reason::QuotaExceeded, 1));
    assert_eq!(w.next_attempt_at, None, "parked: only a wake-up brings it back");
    let w = ok(&row(Status::Error, 9), Outcome::Refused { message: "x".into() });
    assert_eq!((w.next_attempt_at, w.attempts), (None, 10));
    assert_eq!((w.fly_machine_id, w.machine_state), (None, None), "it keeps no machine");
}

#[test]
fn permanent_failures_wait_for_a_change() {
    let r = row(Status::Initializing, 0);
    let rejected = Rejection {
        reason: Reason::MachineExited,
        message: "exited".into(),
        detail: Some("exit code 3\nclone_failed: no such branch".into()),
        machine: None,
    };
    let w = failed(&r, ReconcileError::Rejected(rejected)).unwrap();
    assert_eq!(
        (w.status, w.reason, w.attempts, w.next_attempt_at),
        (Status::Error, Reason::MachineExited, 1, None)
    );
    assert_eq!(w.error_message.as_deref(), Some("exited"));
    assert_eq!(w.detail.as_deref(), Some("exit code 3\nclone_failed: no such branch"));

    let w = failed(&r, FlyError::Permanent(info(422)).into()).unwrap();
    assert_eq!(
        (w.status, w.reason, w.next_attempt_at),
        (Status::Error, Reason::ConfigRejected, None)
    );
    let msg = w.error_message.unwrap();
    assert!(msg.contains("operators have the details") && !msg.contains("'pending'"), "{msg}");
    assert!(!msg.contains("01REQ-ID-SECRET"), "request ids stay in the logs: {msg}");
}

/// A failure that waits for a change is due when the row expires if it may hold a Fly app
/// (a crashed machine, a configuration Fly refused), never if it holds nothing.
#[test]
fn a_failure_that_may_hold_an_app_is_due_when_the_row_expires() {
    let mut s = settings();
    s.idle_ttl = Duration::from_secs(7 * 86_400);
    let week = now() + chrono::Duration::days(7);
    let r = PreviewRow { opened_at: Some(now()), ..row(Status::Initializing, 0) };
    let rejected = |reason| {
        let rejection = Rejection { reason, message: "m".into(), detail: None, machine: None };
        ReconcileError::Rejected(rejection)
    };
    let fail = |r: &PreviewRow, e: ReconcileError| {
        let policy = classify(&e, false);
        let action = error_action(&s, r, &e, policy, now(), &mut StdRng::seed_from_u64(7));
        error_write(r, &e, policy, action)
    };
    for e in [rejected(Reason::MachineExited), FlyError::Permanent(info(422)).into()] {
        let w = fail(&r, e);
        assert_eq!((w.status, w.next_attempt_at), (Status::Error, Some(week)), "{:?}", w.reason);
    }
    for reason in [Reason::InvalidSpec, Reason::NameOwnedElsewhere] {
        assert_eq!(fail(&r, rejected(reason)).next_attempt_at, None, "{reason}");
    }
    let no_app = PreviewRow { fly_app_created: false, ..r.clone() };
    assert_eq!(fail(&no_app, rejected(Reason::MachineExited)).next_attempt_at, None);
    let refused = Outcome::Refused { message: "quota".into() };
    assert_eq!(decide(&s, &r, &refused, now()).next_attempt_at, None, "parked");
}

#[test]
fn transient_errors_back_off_deterministically() {
    let r = row(Status::Initializing, 3);
    let w1 = failed(&r, FlyError::Transient(info(503)).into());
    let w2 = failed(&r, FlyError::Transient(info(503)).into());
    assert_eq!(w1, w2, "same now + same seed = same decision");
    let w = w1.unwrap();
    assert_eq!(
        (w.status, w.reason, w.attempts, w.observed_generation),
        (Status::Initializing, Reason::FlyApiError, 4, None)
    );
    let at = w.next_attempt_at.unwrap();
    let cap = settings().backoff.ceiling(3);
    assert!(at > now() && at <= now() + chrono::Duration::from_std(cap).unwrap(), "{at}");
    let msg = w.error_message.unwrap();
    let promised = format!("retrying automatically at {} UTC", at.format("%H:%M:%S"));
    assert!(msg.contains(&promised) && msg.contains("attempt 4"), "{msg}");
    assert!(!msg.contains("01REQ-ID-SECRET"), "{msg}");

    let w = failed(&r, ReconcileError::NotVisibleYet("x")).unwrap();
    assert_eq!(w.reason, Reason::WaitingForFly);
}

#[test]
fn flys_trouble_is_never_an_error_of_the_row() {
    let fly_errors: Vec<fn() -> ReconcileError> = vec![
        || FlyError::Transient(info(503)).into(),
        || FlyError::Timeout(info(408)).into(),
        || FlyError::AmbiguousCreate(info(502)).into(),
        || FlyError::RateLimited { retry_after: None, info: info(429) }.into(),
        || ReconcileError::NotVisibleYet("machine create was ambiguous"),
    ];
    for attempts in [0, 1, 2, 5, 20] {
        for e in &fly_errors {
            for (before, after) in [
                (Status::Running, Status::Running),
                (Status::Initializing, Status::Initializing),
                (Status::Pending, Status::Initializing),
                (Status::Error, Status::Initializing),
            ] {
                let w = failed(&row(before, attempts), e()).unwrap();
                assert_eq!(w.status, after, "{before} at attempt {attempts}: {:?}", e());
                assert_eq!(w.attempts, attempts + 1, "it still backs off");
            }
        }
    }
    let w = failed(&row(Status::Error, 0), ReconcileError::NotVisibleYet("x")).unwrap();
    assert_eq!(w.reason, Reason::WaitingForFly);
    // Our own database is not the user's to fix either, but it does not say the deploy began.
    let db = || ReconcileError::Store(crate::store::StoreError::Query(sqlx::Error::PoolTimedOut));
    assert_eq!(failed(&row(Status::Pending, 0), db()).unwrap().status, Status::Pending);
    let mut stopping = row(Status::Running, 4);
    stopping.desired_state = DesiredState::Stopped;
    let w = failed(&stopping, FlyError::Transient(info(503)).into()).unwrap();
    assert_eq!(w.status, Status::Running, "truthful until the app is gone");
}

#[test]
fn an_outage_parks_the_row_with_its_status_and_attempts() {
    let r = row(Status::Running, 2);
    let w = failed(&r, FlyError::unavailable().into()).unwrap();
    assert_eq!(
        (w.status, w.reason, w.attempts, w.observed_generation),
        (Status::Running, Reason::FlyUnavailable, 2, None)
    );
    assert_eq!(w.next_attempt_at, Some(now() + chrono::Duration::seconds(30)));
}

#[test]
fn a_rejected_token_is_global_and_writes_nothing() {
    let r = row(Status::Running, 0);
    let e: ReconcileError = FlyError::Unauthorized(info(401)).into();
    assert_eq!(failed(&r, e), Err(GlobalCondition::FlyTokenRejected));
    assert!(GlobalCondition::FlyTokenRejected.describe().contains("FLY_API_TOKEN"));
}

#[test]
fn a_spent_fly_budget_gives_the_slot_back_without_counting() {
    let r = row(Status::Initializing, 2);
    let after = Duration::from_secs(5);
    let e = FlyError::RateLimited { retry_after: Some(after), info: info(429) };
    let w = failed(&r, e.into()).unwrap();
    assert_eq!((w.status, w.reason, w.attempts), (Status::Initializing, Reason::FlyApiError, 2));
    let at = w.next_attempt_at.unwrap();
    let (lo, hi) =
        (now() + chrono::Duration::seconds(5), now() + chrono::Duration::milliseconds(5500));
    assert!(at >= lo && at <= hi, "{at}");
    let msg = w.error_message.unwrap();
    assert!(msg.contains(&format!("retrying automatically at {} UTC", at.format("%H:%M:%S"))));
    assert!(!msg.contains("attempt"), "{msg}");
    let policy = classify(
        &FlyError::RateLimited { retry_after: Some(after), info: info(429) }.into(),
        false,
    );
    assert_eq!(policy, Policy::Wait(after));
    assert_eq!(crate::preview::error::result_label(&ReconcileError::Fenced, policy), "fenced");
}

#[test]
fn a_settled_preview_is_due_when_it_expires_and_an_expired_one_waits_to_be_opened() {
    let mut s = settings();
    s.idle_ttl = Duration::from_secs(7 * 86_400);
    let r = PreviewRow { opened_at: Some(now()), ..row(Status::Initializing, 0) };
    let m = MachineRef { id: "m1".into(), state: MachineState::Started };
    let week = now() + chrono::Duration::days(7);
    let w = decide(&s, &r, &Outcome::Running { machine: m.clone() }, now());
    assert_eq!((w.status, w.next_attempt_at), (Status::Running, Some(week)));
    let woken = Outcome::Woken { machine: m, from: MachineState::Suspended };
    let w = decide(&s, &r, &woken, now());
    assert_eq!(
        (w.status, w.reason, w.next_attempt_at),
        (Status::Running, Reason::Ready, Some(week))
    );
    let w = decide(&s, &row(Status::Running, 0), &Outcome::Expired, now());
    assert_eq!((w.status, w.reason), (Status::Stopped, Reason::Expired));
    assert_eq!((w.fly_machine_id, w.machine_state, w.next_attempt_at), (None, None, None));
    assert_eq!(w.observed_generation, Some(3));
    let msg = "stopped after 7 days unused; opening the project starts it again";
    assert_eq!(w.error_message.as_deref(), Some(msg));
}

/// A retry's message says "at" only of a row the claim ranks with started work (claimed at
/// that time, ahead of queued work), and "after" of one that waits behind queued work.
#[test]
fn a_retry_names_its_time_as_at_only_where_the_claim_keeps_it() {
    let fly = || ReconcileError::from(FlyError::Transient(info(503)));
    let db = || ReconcileError::Store(crate::store::StoreError::Query(sqlx::Error::PoolTimedOut));
    let budget = || {
        let e =
            FlyError::RateLimited { retry_after: Some(Duration::from_secs(5)), info: info(429) };
        ReconcileError::from(e)
    };
    let settled = |status, attempts| {
        let mut r = row(status, attempts);
        r.observed_generation = r.generation;
        r
    };
    let cases = [
        (row(Status::Pending, 0), fly(), "at"), // a deploy that reached Fly: initializing
        (row(Status::Initializing, 2), fly(), "at"),
        (settled(Status::Initializing, 0), budget(), "at"), // a booting machine's re-check
        (row(Status::Pending, 0), db(), "after"),           // not started on Fly
        (row(Status::Pending, 0), budget(), "after"),
        (settled(Status::Running, 1), fly(), "after"), // periodic verification
    ];
    for (r, e, word) in cases {
        let w = failed(&r, e).unwrap();
        let at = w.next_attempt_at.unwrap().format("%H:%M:%S");
        let msg = w.error_message.clone().unwrap();
        let named = format!("retrying automatically {word} {at} UTC");
        assert!(msg.contains(&named), "{} → {msg}", r.status);
        assert_eq!(ranks_with_started_work(&r, &w), word == "at", "{msg}");
    }
}

#[test]
fn a_retry_after_flys_own_trouble_waits_at_most_the_fly_trouble_cap() {
    let mut s = settings();
    s.backoff = Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(300) };
    let r = row(Status::Initializing, 9); // ceiling 256 s under the row backoff
    let delays = |e: &ReconcileError| -> Vec<Duration> {
        let policy = classify(e, false);
        assert_eq!(policy, Policy::Retry, "{e:?}");
        (0..200)
            .map(|seed| {
                let a = error_action(&s, &r, e, policy, now(), &mut StdRng::seed_from_u64(seed));
                let due = a.due_at().expect("a retry has a due time");
                (due - now()).to_std().expect("due after now")
            })
            .collect()
    };
    let fly = ReconcileError::Fly(FlyError::Transient(info(503)));
    assert!(fly.is_fly_trouble());
    assert!(delays(&fly).iter().all(|d| *d <= FLY_TROUBLE_CAP), "Fly's 503: at most 30 s");
    let store = ReconcileError::Store(crate::store::StoreError::Connect("refused".into()));
    assert!(!store.is_fly_trouble());
    assert!(delays(&store).iter().any(|d| *d > FLY_TROUBLE_CAP), "other failures: the row backoff");
}
