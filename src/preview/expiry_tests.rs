use std::time::Duration;

use chrono::Duration as Span;

use super::*;
use crate::preview::test_rows::{now, row};

const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// A settled running preview, last deployed `deployed_ago` and opened `opened_ago` before now.
fn running(deployed_ago: i64, opened_ago: Option<i64>, reason: Reason) -> PreviewRow {
    PreviewRow {
        observed_generation: 3,
        status_reason: Some(reason),
        requested_at: now() - Span::hours(deployed_ago),
        opened_at: opened_ago.map(|h| now() - Span::hours(h)),
        ..row(Status::Running, 0)
    }
}

#[test]
fn a_preview_expires_a_ttl_after_its_last_open_or_deploy() {
    let r = running(24 * 30, Some(24 * 8), Reason::Ready);
    assert_eq!(due(WEEK, &r), Some(now() - Span::hours(24)), "opened 8 days ago");
    assert_eq!(step(WEEK, &r, now()), Idle::Expire);
    let r = running(24 * 30, Some(24 * 6), Reason::Idle);
    assert_eq!(step(WEEK, &r, now()), Idle::Active, "opened 6 days ago");
    let r = running(24 * 8, None, Reason::Ready);
    assert_eq!(step(WEEK, &r, now()), Idle::Expire, "never opened: its last deploy counts");
    let r = running(24 * 6, None, Reason::Ready);
    assert_eq!(step(WEEK, &r, now()), Idle::Active);
    let r = running(24, Some(24 * 30), Reason::Ready);
    assert_eq!(step(WEEK, &r, now()), Idle::Active, "deployed yesterday: in use");
    assert_eq!(due(WEEK, &r), Some(now() + Span::hours(24 * 6)));
}

#[test]
fn a_zero_ttl_never_expires() {
    let r = running(24 * 365, Some(24 * 365), Reason::Ready);
    assert_eq!(due(Duration::ZERO, &r), None);
    assert_eq!(step(Duration::ZERO, &r, now()), Idle::Active);
    let asked = PreviewRow { status_reason: Some(Reason::WakeRequested), ..r };
    assert_eq!(step(Duration::ZERO, &asked, now()), Idle::Wake, "a wake needs no TTL");
}

#[test]
fn only_a_settled_running_or_failed_row_expires_and_only_a_running_one_wakes() {
    let old = running(24 * 30, None, Reason::WakeRequested);
    assert_eq!(step(WEEK, &old, now()), Idle::Expire, "expired before it was opened");
    let asked = running(1, Some(0), Reason::WakeRequested);
    assert_eq!(step(WEEK, &asked, now()), Idle::Wake);
    let redeploying = PreviewRow { observed_generation: 2, ..old.clone() };
    assert_eq!(step(WEEK, &redeploying, now()), Idle::Active, "a deploy is requested");
    for status in [Status::Initializing, Status::Pending] {
        let r = PreviewRow { status, ..old.clone() };
        assert_eq!(step(WEEK, &r, now()), Idle::Active, "{status}");
    }
    let stopping = PreviewRow { desired_state: DesiredState::Stopped, ..old.clone() };
    assert_eq!(step(WEEK, &stopping, now()), Idle::Active, "a teardown is the stop's");
    let expired =
        PreviewRow { status: Status::Stopped, status_reason: Some(Reason::Expired), ..old };
    assert_eq!(step(WEEK, &expired, now()), Idle::StayExpired);
    let reopened = PreviewRow { generation: 4, ..expired.clone() };
    assert_eq!(step(WEEK, &reopened, now()), Idle::Active, "reopened: deploy it");
    let stopped = PreviewRow { status_reason: Some(Reason::Stopped), ..expired };
    assert_eq!(step(WEEK, &stopped, now()), Idle::Active);
}

/// A settled preview in `error`, last deployed `deployed_ago` hours before now.
fn failed(deployed_ago: i64, reason: Reason) -> PreviewRow {
    PreviewRow { status: Status::Error, ..running(deployed_ago, None, reason) }
}

