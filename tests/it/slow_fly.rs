//! Slow or partly failing Fly is not the user's error: rows keep retrying as `initializing`
//! with a reason, the message names the real next attempt, and they run once Fly answers.

use crate::support::harness::{Harness, is_running};
use crate::support::history::{self, Step};
use crate::support::*;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";

/// A retry step's message names its own `next_attempt_at` (to the second, UTC).
fn promises_its_due_time(s: &Step) -> bool {
    let (Some(msg), Some(at)) = (&s.error_message, s.next_attempt_at) else { return false };
    msg.contains(&format!("retrying automatically at {} UTC", at.format("%H:%M:%S")))
}

#[sqlx::test]
async fn one_5xx_on_machine_create_is_not_an_error(pool: PgPool) {
    history::record(&pool).await;
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    h.sim.add_fault("create_machine:500:first=1".parse().unwrap());
    let id = insert_row(&pool, USER_A, "blip", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(id, "running", is_running).await;
    let steps = history::steps(&pool, id).await;
    assert!(steps.iter().all(|s| s.status != "error"), "{steps:#?}");
    let retry = steps
        .iter()
        .find(|s| s.status_reason.as_deref() == Some("WaitingForFly"))
        .unwrap_or_else(|| panic!("the ambiguous create was retried: {steps:#?}"));
    assert_eq!((retry.status.as_str(), retry.attempts), ("initializing", 1), "{retry:?}");
    assert!(promises_its_due_time(retry), "{retry:?}");
    assert_eq!(h.sim.stats().machines_created_total, 1, "no duplicate machine");
    r.stop().await;
}

#[sqlx::test]
async fn a_partial_degradation_shows_no_error_and_converges(pool: PgPool) {
    history::record(&pool).await;
    let h = Harness::new(pool.clone(), SimConfig { seed: 7, ..SimConfig::default() }).await;
    for f in ["create_app:503:p=0.3", "create_machine:502:p=0.3", "get_machine:500:p=0.2"] {
        h.sim.add_fault(f.parse().unwrap());
    }
    h.sim.add_fault("*:latency=200ms".parse().unwrap());
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(insert_row(&pool, USER_A, &format!("deg-{i}"), Some(REPO), "main").await);
    }
    let r = h.start("a");
    h.wait_all("all running", 120, is_running).await;
    let mut retried = 0;
    for id in ids {
        let steps = history::steps(&pool, id).await;
        assert!(steps.iter().all(|s| s.status != "error"), "{steps:#?}");
        for s in steps.iter().filter(|s| s.attempts > 0 && s.error_message.is_some()) {
            assert!(promises_its_due_time(s), "{s:?}");
            retried += 1;
        }
    }
    assert!(retried > 0, "the faults made some rows retry");
    r.stop().await;
}
