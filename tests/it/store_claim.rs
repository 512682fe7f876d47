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

/// The ids of a claim's rows, in the order claimed.
fn ids(rows: Vec<fly_preview_controller::store::PreviewRow>) -> Vec<Uuid> {
    rows.into_iter().map(|r| r.id).collect()
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

/// A burst of new rows: 4 users × 80, more than each due-order window holds.
async fn burst(pool: &PgPool) {
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
}

/// The burst, due a minute ago.
async fn earlier_backlog(pool: &PgPool) {
    burst(pool).await;
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

/// A retry of periodic verification (a running preview's check failed) stays behind work
/// people wait for, however long it has been due.
#[sqlx::test]
async fn work_people_wait_for_goes_before_verification_and_its_retries(pool: PgPool) {
    let retry = insert_row(&pool, USER_A, "r", Some(REPO), "main").await;
    let verify = insert_row(&pool, USER_B, "v", Some(REPO), "main").await;
    controller_set(
        &pool,
        retry,
        "observed_generation = generation, attempts = 3, status = 'running', \
         next_attempt_at = now() - interval '1 hour'",
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
    let first = ids(s.claim(1, LEASE, NO_CAP).await.unwrap());
    assert_eq!(first, vec![booting], "a deploy in progress is finished first");
    let second = ids(s.claim(1, LEASE, NO_CAP).await.unwrap());
    assert_eq!(second, vec![fresh], "then the new row, before the older retry and verification");
    let rest = s.claim(10, LEASE, NO_CAP).await.unwrap();
    assert_eq!(rest.len(), 2);
}

/// Scenario "a deploy's first try failed before it reached Fly, then a burst of new rows":
/// the retry, due first, goes first (its message named that time).
#[sqlx::test]
async fn a_due_retry_of_a_deploy_goes_before_a_later_due_burst_of_new_rows(pool: PgPool) {
    let retry = insert_row(&pool, USER_B, "retry", Some(REPO), "main").await;
    let set = "attempts = 1, status_reason = 'FlyApiError', next_attempt_at = now() - interval '1 second'";
    controller_set(&pool, retry, set).await;
    burst(&pool).await;
    let s = Store::new(pool.clone(), "a");
    assert_eq!(ids(s.claim(1, LEASE, NO_CAP).await.unwrap()), vec![retry]);
}

/// Scenario "Fly failed a deploy in progress, twice, during a burst of new rows": both retries
/// (a deploy that reached Fly, a booting machine's re-check) fall due after the burst and are
/// claimed before it, like the re-check they continue.
#[sqlx::test]
async fn retries_of_deploys_in_progress_go_before_an_earlier_burst_of_new_rows(pool: PgPool) {
    earlier_backlog(&pool).await;
    let deploy = insert_row(&pool, USER_B, "deploy", Some(REPO), "main").await;
    let set = "status = 'initializing', attempts = 1, status_reason = 'WaitingForFly', \
               next_attempt_at = now()";
    controller_set(&pool, deploy, set).await;
    let recheck = insert_row(&pool, USER_A, "recheck", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', attempts = 2, \
               status_reason = 'FlyApiError', next_attempt_at = now()";
    controller_set(&pool, recheck, set).await;
    let s = Store::new(pool.clone(), "a");
    let mut got = ids(s.claim(2, LEASE, NO_CAP).await.unwrap());
    got.sort();
    let mut want = vec![deploy, recheck];
    want.sort();
    assert_eq!(got, want, "both retries first");
}

/// Scenario "one account's 30 deploys keep failing on Fly, another user inserts a row": the
/// failing rows rank first, but the per-user cap leaves the other user's row its slot.
#[sqlx::test]
async fn one_users_failing_deploys_do_not_starve_another_users_new_row(pool: PgPool) {
    for i in 0..30 {
        let id = insert_row(&pool, USER_A, &format!("f-{i}"), Some(REPO), "main").await;
        let set =
            "status = 'initializing', attempts = 3, next_attempt_at = now() - interval '1 minute'";
        controller_set(&pool, id, set).await;
    }
    let victim = insert_row(&pool, USER_B, "new", Some(REPO), "main").await;
    let s = Store::new(pool.clone(), "a");
    let got = ids(s.claim(5, LEASE, 2).await.unwrap());
    // the cap, plus one retry whose message named its time
    assert_eq!(got.len(), 4, "three of the failing rows and the new one: {got:?}");
    assert!(got.contains(&victim), "{got:?}");
    assert_eq!(ids(s.claim(5, LEASE, 2).await.unwrap()), Vec::<Uuid>::new(), "the cap holds");
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

/// A lease write (claim, renewal, release) runs no trigger: the touch trigger (`updated_at`)
/// fires only for updates naming a column other than the lease's, so a column added without
/// extending its list (migration 20261209001100) fails here.
#[sqlx::test]
async fn the_touch_trigger_names_every_column_but_the_lease(pool: PgPool) {
    let sql = "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
               WHERE a.attrelid = 'public.fly_preview_apps'::regclass \
                 AND a.attnum > 0 AND NOT a.attisdropped \
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t \
                                 WHERE t.tgrelid = a.attrelid \
                                   AND t.tgname = 'fly_preview_apps_20_touch' \
                                   AND a.attnum = ANY (t.tgattr::int2[])) \
               ORDER BY 1";
    let unnamed: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
    assert_eq!(unnamed, ["lease_expires_at", "lease_owner", "updated_at"]);
}

/// Scenario "new rows fill every slot but the kept ones, then a booting machine's re-check
/// falls due": other work takes only the slots beyond the kept ones, started work takes those.
#[sqlx::test]
async fn a_claim_keeps_slots_for_started_work(pool: PgPool) {
    for i in 0..6 {
        insert_row(&pool, USER_A, &format!("k-{i}"), Some(REPO), "main").await;
    }
    let s = Store::new(pool.clone(), "a");
    let first = s.claim_keeping(4, 2, LEASE, NO_CAP).await.unwrap();
    assert_eq!(first.len(), 2, "two new rows; two slots kept");
    assert!(s.claim_keeping(2, 2, LEASE, NO_CAP).await.unwrap().is_empty(), "only kept slots");
    assert_eq!(s.next_started_due().await.unwrap(), None, "no started work");
    let booting = insert_row(&pool, USER_B, "boot", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', \
               next_attempt_at = now() + interval '10 seconds'";
    controller_set(&pool, booting, set).await;
    let d = s.next_started_due().await.unwrap().expect("the re-check is due later");
    assert!(d > Duration::from_secs(9) && d <= Duration::from_secs(10), "{d:?}");
    controller_set(&pool, booting, "next_attempt_at = now()").await;
    assert_eq!(ids(s.claim_keeping(2, 2, LEASE, NO_CAP).await.unwrap()), vec![booting]);
}

/// Scenario "a booting machine's re-check and a deploy's retry fall due together, one slot
/// free": the retry goes first (its message named its time; the re-check named none), the
/// re-check due earlier included; a user's turn ranks the same way.
#[sqlx::test]
async fn a_retry_that_named_its_time_goes_before_a_re_check(pool: PgPool) {
    let recheck = insert_row(&pool, USER_A, "recheck", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', \
               next_attempt_at = now() - interval '1 minute'";
    controller_set(&pool, recheck, set).await;
    let retry = insert_row(&pool, USER_A, "retry", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', attempts = 1, \
               status_reason = 'FlyApiError', next_attempt_at = now()";
    controller_set(&pool, retry, set).await;
    // a Fly budget wait keeps the attempt count (0 here) and named its time too
    let waited = insert_row(&pool, USER_B, "waited", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', attempts = 0, \
               status_reason = 'FlyApiError', next_attempt_at = now()";
    controller_set(&pool, waited, set).await;
    let s = Store::new(pool.clone(), "a");
    assert_eq!(ids(s.claim(1, LEASE, 1).await.unwrap()), vec![retry], "the user's first turn");
    assert_eq!(ids(s.claim(1, LEASE, NO_CAP).await.unwrap()), vec![waited]);
    assert_eq!(ids(s.claim(1, LEASE, NO_CAP).await.unwrap()), vec![recheck]);
}

/// Scenario "a user has the cap of rows in flight when one of its retries falls due": the
/// retry, whose message named its time, is claimed beyond the cap by one; a re-check (which
/// named none) and a second retry wait for the user's rows to end.
#[sqlx::test]
async fn a_retry_that_named_its_time_may_exceed_the_per_user_cap_by_one(pool: PgPool) {
    let s = Store::new(pool.clone(), "a");
    for i in 0..2 {
        insert_row(&pool, USER_A, &format!("busy-{i}"), Some(REPO), "main").await;
    }
    assert_eq!(s.claim(2, LEASE, 2).await.unwrap().len(), 2, "the cap in flight");
    let mut retries = Vec::new();
    for i in 0..2 {
        let id = insert_row(&pool, USER_A, &format!("retry-{i}"), Some(REPO), "main").await;
        let set = format!(
            "observed_generation = generation, status = 'initializing', attempts = 1,              status_reason = 'FlyApiError', next_attempt_at = now() - interval '{i} second'"
        );
        controller_set(&pool, id, &set).await;
        retries.push(id);
    }
    let recheck = insert_row(&pool, USER_A, "recheck", Some(REPO), "main").await;
    let set = "observed_generation = generation, status = 'initializing', next_attempt_at = now()";
    controller_set(&pool, recheck, set).await;
    assert_eq!(ids(s.claim(4, LEASE, 2).await.unwrap()), vec![retries[1]], "the earlier retry");
    assert!(s.claim(4, LEASE, 2).await.unwrap().is_empty(), "cap + 1 in flight: nothing more");
}
