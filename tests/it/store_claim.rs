//! The claim order (people first, round-robin over users) and the next due time.

use std::time::Duration;

use crate::support::*;
use fly_preview_controller::store::Store;
use sqlx::PgPool;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);
/// No per-user cap on rows in flight.
const NO_CAP: i64 = 1_000_000;
const REPO: &str = "https://github.com/acme/site";

/// Sets columns as the controller would (the request-translation triggers stay out of it).
async fn controller_set(pool: &PgPool, id: Uuid, set: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('fly_preview.controller', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE public.fly_preview_apps SET {set} WHERE id = $1"
    )))
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test]
async fn one_users_backlog_does_not_starve_another_users_first_row(pool: PgPool) {
    let mut backlog = Vec::new();
    for i in 0..20 {
        backlog.push(insert_row(&pool, USER_A, &format!("a-{i}"), Some(REPO), "main").await);
    }
    let victim = insert_row(&pool, USER_B, "b-0", Some(REPO), "main").await;
    let s = Store::new(pool.clone(), "a");
    let ids: Vec<Uuid> = s.claim(2, LEASE, NO_CAP).await.unwrap().iter().map(|r| r.id).collect();
    assert!(ids.contains(&victim), "the other user's first row is among the first two: {ids:?}");
    assert!(ids.contains(&backlog[0]), "and the backlog's oldest row: {ids:?}");
}

