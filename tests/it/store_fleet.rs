//! The fleet statements (`store/sql/fleet/`, `store/sql/env/`, `drift_rows`): machines by state
//! for the cost gauges, each user's previews for `status --by-user`, a preview's variables, and
//! the rows as the full drift verification compares them.

use crate::support::*;
use fly_preview_controller::store::Store;
use sqlx::PgPool;
use uuid::Uuid;

async fn set_machine(pool: &PgPool, id: Uuid, machine: Option<&str>, state: &str) {
    sqlx::query(
        "UPDATE fly_preview_apps SET fly_machine_id = $2, machine_state = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(machine)
    .bind(state)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test]
async fn machines_are_counted_by_state_and_user(pool: PgPool) {
    let a1 = insert_row(&pool, USER_A, "a1", Some("https://github.com/a/b"), "main").await;
    let a2 = insert_row(&pool, USER_A, "a2", Some("https://github.com/a/b"), "main").await;
    let b1 = insert_row(&pool, USER_B, "b1", Some("https://github.com/a/b"), "main").await;
    insert_row(&pool, USER_B, "b2", Some("https://github.com/a/b"), "main").await;
    set_machine(&pool, a1, Some("m1"), "started").await;
    set_machine(&pool, a2, Some("m2"), "suspended").await;
    set_machine(&pool, b1, Some("m3"), "started").await;
    let store = Store::new(pool.clone(), "t");
    let mut by_state = store.machines_by_state().await.unwrap();
    by_state.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    let shown: Vec<(&str, i64)> = by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(shown, [("started", 2), ("suspended", 1)]);
    let mut users = store.previews_by_user().await.unwrap();
    users.sort_by_key(|(u, s, _)| (*u, s.as_ref().map(|s| s.as_str().to_owned())));
    let b: Uuid = USER_B.parse().unwrap();
    let bens: Vec<_> = users
        .iter()
        .filter(|(u, _, _)| *u == b)
        .map(|(_, s, n)| (s.as_ref().map(|s| s.as_str()), *n))
        .collect();
    assert_eq!(bens, [(None, 1), (Some("started"), 1)]);
}

#[sqlx::test]
async fn a_previews_variables_are_read_with_their_secret_values(pool: PgPool) {
    for (name, value, secret) in [("B_PLAIN", "p", false), ("A_SECRET", "s3cret", true)] {
        sqlx::query("INSERT INTO public.fly_preview_env (user_id, project_id, name, value, secret) VALUES ($1::uuid, 'site', $2, $3, $4)")
            .bind(USER_A).bind(name).bind(value).bind(secret).execute(&pool).await.unwrap();
    }
    let vars = Store::new(pool, "t").preview_env(USER_A.parse().unwrap(), "site").await.unwrap();
    let shown: Vec<(&str, &str, bool)> =
        vars.iter().map(|v| (v.name.as_str(), v.value.expose(), v.secret)).collect();
    assert_eq!(shown, [("A_SECRET", "s3cret", true), ("B_PLAIN", "p", false)]);
    assert!(!format!("{vars:?}").contains("s3cret"), "values print as ***");
}

#[sqlx::test]
async fn drift_rows_are_the_tuples_drift_compares(pool: PgPool) {
    let a = insert_row(&pool, USER_A, "d1", Some("https://github.com/a/b"), "main").await;
    insert_row(&pool, USER_A, "d2", Some("https://github.com/a/b"), "main").await;
    set_machine(&pool, a, Some("m1"), "suspended").await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('fly_preview.controller', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE fly_preview_apps SET status = 'running' WHERE id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let store = Store::new(pool.clone(), "t");
    let mut rows = Vec::new();
    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    store.drift_rows(later, |r| rows.push(r)).await.unwrap();
    rows.sort_by(|x, y| x.fly_machine_id.cmp(&y.fly_machine_id));
    let shown: Vec<(Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| (r.fly_machine_id.as_deref(), r.machine_state.as_ref().map(|s| s.as_str())))
        .collect();
    assert_eq!(shown, [(None, None), (Some("m1"), Some("suspended"))]);
    assert!(!rows[0].running, "a pending row does not run yet");
    assert!(rows[1].running, "a running row that should run");
    assert!(rows.iter().all(|r| r.settled), "unchanged since a time to come");
    let mut settled = Vec::new();
    let earlier = chrono::Utc::now() - chrono::Duration::seconds(60);
    store.drift_rows(earlier, |r| settled.push(r.settled)).await.unwrap();
    assert_eq!(settled, [false, false], "changed since a minute ago");
}