#[test]
fn a_failed_preview_that_may_hold_an_app_expires_like_a_running_one() {
    for reason in [Reason::MachineExited, Reason::DevServerCrashed, Reason::ConfigRejected] {
        let old = failed(24 * 8, reason);
        assert_eq!(step(WEEK, &old, now()), Idle::Expire, "{reason}");
        assert_eq!(error_due(WEEK, &old, reason), Some(now() - Span::hours(24)), "{reason}");
        let recent = failed(24 * 6, reason);
        assert_eq!(step(WEEK, &recent, now()), Idle::Active, "{reason}: used 6 days ago");
        assert_eq!(error_due(WEEK, &recent, reason), Some(now() + Span::hours(24)));
        let opened = PreviewRow { opened_at: Some(now() - Span::hours(1)), ..old.clone() };
        assert_eq!(step(WEEK, &opened, now()), Idle::Active, "{reason}: opened an hour ago");
        assert_eq!(step(Duration::ZERO, &old, now()), Idle::Active, "a zero TTL: never");
        assert_eq!(error_due(Duration::ZERO, &old, reason), None);
    }
    let retried = failed(24 * 8, Reason::DatabaseError);
    assert_eq!(step(WEEK, &retried, now()), Idle::Expire, "a retry that comes due past it");
    let redeploying = PreviewRow { generation: 4, ..failed(24 * 8, Reason::MachineExited) };
    assert_eq!(step(WEEK, &redeploying, now()), Idle::Active, "a deploy is requested");
}

#[test]
fn a_failed_row_that_holds_nothing_on_fly_never_expires() {
    for reason in [Reason::QuotaExceeded, Reason::InvalidSpec, Reason::NameOwnedElsewhere] {
        let r = failed(24 * 30, reason);
        assert_eq!(step(WEEK, &r, now()), Idle::Active, "{reason}");
        assert_eq!(error_due(WEEK, &r, reason), None, "{reason}: waits for a change");
    }
    let never_deployed =
        PreviewRow { fly_app_created: false, ..failed(24 * 30, Reason::MachineExited) };
    assert_eq!(step(WEEK, &never_deployed, now()), Idle::Active, "no app ever created");
    assert_eq!(error_due(WEEK, &never_deployed, Reason::DatabaseError), None);
    let stopping = PreviewRow {
        desired_state: DesiredState::Stopped,
        ..failed(24 * 30, Reason::MachineExited)
    };
    assert_eq!(error_due(WEEK, &stopping, Reason::MachineExited), None, "the stop's");
}

#[test]
fn a_wake_that_failed_is_retried_within_the_window_after_the_open() {
    let failed = PreviewRow { attempts: 1, ..running(1, Some(0), Reason::FlyUnavailable) };
    assert_eq!(step(WEEK, &failed, now()), Idle::Wake, "opened just now, retrying");
    let later = now() + Span::seconds(301);
    assert_eq!(step(WEEK, &failed, later), Idle::Active, "past the window: the deploy path");
    let settled = PreviewRow { attempts: 0, ..failed };
    assert_eq!(step(WEEK, &settled, now()), Idle::Active, "no retry: nothing to wake");
}

#[test]
fn the_message_says_the_ttl_as_people_do() {
    assert_eq!(message(WEEK), "stopped after 7 days unused; opening the project starts it again");
    assert!(message(Duration::from_secs(86_400)).contains("after 1 day unused"));
    assert!(message(Duration::from_secs(36 * 3_600)).contains("after 36 hours unused"));
    assert!(message(Duration::from_secs(120)).contains("after 2 minutes unused"));
    assert!(message(Duration::from_secs(2)).contains("after 2 seconds unused"));
}

#[test]
fn the_ttl_parses_humantime_or_zero() {
    assert_eq!(parse_ttl("7d"), Ok(WEEK));
    assert_eq!(parse_ttl("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_ttl("0"), Ok(Duration::ZERO));
    assert!(parse_ttl("soon").is_err());
}