/// 4 users × 80 new rows, due a minute ago: more than each due-order window (256 rows).
async fn earlier_backlog(pool: &PgPool) {
    for u in 0..4 {
        sqlx::query(
            "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, status, github_repo_url, github_branch) \
             SELECT md5('backlog-' || $1::int)::uuid, 'p-' || g, 'x', 'pending', $2, 'main' \
             FROM generate_series(1, 80) g",
        )
        .bind(u)
        .bind(REPO)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE public.fly_preview_apps SET next_attempt_at = now() - interval '1 minute'")
        .execute(pool)
        .await
        .unwrap();
}

/// Scenario "three users at the row cap, then a newcomer": the newcomer's first row is
/// claimed at once behind more earlier-due rows than a window holds.
#[sqlx::test]
async fn a_newcomers_first_row_is_claimed_behind_more_than_a_window_of_other_users_rows(
    pool: PgPool,
) {
    earlier_backlog(&pool).await;
    let newcomer = insert_row(&pool, USER_B, "first", Some(REPO), "main").await;
    let s = Store::new(pool.clone(), "a");
    let ids: Vec<Uuid> = s.claim(5, LEASE, NO_CAP).await.unwrap().iter().map(|r| r.id).collect();
    assert!(ids.contains(&newcomer), "the newcomer's row is among the first five: {ids:?}");
}

/// Scenario "a burst of new rows, then a booting machine's re-check and a user's open": both
/// fall due after the burst and are claimed before it (a 100k burst once kept every re-check
/// out until the last machine was created).
#[sqlx::test]
async fn a_re_check_and_a_wake_go_before_an_earlier_burst_of_new_rows(pool: PgPool) {
    earlier_backlog(&pool).await;
    let booting = insert_row(&pool, USER_B, "boot", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', next_attempt_at = now()";
    controller_set(&pool, booting, set).await;
    let woken = insert_row(&pool, USER_A, "open", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'running', \
               status_reason = 'WakeRequested', next_attempt_at = now()";
    controller_set(&pool, woken, set).await;
    let s = Store::new(pool.clone(), "a");
    let mut ids: Vec<Uuid> =
        s.claim(2, LEASE, NO_CAP).await.unwrap().iter().map(|r| r.id).collect();
    ids.sort();
    let mut want = vec![booting, woken];
    want.sort();
    assert_eq!(ids, want, "the re-check and the wake first");
}

#[sqlx::test]
async fn work_people_wait_for_goes_before_retries_and_verification(pool: PgPool) {
    let retry = insert_row(&pool, USER_A, "r", Some(REPO), "main").await;
    let verify = insert_row(&pool, USER_B, "v", Some(REPO), "main").await;
    controller_set(
        &pool,
        retry,
        "attempts = 3, status = 'error', next_attempt_at = now() - interval '1 hour'",
    )
    .await;
    controller_set(&pool, verify, "observed_generation = generation, status = 'running', next_attempt_at = now() - interval '1 hour'").await;
    let fresh = insert_row(&pool, USER_A, "new", Some(REPO), "main").await;
    let booting = insert_row(&pool, USER_B, "boot", Some(REPO), "main").await;
    controller_set(
        &pool,
        booting,
        "observed_generation = generation, status = 'initializing', next_attempt_at = now()",
    )
    .await;
    let s = Store::new(pool.clone(), "a");
    let ids = |rows: Vec<fly_preview_controller::store::PreviewRow>| {
        rows.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let first = ids(s.claim(1, LEASE, NO_CAP).await.unwrap());
    assert_eq!(first, vec![booting], "a deploy in progress is finished first");
    let second = ids(s.claim(1, LEASE, NO_CAP).await.unwrap());
    assert_eq!(second, vec![fresh], "then the new row, before the older retry and verification");
    let rest = s.claim(10, LEASE, NO_CAP).await.unwrap();
    assert_eq!(rest.len(), 2);
}

#[sqlx::test]
async fn next_due_is_the_earliest_claimable_row(pool: PgPool) {
    let s = Store::new(pool.clone(), "a");
    assert_eq!(s.next_due().await.unwrap(), None, "no rows: nothing is ever due");
    let [a, b] = [
        insert_row(&pool, USER_A, "n-a", Some(REPO), "main").await,
        insert_row(&pool, USER_A, "n-b", Some(REPO), "main").await,
    ];
    assert_eq!(s.next_due().await.unwrap(), Some(Duration::ZERO), "new rows are due now");
    controller_set(&pool, a, "next_attempt_at = now() + interval '10 seconds'").await;
    controller_set(&pool, b, "next_attempt_at = 'infinity'").await;
    let d = s.next_due().await.unwrap().expect("a is due later");
    assert!(d > Duration::from_secs(9) && d <= Duration::from_secs(10), "{d:?}");
    controller_set(&pool, a, "next_attempt_at = now(), lease_owner = 'b', lease_expires_at = now() + interval '1 minute'").await;
    let d = s.next_due().await.unwrap().expect("a leased row is due when its lease expires");
    assert!(d > Duration::from_secs(59) && d <= Duration::from_secs(60), "{d:?}");
    controller_set(&pool, a, "next_attempt_at = now() + interval '2 minutes'").await;
    let d = s.next_due().await.unwrap().expect("or at its due time, if later");
    assert!(d > Duration::from_secs(119) && d <= Duration::from_secs(120), "{d:?}");
    controller_set(&pool, a, "next_attempt_at = 'infinity'").await;
    assert_eq!(s.next_due().await.unwrap(), None, "a leased converged row is never due");
    controller_set(
        &pool,
        a,
        "next_attempt_at = now(), lease_expires_at = now() - interval '1 second'",
    )
    .await;
    assert_eq!(s.next_due().await.unwrap(), Some(Duration::ZERO), "an expired lease: due now");
}

#[sqlx::test]
async fn one_user_never_has_more_than_the_cap_in_flight(pool: PgPool) {
    for i in 0..20 {
        insert_row(&pool, USER_A, &format!("c-{i}"), Some(REPO), "main").await;
    }
    let s = Store::new(pool.clone(), "a");
    assert_eq!(s.claim(10, LEASE, 3).await.unwrap().len(), 3, "3 of the backlog");
    assert!(s.claim(10, LEASE, 3).await.unwrap().is_empty(), "the cap counts held leases");
    let other = insert_row(&pool, USER_B, "c-b", Some(REPO), "main").await;
    let next: Vec<Uuid> = s.claim(10, LEASE, 3).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(next, vec![other], "another user's row is not held back");
}
