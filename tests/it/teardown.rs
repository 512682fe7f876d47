//! Teardown of deleted rows is level-triggered (tombstones): rows deleted while no daemon runs
//! are torn down when one starts, failures keep their tombstone with persisted attempts, and
//! an app that is not the deleted row's is never destroyed. Real Postgres, in-process simulator.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::Tombstone;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";

/// Test timings, with an orphan grace the tests never reach: only a tombstone destroys apps.
async fn harness(pool: &PgPool) -> Harness {
    let mut s = Settings::for_tests("personal");
    s.orphan_grace = Duration::from_secs(3600);
    Harness::with_settings(pool.clone(), SimConfig::default(), s).await
}

async fn tombstones(pool: &PgPool) -> Vec<Tombstone> {
    sqlx::query_as("SELECT * FROM fly_preview_controller.tombstones ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn delete_row(pool: &PgPool, id: Uuid) {
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

/// Polls the tombstone of row `id` until `pred` holds (the deadline only bounds a broken run).
async fn wait_tombstone(
    pool: &PgPool,
    id: Uuid,
    what: &str,
    pred: impl Fn(&Tombstone) -> bool,
) -> Tombstone {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = tombstones(pool).await.into_iter().find(|t| t.id == id);
        if let Some(t) = t.filter(|t| pred(t)) {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn teardowns(r: &crate::support::harness::Replica, result: &str) -> u64 {
    r.metrics.teardowns.with_label_values(&[result]).get()
}

#[sqlx::test]
async fn fifty_rows_deleted_while_the_daemon_is_down_are_destroyed_within_30s_of_start(
    pool: PgPool,
) {
    let h = harness(&pool).await; // ORPHAN_GRACE=1h: the sweep cannot be what destroys them
    // One row per user: the per-user in-flight cap does not slow the deploys down.
    for i in 0..50 {
        insert_row(&pool, &Uuid::new_v4().to_string(), &format!("fifty-{i}"), Some(REPO), "main")
            .await;
    }
    let r = h.start("a");
    let rows = h.wait_all("50 running", 120, is_running).await;
    let names: HashSet<String> = rows.iter().map(|r| r.fly_app_name.clone()).collect();
    assert_eq!(names.len(), 50);
    r.stop().await;
    let n = sqlx::query("DELETE FROM public.fly_preview_apps").execute(&pool).await.unwrap();
    assert_eq!(n.rows_affected(), 50);
    let alive = |h: &Harness| h.sim.app_names().into_iter().filter(|a| names.contains(a)).count();
    assert_eq!(alive(&h), 50, "nothing destroys them while the daemon is down");
    assert_eq!(tombstones(&pool).await.len(), 50);

    let started = Instant::now();
    let r = h.start("b");
    let mut left = alive(&h);
    while left > 0 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = alive(&h);
    }
    let took = started.elapsed();
    println!("50 rows deleted while down: {} apps left {took:?} after start", left);
    assert_eq!(left, 0, "{left} of 50 apps still alive {took:?} after start");
    assert!(took < Duration::from_secs(30), "every app destroyed within 30 s: {took:?}");
    h.eventually("every tombstone finished", || teardowns(&r, "destroyed") == 50).await;
    assert!(tombstones(&pool).await.is_empty());
    assert_eq!(r.metrics.orphans_destroyed.get(), 0, "the tombstones did it, not the sweep");
    r.stop().await;
}

#[sqlx::test]
async fn transient_failures_keep_the_tombstone_with_persisted_attempts(pool: PgPool) {
    let h = harness(&pool).await;
    let id = insert_row(&pool, USER_A, "flaky", Some(REPO), "main").await;
    let r = h.start("a");
    let app = h.wait_row(id, "running", is_running).await.fly_app_name;
    h.sim.add_fault("delete_app:503:always".parse().unwrap());
    delete_row(&pool, id).await;
    let failing = wait_tombstone(&pool, id, "two counted failures", |t| t.attempts >= 2).await;
    assert!(failing.last_error.as_deref().unwrap_or("").contains("503"), "{failing:?}");
    assert!(h.sim.app_names().contains(&app));
    r.crash().await;
    let kept = tombstones(&pool).await;
    assert_eq!(kept.len(), 1, "the tombstone survives the crash");
    assert!(kept[0].attempts >= 2 && kept[0].last_error.is_some(), "{kept:?}");
    h.sim.clear_faults();
    let r = h.start("b");
    h.eventually("the app destroyed after the restart", || !h.sim.app_names().contains(&app)).await;
    h.eventually("the tombstone finished", || teardowns(&r, "destroyed") == 1).await;
    assert!(tombstones(&pool).await.is_empty());
    r.stop().await;
}

#[sqlx::test]
async fn a_fly_outage_parks_the_tombstone_without_counting_and_it_is_retried(pool: PgPool) {
    let h = harness(&pool).await;
    let id = insert_row(&pool, USER_A, "outage", Some(REPO), "main").await;
    let r = h.start("a");
    let app = h.wait_row(id, "running", is_running).await.fly_app_name;
    h.sim.add_fault("any:500:always".parse().unwrap());
    h.eventually("the breaker opens", || r.metrics.fly_down.get() == 1).await;
    delete_row(&pool, id).await;
    let parked =
        wait_tombstone(&pool, id, "parked by the outage", |t| t.last_error.is_some()).await;
    let error = parked.last_error.as_deref().unwrap();
    assert!(error.contains("unavailable"), "{error}");
    assert_eq!(parked.attempts, 0, "an outage is not the tombstone's failure");
    let wait = parked.next_attempt_at - chrono::Utc::now();
    assert!(wait > chrono::Duration::seconds(20), "looked at again after 30 s: {wait}");
    assert!(h.sim.app_names().contains(&app));
    h.sim.clear_faults();
    let healed = Instant::now();
    h.eventually("the app destroyed after the outage", || !h.sim.app_names().contains(&app)).await;
    println!("outage: the app was destroyed {:?} after Fly healed", healed.elapsed());
    assert!(healed.elapsed() < Duration::from_secs(15), "the heal wakes the tombstone");
    h.eventually("the tombstone finished", || teardowns(&r, "destroyed") == 1).await;
    assert!(tombstones(&pool).await.is_empty());
    r.stop().await;
}

#[sqlx::test]
async fn a_reinserted_rows_app_is_not_destroyed(pool: PgPool) {
    let h = harness(&pool).await;
    let id = insert_row(&pool, USER_A, "again", Some(REPO), "main").await;
    let r = h.start("a");
    let app = h.wait_row(id, "running", is_running).await.fly_app_name;
    r.crash().await;
    // Deleted and created again (same user and project: the same app name) while no daemon runs.
    delete_row(&pool, id).await;
    let again = insert_row(&pool, USER_A, "again", Some(REPO), "main").await;
    assert_eq!(tombstones(&pool).await.len(), 1);
    let r = h.start("b");
    h.eventually("the tombstone dropped", || teardowns(&r, "kept") == 1).await;
    let row = h.wait_row(again, "the new row runs", is_running).await;
    assert_eq!(row.fly_app_name, app);
    assert!(h.sim.app_names().contains(&app), "its app is alive");
    let log = h.sim.request_log();
    let deletes = log.iter().filter(|c| c.action == "delete_app" && c.path.ends_with(&app));
    assert_eq!(deletes.count(), 0, "the app was never deleted");
    assert!(tombstones(&pool).await.is_empty());
    assert_eq!(teardowns(&r, "destroyed"), 0);
    r.stop().await;
}

#[sqlx::test]
async fn tombstones_never_destroy_an_app_that_is_not_the_deleted_rows(pool: PgPool) {
    let h = harness(&pool).await;
    h.sim.create_app_direct("roseram-0badc0de", true); // our prefix, a machine we did not create
    h.sim.create_app_direct("someone-else-app", true); // outside our prefix
    for app in ["roseram-0badc0de", "someone-else-app"] {
        sqlx::query(
            "INSERT INTO fly_preview_controller.tombstones (id, user_id, fly_app_name) \
             VALUES (gen_random_uuid(), $1::uuid, $2)",
        )
        .bind(USER_A)
        .bind(app)
        .execute(&pool)
        .await
        .unwrap();
    }
    let r = h.start("a");
    h.eventually("both tombstones dropped", || teardowns(&r, "kept") == 2).await;
    assert!(tombstones(&pool).await.is_empty());
    let apps = h.sim.app_names();
    for kept in ["roseram-0badc0de", "someone-else-app"] {
        assert!(apps.contains(&kept.to_string()), "{kept} must not be touched: {apps:?}");
    }
    assert!(h.calls_for("someone-else-app").is_empty(), "no Fly call outside our prefix");
    r.stop().await;
}

/// Fly's org-wide app-delete budget (100 a minute) is spent: every app delete answers 429. The
/// deleted row's machine is destroyed anyway, on the tombstone's first pass: nothing runs
/// while the empty app waits for the budget, and the app goes once the budget is back.
#[sqlx::test]
async fn a_deleted_rows_machine_is_destroyed_while_its_app_delete_waits_for_the_budget(
    pool: PgPool,
) {
    let h = harness(&pool).await;
    let id = insert_row(&pool, USER_A, "budget", Some(REPO), "main").await;
    let r = h.start("a");
    let app = h.wait_row(id, "running", is_running).await.fly_app_name;
    assert_eq!(h.sim.machines(&app).len(), 1);
    h.sim.add_fault("delete_app:429:always".parse().unwrap());
    delete_row(&pool, id).await;
    h.eventually("the machine destroyed", || h.sim.machines(&app).is_empty()).await;
    assert!(h.sim.app_names().contains(&app), "the app waits for the delete budget");
    let waiting = wait_tombstone(&pool, id, "a refused delete", |t| t.last_error.is_some()).await;
    assert!(waiting.last_error.as_deref().unwrap_or("").contains("429"), "{waiting:?}");
    h.sim.clear_faults();
    h.eventually("the app deleted", || !h.sim.app_names().contains(&app)).await;
    h.eventually("the tombstone finished", || teardowns(&r, "destroyed") == 1).await;
    r.stop().await;
}
