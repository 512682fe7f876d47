//! `root_directory` (the app's folder, for monorepos): the web app may write it on its own
//! rows; it reaches the machine as ROOT_DIRECTORY; changing it is a spec change (new
//! generation, machine updated in place); a bad value is `error` (InvalidSpec) with a precise
//! message and no Fly call.

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/monorepo";

/// The signed-in owner writes `root_directory` (RLS and column grants as for the branch).
async fn set_root(pool: &PgPool, id: Uuid, dir: &str) {
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let n = sqlx::query("UPDATE public.fly_preview_apps SET root_directory = $2 WHERE id = $1")
        .bind(id)
        .bind(dir)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test]
async fn the_root_directory_reaches_the_machine_and_a_change_redeploys(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id = insert_row(&pool, USER_A, "mono", Some(REPO), "main").await;
    set_root(&pool, id, "apps/web").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let env = |app: &str| h.sim.machines(app)[0]["config"]["env"].clone();
    assert_eq!(env(&row.fly_app_name)["ROOT_DIRECTORY"], "apps/web");
    set_root(&pool, id, "apps/site").await;
    let moved = h.wait_row(id, "redeployed", |r| is_running(r) && r.generation > row.generation);
    let moved = moved.await;
    assert_eq!(moved.fly_machine_id, row.fly_machine_id, "updated in place");
    assert_eq!(env(&row.fly_app_name)["ROOT_DIRECTORY"], "apps/site");
    r.stop().await;
}

#[sqlx::test]
async fn a_root_directory_outside_the_repository_is_refused_without_a_fly_call(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let name = fly_preview_controller::model::naming::app_name("roseram", USER_A, "escape");
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, github_repo_url, github_branch, root_directory) \
         VALUES ($1::uuid, 'escape', $2, $3, 'main', '../../etc') RETURNING id",
    )
    .bind(USER_A)
    .bind(&name)
    .bind(REPO)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = h.start("a");
    let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
    assert_eq!(row.status_reason, Some(Reason::InvalidSpec));
    let msg = row.error_message.unwrap_or_default();
    assert!(msg.starts_with("invalid root_directory: ") && msg.contains("'..'"), "{msg}");
    assert!(h.calls_for(&name).is_empty(), "no Fly call: {:?}", h.calls_for(&name));
    r.stop().await;
}
