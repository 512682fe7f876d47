//! A preview's variables (`public.fly_preview_env`) reach its machine: secret ones as Fly app
//! secrets of its app (never in the machine config), plain ones in the config's `env`; a
//! change on a running preview boots the machine again with it, and a removed variable is
//! unset. The web app's writes are the ones its signed-in users make (RLS and validation:
//! `tests/it/supabase_env.rs`); here they are made as the table's owner.

use std::time::Duration;

use crate::support::admin_http::REPO;
use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_sim::SimConfig;
use serde_json::Value;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

const SECRET: &str = "ghp_ENVCANARY_5e1f0c";

async fn set_var(pool: &PgPool, project: &str, name: &str, value: &str, secret: bool) {
    sqlx::query(
        "INSERT INTO public.fly_preview_env (user_id, project_id, name, value, secret) \
         VALUES ($1::uuid, $2, $3, $4, $5) \
         ON CONFLICT (user_id, project_id, name) DO UPDATE SET value = excluded.value",
    )
    .bind(USER_A)
    .bind(project)
    .bind(name)
    .bind(value)
    .bind(secret)
    .execute(pool)
    .await
    .unwrap();
}

/// The preview's one machine as Fly shows it.
fn machine(h: &Harness, app: &str) -> Value {
    h.sim.machines(app).into_iter().next().unwrap_or(Value::Null)
}

async fn row_text(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT row_to_json(a)::text FROM public.fly_preview_apps a WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn variables_reach_the_machine_and_changes_apply_to_a_running_preview(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    set_var(&pool, "env", "GIT_TOKEN", SECRET, true).await;
    set_var(&pool, "env", "API_URL", "https://api.example", false).await;
    let r = h.start("a");
    let id = insert_row(&pool, USER_A, "env", Some(REPO), "main").await;
    let row = h.wait_row(id, "running", is_running).await;
    let app = row.fly_app_name.clone();
    let m = machine(&h, &app);
    let mid = m["id"].as_str().unwrap().to_owned();
    assert_eq!(m["config"]["env"]["API_URL"], "https://api.example");
    assert!(!m.to_string().contains(SECRET), "a secret is never in the machine config: {m}");
    assert_eq!(
        h.sim.machine_secrets(&app, &mid).get("GIT_TOKEN").map(String::as_str),
        Some(SECRET)
    );
    // a change on the running preview: applied with a reason, within 30 s
    let generation = row.generation;
    let changed = Instant::now();
    set_var(&pool, "env", "GIT_TOKEN", "ghp_rotated", true).await;
    sqlx::query("DELETE FROM public.fly_preview_env WHERE name = 'API_URL'")
        .execute(&pool)
        .await
        .unwrap();
    let bumped = h.row(id).await;
    assert_eq!(
        (bumped.generation, bumped.status_reason),
        (generation + 2, Some(Reason::EnvChanged))
    );
    let row =
        h.wait_row(id, "running again", |r| is_running(r) && r.generation == generation + 2).await;
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(30), "the change took {took:?}");
    let m = machine(&h, &app);
    let mid = m["id"].as_str().unwrap().to_owned();
    assert_eq!(m["config"]["env"].get("API_URL"), None, "a removed variable is unset");
    let booted = h.sim.machine_secrets(&app, &mid);
    assert_eq!(booted.get("GIT_TOKEN").map(String::as_str), Some("ghp_rotated"));
    // all variables gone: the app's secrets are unset too
    sqlx::query("DELETE FROM public.fly_preview_env").execute(&pool).await.unwrap();
    h.wait_row(id, "running without variables", |r| is_running(r) && r.generation > row.generation)
        .await;
    let mid = machine(&h, &app)["id"].as_str().unwrap().to_owned();
    assert!(h.sim.machine_secrets(&app, &mid).is_empty());
    let text = row_text(&pool, id).await;
    assert!(!text.contains("ENVCANARY") && !text.contains("ghp_rotated"), "{text}");
    r.stop().await;
}

#[sqlx::test]
async fn a_preview_without_variables_makes_no_secrets_call(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let r = h.start("a");
    let id = insert_row(&pool, USER_A, "plain", Some(REPO), "main").await;
    let row = h.wait_row(id, "running", is_running).await;
    let secrets_calls = |h: &Harness| {
        h.calls_for(&row.fly_app_name).iter().filter(|c| c.contains("/secrets")).count()
    };
    assert_eq!(secrets_calls(&h), 0, "{:?}", h.calls_for(&row.fly_app_name));
    // a variable on a stopped preview waits for its next deploy
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    let before = h.row(id).await.generation;
    set_var(&pool, "plain", "A", "1", false).await;
    assert_eq!(h.row(id).await.generation, before, "no redeploy for a stopped preview");
    r.stop().await;
}
