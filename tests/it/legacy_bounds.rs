//! A row stored before the text bounds (migration 20261207000100) and beyond them is not
//! stuck: the bounds check what a write changes (migration 20261208000300), so the
//! controller's writes go through and turn the row into `error` naming the field, its owner can
//! stop, fix and delete it, and a write that changes a bounded column is still bounded.

use crate::support::harness::Harness;
use crate::support::*;
use fly_preview_controller::store;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

/// The migration that added the bounds (as a NOT VALID CHECK).
const BOUNDS: i64 = 20261207000100;

/// A database of the release before the bounds, with a legacy row whose branch (2,000 bytes)
/// is beyond them, upgraded to this release.
async fn legacy_row_upgraded(pool: &PgPool) -> Uuid {
    let before: Vec<_> = store::MIGRATOR.iter().filter(|m| m.version < BOUNDS).cloned().collect();
    sqlx::migrate::Migrator::with_migrations(before).run(pool).await.unwrap();
    let long = "b".repeat(2000);
    let id = insert_row(pool, USER_A, "legacy", Some("https://github.com/acme/site"), &long).await;
    assert_eq!(store::migrate::run(pool).await.unwrap(), migrations_from(BOUNDS));
    id
}

/// The user's write, as the signed-in owner; its SQLSTATE if refused.
async fn owner_writes(pool: &PgPool, set: &str, id: Uuid) -> Result<u64, String> {
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let sql = format!("UPDATE public.fly_preview_apps SET {set} WHERE id = $1");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(&mut *tx).await;
    match r {
        Ok(done) => {
            tx.commit().await.unwrap();
            Ok(done.rows_affected())
        }
        Err(e) => Err(format!("{} {e}", sqlstate(&e))),
    }
}

#[sqlx::test(migrations = false)]
async fn a_legacy_row_beyond_the_bounds_is_written_by_the_controller_and_its_owner(pool: PgPool) {
    let id = legacy_row_upgraded(&pool).await;
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let r = h.start("a");
    let row = h.wait_row(id, "the legacy row refused", |r| r.status == Status::Error).await;
    let message = row.error_message.unwrap_or_default();
    assert!(message.contains("github_branch"), "names the field: {message}");
    assert!(h.calls_for(&row.fly_app_name).is_empty(), "no Fly call for it");

    // a write that changes a bounded column beyond its bound is refused, as the CHECK did
    let err = owner_writes(&pool, "github_branch = repeat('c', 1500)", id).await.unwrap_err();
    assert!(err.starts_with("23514") && err.contains("github_branch"), "{err}");
    // writes that leave the legacy value alone, or fix it, go through
    assert_eq!(owner_writes(&pool, "desired_state = 'stopped'", id).await, Ok(1));
    h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    let fixed = "github_branch = 'main', desired_state = 'running'";
    assert_eq!(owner_writes(&pool, fixed, id).await, Ok(1));
    let running = h.wait_row(id, "running after the fix", crate::support::harness::is_running);
    running.await;
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let deleted = sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    r.stop().await;
}

#[sqlx::test]
async fn new_rows_and_changes_are_bounded_as_before(pool: PgPool) {
    let long = "b".repeat(1025);
    let err = sqlx::query(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, github_repo_url, github_branch) \
         VALUES ($1::uuid, 'p', 'x', 'https://github.com/a/b', $2)",
    )
    .bind(USER_A)
    .bind(&long)
    .execute(&pool)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err), "23514", "{err}");
    let at_bound = "b".repeat(1024);
    let id = insert_row(&pool, USER_A, &"p".repeat(256), None, &at_bound).await;
    let err = owner_writes(&pool, "github_repo_url = repeat('u', 4097)", id).await.unwrap_err();
    assert!(err.starts_with("23514") && err.contains("github_repo_url"), "{err}");
    assert_eq!(owner_writes(&pool, "github_repo_url = 'https://github.com/a/b'", id).await, Ok(1));
}
