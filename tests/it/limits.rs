//! Per-user limits: the quota of previews wanting to run, and the per-row redeploy budget.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use chrono::Utc;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";

async fn set_status(pool: &PgPool, id: Uuid, status: &str) {
    sqlx::query("UPDATE public.fly_preview_apps SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
}

fn refused(r: &PreviewRow) -> bool {
    r.status == Status::Error && r.status_reason == Some(Reason::QuotaExceeded)
}

#[sqlx::test]
async fn rows_beyond_the_quota_wait_without_fly_calls_and_deploy_when_a_slot_frees(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = 2;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let mut mine = Vec::new();
    for i in 0..4 {
        mine.push(insert_row(&pool, USER_A, &format!("q-{i}"), Some(REPO), "main").await);
    }
    let other = insert_row(&pool, USER_B, "q-b", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(other, "the other user's preview runs", is_running).await;
    let rows = h.wait_all("converged", 60, |r| is_running(r) || refused(r)).await;
    let (waiting, running): (Vec<_>, Vec<_>) =
        rows.iter().filter(|r| r.user_id.to_string() == USER_A).partition(|r| refused(r));
    assert_eq!((running.len(), waiting.len()), (2, 2), "{rows:#?}");
    for w in &waiting {
        let msg = w.error_message.as_deref().unwrap();
        assert!(msg.contains("limit 2") && msg.contains("'stopped'"), "actionable: {msg}");
        assert_eq!(w.next_attempt_at, None, "parked: woken, never polled");
        assert!(h.calls_for(&w.fly_app_name).is_empty(), "no Fly call for a refused row");
    }
    assert_eq!(r.metrics.quota_refusals.get(), 2);
    // The user stops one preview (as the web app does): the oldest refused row deploys.
    set_status(&pool, running[0].id, "stopped").await;
    let oldest = waiting.iter().min_by_key(|w| (w.created_at, w.id)).unwrap();
    h.wait_row(oldest.id, "deploys by itself", is_running).await;
    // The user deletes another: the last refused row deploys too.
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(running[1].id)
        .execute(&pool)
        .await
        .unwrap();
    let last = waiting.iter().find(|w| w.id != oldest.id).unwrap();
    h.wait_row(last.id, "deploys by itself", is_running).await;
    assert!(r.metrics.encode().contains("fly_preview_quota_refusals_total 2"));
    r.stop().await;
}

fn throttled(r: &PreviewRow) -> bool {
    r.status_reason == Some(Reason::RedeployThrottled) && r.lease_owner.is_none()
}

#[sqlx::test]
async fn toggling_a_row_is_bounded_by_its_redeploy_budget_and_coalesces(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.redeploy_budget = 2;
    s.redeploy_window = Duration::from_secs(3600);
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "toggle", Some(REPO), "main").await;
    let r = h.start("a");
    let app = h.wait_row(id, "running", is_running).await.fly_app_name;
    // Two changes fit the budget (the first deploy is free): stop, then deploy again.
    set_status(&pool, id, "stopped").await;
    h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    set_status(&pool, id, "pending").await;
    h.wait_row(id, "running again", is_running).await;
    let before = h.calls_for(&app).len();
    // The third change and every later one wait for the window; 40 requests, 0 Fly calls.
    for i in 0..40 {
        set_status(&pool, id, if i % 2 == 0 { "stopped" } else { "pending" }).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = h.row(id).await.generation;
    let row = h
        .wait_row(id, "throttled at the latest request", |r| r.generation == last && throttled(r))
        .await;
    assert_eq!(
        (row.status, row.desired_state),
        (Status::Pending, DesiredState::Running),
        "the request shows"
    );
    let until = row.next_attempt_at.expect("applied when the window ends");
    assert!(until > Utc::now() + chrono::Duration::minutes(50), "{until}");
    assert!(row.error_message.as_deref().unwrap().contains("applied by itself"), "{row:?}");
    assert_eq!(h.calls_for(&app).len(), before, "no Fly call for throttled requests");
    assert!(r.metrics.redeploys_throttled.get() >= 1);
    // The window ends: the latest request (running) is applied, once.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('fly_preview.controller', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE public.fly_preview_apps SET redeploy_window_start = now() - interval '2 hours', \
         next_attempt_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap(); // found by the (test-short) backstop poll
    let done = h.wait_row(id, "running at the latest generation", is_running).await;
    assert_eq!((done.generation, done.redeploys), (last, 1), "a new window, one change");
    assert_eq!(h.sim.stats().apps_with_multiple_machines, 0);
    r.stop().await;
}
