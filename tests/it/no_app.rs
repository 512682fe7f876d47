//! A row that never had a Fly app (never deployed, refused for quota, invalid) costs no Fly
//! call to stop, delete or save: `fly_app_created` is written ahead of the first call that can
//! create an app, and a delete of a row without it leaves no tombstone.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::Store;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";
const SHA: &str = "3333333333333333333333333333333333333333";

async fn exec(pool: &PgPool, sql: &str, id: Uuid) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).bind(id).execute(pool).await.unwrap();
}

async fn tombstone_exists(pool: &PgPool, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT count(*) > 0 FROM fly_preview_controller.tombstones WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn created(pool: &PgPool, id: Uuid) -> bool {
    sqlx::query_scalar("SELECT fly_app_created FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn stops_deletes_and_saves_of_rows_that_never_had_an_app_make_no_fly_call(pool: PgPool) {
    let settings = Settings { max_previews_per_user: 1, ..Settings::for_tests("personal") };
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings).await;
    let live = insert_row(&pool, USER_A, "live", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(live, "running", is_running).await;
    assert!(created(&pool, live).await, "marked before its app was created");
    let mut refused = Vec::new();
    for i in 0..4 {
        refused.push(insert_row(&pool, USER_A, &format!("r{i}"), Some(REPO), "main").await);
    }
    let invalid = [
        insert_row(&pool, USER_B, "i0", Some(REPO), "main; rm -rf /").await,
        insert_row(&pool, USER_B, "i1", None, "main").await,
    ];
    for id in refused.iter().chain(&invalid) {
        h.wait_row(*id, "a verdict", |r| r.status == Status::Error).await;
        assert!(!created(&pool, *id).await);
    }
    let stop = "UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1";
    let save = format!("UPDATE public.fly_preview_apps SET revision = '{SHA}' WHERE id = $1");
    let delete = "DELETE FROM public.fly_preview_apps WHERE id = $1";
    for id in [refused[0], refused[1], invalid[0]] {
        exec(&pool, stop, id).await;
    }
    for id in [refused[2], refused[3]] {
        exec(&pool, &save, id).await;
    }
    for id in [refused[2], refused[3], invalid[1]] {
        exec(&pool, delete, id).await;
        assert!(!tombstone_exists(&pool, id).await, "no app, no teardown");
    }
    for id in [refused[0], refused[1], invalid[0]] {
        h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<String> = ["r0", "r1", "r2", "r3"]
        .iter()
        .map(|p| fly_preview_controller::model::naming::app_name("roseram", USER_A, p))
        .chain(
            ["i0", "i1"]
                .iter()
                .map(|p| fly_preview_controller::model::naming::app_name("roseram", USER_B, p)),
        )
        .collect();
    for name in names {
        assert_eq!(h.calls_for(&name), Vec::<String>::new(), "{name}");
    }
    r.stop().await;
}

#[sqlx::test]
async fn the_app_mark_is_written_under_the_lease_and_kept_for_a_reused_name(pool: PgPool) {
    let id = insert_row(&pool, USER_A, "m", Some(REPO), "main").await;
    assert!(!created(&pool, id).await, "a new row has no app");
    let a = Store::new(pool.clone(), "a");
    let b = Store::new(pool.clone(), "b");
    let claimed = a.claim(1, Duration::from_secs(30), 100).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(!b.note_app_created(id).await.unwrap(), "not b's lease");
    assert!(!created(&pool, id).await);
    assert!(a.note_app_created(id).await.unwrap());
    assert!(created(&pool, id).await);
    // A row of the same name again: the deleted row's kept app is now this one's.
    let other = insert_row(&pool, USER_B, "n", Some(REPO), "main").await;
    let name: String =
        sqlx::query_scalar("SELECT fly_app_name FROM public.fly_preview_apps WHERE id = $1")
            .bind(other)
            .fetch_one(&pool)
            .await
            .unwrap();
    a.note_app_kept(&name).await.unwrap();
    assert!(created(&pool, other).await);
    // Deletes: a tombstone only for the row that may have an app.
    exec(&pool, "DELETE FROM public.fly_preview_apps WHERE id = $1", id).await;
    assert!(tombstone_exists(&pool, id).await);
    let fresh = insert_row(&pool, USER_B, "fresh", Some(REPO), "main").await;
    assert!(events(&pool, fresh).await > 0, "its timeline began ('queued')");
    exec(&pool, "DELETE FROM public.fly_preview_apps WHERE id = $1", fresh).await;
    assert!(!tombstone_exists(&pool, fresh).await);
    assert_eq!(events(&pool, fresh).await, 0, "with no teardown its timeline goes with it");
    assert!(events(&pool, id).await > 0, "kept until its teardown ends");
}

async fn events(pool: &PgPool, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_events WHERE preview_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}
