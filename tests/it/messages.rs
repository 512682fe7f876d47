//! What the row tells whom: `error_message` says what a user can act on;
//! the Fly request id, HTTP status and API message go to the log and to `status_detail`.

use crate::support::harness::Harness;
use crate::support::*;
use fly_sim::SimConfig;
use sqlx::PgPool;

#[sqlx::test]
async fn api_details_go_to_status_detail_not_to_the_users_message(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    h.sim.add_fault("create_app:422:first=1".parse().unwrap());
    let id = insert_row(&pool, USER_A, "m1", Some("https://github.com/acme/site"), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
    let msg = row.error_message.clone().unwrap();
    let detail = row.status_detail.clone().unwrap_or_default();
    println!("error_message: {msg}\nstatus_detail: {detail}");
    for hidden in ["fly-request-id", "injected fault", "http://", "personal"] {
        assert!(!msg.contains(hidden), "{hidden:?} is not for users: {msg}");
    }
    assert!(msg.contains("operators have the details"), "says who can act: {msg}");
    assert!(!msg.contains("'pending'") && !msg.contains("fly logs"), "{msg}");
    assert!(detail.contains("fly-request-id") && detail.contains("422"), "{detail}");
    // A later success clears the detail with the message.
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'pending' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let ok = h.wait_row(id, "running", crate::support::harness::is_running).await;
    assert_eq!((ok.error_message, ok.status_detail), (None, None));
    r.stop().await;
}

#[sqlx::test]
async fn users_cannot_write_status_detail(pool: PgPool) {
    let id = insert_row(&pool, USER_A, "m2", Some("https://github.com/acme/site"), "main").await;
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let err = sqlx::query("UPDATE public.fly_preview_apps SET status_detail = 'x' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "controller column: {err}");
    drop(tx);
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let seen: Option<String> =
        sqlx::query_scalar("SELECT status_detail FROM public.fly_preview_apps WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(seen, None, "readable on the user's own row");
}
