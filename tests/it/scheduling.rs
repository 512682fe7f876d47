//! The scheduler's timing and order: re-checks run at their due time whatever the backstop
//! poll is, and a pass never holds a worker while Fly boots a machine.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";

#[sqlx::test]
async fn a_recheck_runs_at_its_due_time_with_a_one_hour_poll(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.poll_interval = Duration::from_secs(3600);
    s.boot_estimate = Duration::from_millis(1500);
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let r = h.start("a");
    h.eventually("ready (listener up)", || r.health.ready().is_ok()).await;
    let id = insert_row(&pool, USER_A, "due-1", Some(REPO), "main").await;
    // The pass that created the machine ended and scheduled the re-check ~1.5 s later.
    let booting = h
        .wait_row(id, "a scheduled re-check", |r| {
            r.status == Status::Initializing
                && r.status_reason == Some(Reason::WaitingForMachine)
                && r.lease_owner.is_none()
        })
        .await;
    let due = booting.next_attempt_at.expect("a re-check is scheduled");
    // wait_row gives up after 60 s, far below the 1 h poll: only the due time can wake it.
    let row = h.wait_row(id, "running", is_running).await;
    let late = row.last_transition_at - due;
    eprintln!("re-check ran {late} after its due time");
    assert!(late >= chrono::Duration::zero(), "re-checked {late} before its due time");
    assert!(late < chrono::Duration::milliseconds(500), "re-checked {late} after its due time");
    let calls = h.calls_for(&row.fly_app_name);
    assert!(calls.len() <= 6, "happy path is at most 6 Fly calls: {calls:?}");
    assert!(!calls.iter().any(|c| c.contains("/wait")), "no pass waited for the boot: {calls:?}");
    assert_eq!(h.sim.stats().machines_created_total, 1);
    r.stop().await;
}
