//! Idle expiry of previews in `error`, end to end (daemon + Postgres + simulator): a preview
//! whose machine failed (the project has no dev script: the runner exits, the machine stays in
//! its app) is due when its idle TTL ends like a running one; its pass deletes the Fly app,
//! writes `stopped`/`Expired` and gives its quota slot to the user's refused row; opening it
//! deploys it again, within the user's quota.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";
/// A branch whose runner exits: `error`, reason `NoDevScript`, machine and app kept.
const NO_DEV_SCRIPT: &str = "sim-no-dev-script";
const HOUR: Duration = Duration::from_secs(3600);

fn settings(ttl: Duration, quota: u32) -> Settings {
    Settings { idle_ttl: ttl, max_previews_per_user: quota, ..Settings::for_tests("personal") }
}

fn failed(r: &PreviewRow) -> bool {
    r.status == Status::Error && r.status_reason == Some(Reason::NoDevScript)
}

fn expired(r: &PreviewRow) -> bool {
    r.status == Status::Stopped && r.status_reason == Some(Reason::Expired)
}

fn refused(r: &PreviewRow) -> bool {
    r.status == Status::Error && r.status_reason == Some(Reason::QuotaExceeded)
}

/// The time passes: the row was last deployed two hours ago and its expiry (an hour after
/// that) is due now, as the controller wrote it (`next_attempt_at`) would have come due.
async fn two_hours_later(pool: &PgPool, id: Uuid) {
    let set = "requested_at = requested_at - interval '2 hours', \
               next_attempt_at = requested_at - interval '1 hour'";
    as_controller(pool, id, set).await;
}

#[sqlx::test]
async fn a_failed_preview_expires_gives_its_slot_back_and_deploys_again_when_opened(pool: PgPool) {
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings(HOUR, 1)).await;
    let broken = insert_row(&pool, USER_A, "broken", Some(REPO), NO_DEV_SCRIPT).await;
    let r = h.start("a");
    let row = h.wait_row(broken, "failed", failed).await;
    let (app, machine) = (row.fly_app_name.clone(), row.fly_machine_id.clone());
    assert!(machine.is_some() && h.sim.app_names().contains(&app), "it holds an app: {row:?}");
    let due = row.requested_at + chrono::Duration::seconds(3600);
    assert_eq!(row.next_attempt_at, Some(due), "due when it expires, not never");
    let other = insert_row(&pool, USER_A, "other", Some(REPO), "main").await;
    h.wait_row(other, "refused: the failed preview holds the slot", refused).await;
    r.stop().await;

    two_hours_later(&pool, broken).await;
    let r = h.start("b");
    let row = h.wait_row(broken, "expired", expired).await;
    let msg = "stopped after 1 hour unused; opening the project starts it again";
    assert_eq!(row.error_message.as_deref(), Some(msg));
    assert_eq!((row.fly_machine_id.as_deref(), row.next_attempt_at), (None, None));
    assert!(!h.sim.app_names().contains(&app), "its Fly app (and machine) is deleted");
    assert_eq!(r.metrics.expired.get(), 1);
    h.wait_row(other, "deployed into the freed slot", is_running).await;

    // Opened while the other preview holds the only slot: refused, like any deploy.
    open_project(&pool, broken).await;
    let reopened = h.wait_row(broken, "refused", refused).await;
    assert_eq!(reopened.generation, row.generation + 1, "a deploy request");
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(other)
        .execute(&pool)
        .await
        .unwrap();
    let again = h.wait_row(broken, "deployed again (and failed again)", failed).await;
    assert!(h.sim.app_names().contains(&app), "a new app");
    assert_ne!(again.fly_machine_id, machine, "a new machine");
    r.stop().await;
}

/// A failed preview that never got an app (its user's quota refused it) holds nothing on
/// Fly: it is never due, however old.
#[sqlx::test]
async fn a_refused_preview_is_never_due(pool: PgPool) {
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings(HOUR, 1)).await;
    let first = insert_row(&pool, USER_A, "first", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(first, "running", is_running).await;
    let second = insert_row(&pool, USER_A, "second", Some(REPO), "main").await;
    let row = h.wait_row(second, "refused", refused).await;
    assert_eq!(row.next_attempt_at, None, "parked: due never");
    assert!(!row.fly_app_created);
    r.stop().await;
}
