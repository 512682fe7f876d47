//! On the Supabase-faithful database: the daemon under the documented least-privilege role
//! (deploy/sql/controller-role.sql) converges a row the web app created through its whole
//! lifecycle, and a project migrated by the previous release (bookkeeping in public, readable
//! and writable with the anon key) is upgraded by `migrate` without losing its history.

use crate::controller_role::{CONTROLLER_ROLE_SQL, ROLE};
use crate::support::admin_http::{REPO, wait_http};
use crate::support::harness::{Harness, TOKEN, is_running};
use crate::support::postgrest::{
    Jwt, PostgRest, delete_sql, eq, insert_sql, select_sql, update_sql,
};
use crate::support::supabase::{PORT, SESSION_POOLER_PORT, SupaDb, opts};
use crate::support::*;
use crate::upgrade::{HISTORY, SEAM, migrate_like_the_previous_release};
use fly_preview_controller::fly::Secret;
use fly_preview_controller::model::naming;
use fly_preview_controller::store;
use fly_preview_controller::store::Store;
use fly_sim::{SimConfig, Simulator};
use serde_json::json;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A migrated Supabase database with the controller's least-privilege role created by the
/// documented snippet; returns it and a `postgres` pool.
async fn least_privilege_project() -> (SupaDb, PgPool) {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&postgres).await.unwrap();
    let (sup, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(ROLE)
            .fetch_one(&postgres)
            .await
            .unwrap();
    assert_eq!((sup, bypass), (false, false), "least privilege");
    (db, postgres)
}

/// The seed's `GET /api/fly-preview`: the user's insert through PostgREST; the new row's id.
async fn web_app_creates(api: &PostgRest, user: Jwt, name: &str) -> Uuid {
    let body = json!({
        "user_id": USER_A, "project_id": "site", "fly_app_name": name,
        "preview_url": naming::preview_url(name), "status": "pending",
        "github_repo_url": "https://github.com/vercel/next-learn", "github_branch": "main",
    });
    let created = api.request(user, "POST", &insert_sql(&body), Some(&body)).await.unwrap();
    created[0]["id"].as_str().unwrap().parse().unwrap()
}

/// PATCH /rest/v1/fly_preview_apps?id=eq.<id> as the user.
async fn web_app_patches(api: &PostgRest, user: Jwt, id: Uuid, body: serde_json::Value) {
    api.request(user, "PATCH", &update_sql(&eq("id", id), &body), Some(&body)).await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_daemon_converges_a_row_under_the_least_privilege_role() {
    let (db, postgres) = least_privilege_project().await;
    // what `run` does first: connect (pooler probe), check the role, check the schema
    let pool = store::connect(&Secret::new(db.url(PORT, ROLE)), 8).await.unwrap();
    store::check_row_access(&pool).await.unwrap();
    assert!(store::migrate::pending(&pool).await.unwrap().is_empty());
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let user = Jwt::User(USER_A.parse().unwrap());
    let name = naming::app_name("roseram", USER_A, "site");
    let id = web_app_creates(&api, user, &name).await;

    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let replica = h.start("least-privilege");
    let running = h.wait_row(id, "running", is_running).await;
    assert_eq!(running.preview_url.as_deref(), Some(naming::preview_url(&name).as_str()));
    assert_eq!(h.sim.machines(&name).len(), 1);
    let read = select_sql("\"public\".\"fly_preview_apps\"", &eq("id", id));
    let seen = api.call(user, "GET", &read).await.unwrap();
    assert_eq!(seen[0]["status"], json!("running"), "the web app reads the truth");
    let mut leader: Option<String> = None;
    for _ in 0..200 {
        leader = sqlx::query_scalar("SELECT holder FROM fly_preview_controller.leader")
            .fetch_optional(&postgres)
            .await
            .unwrap();
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(leader.as_deref(), Some("least-privilege"), "leader election works under the role");

    web_app_patches(&api, user, id, json!({"status": "stopped"})).await;
    h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    assert!(h.sim.machines(&name).is_empty(), "the app is gone");
    web_app_patches(&api, user, id, json!({"status": "pending", "error_message": null})).await;
    h.wait_row(id, "running again", is_running).await;
    api.call(user, "DELETE", &delete_sql(&eq("id", id))).await.unwrap();
    h.eventually("the deleted row's app destroyed", || h.sim.machines(&name).is_empty()).await;
    replica.stop().await;
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn a_project_migrated_by_the_previous_release_is_upgraded_and_closed() {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    migrate_like_the_previous_release(&postgres).await;
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let bookkeeping = select_sql("\"public\".\"_sqlx_migrations\"", "true");
    // the bug: with nothing but the anon key, the migration history is readable (and writable)
    let leaked = api.call(Jwt::Anon, "GET", &bookkeeping).await.unwrap();
    assert_eq!(leaked.len(), 4, "today's main exposes public._sqlx_migrations to anon");
    let history: String =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{HISTORY} public._sqlx_migrations")))
            .fetch_one(&postgres)
            .await
            .unwrap();

    assert_eq!(
        store::migrate::run(&postgres).await.unwrap(),
        crate::support::migrations_from(SEAM)
    );
    let err = api.call(Jwt::Anon, "GET", &bookkeeping).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42P01", "no longer exposed: {err}");
    let moved: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "{HISTORY} fly_preview_controller._sqlx_migrations WHERE version < {SEAM}"
    )))
    .fetch_one(&postgres)
    .await
    .unwrap();
    assert_eq!(moved, history, "history kept");
    let exposed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' \
         AND c.relname NOT IN ('fly_preview_apps', 'fly_preview_events', 'fly_preview_env')",
    )
    .fetch_one(&postgres)
    .await
    .unwrap();
    assert_eq!(
        exposed, 0,
        "nothing of the controller's is left in public (the web app's tables are)"
    );
}

/// `fly-preview-controller run` with a clean environment plus `env`, output discarded.
fn spawn_run(env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"));
    cmd.arg("run").env_clear().stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
}

/// The real binary: `run` through the session pooler as the least-privilege role becomes ready,
/// converges a row the web app created, and drains on SIGTERM.
#[tokio::test]
#[ignore = "needs the Supabase cluster and pgbouncer: bash .ci/supabase/setup.sh && bash .ci/supabase/pgbouncer.sh"]
async fn run_through_the_session_pooler_as_the_least_privilege_role() {
    let (db, postgres) = least_privilege_project().await;
    let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), ..SimConfig::default() })
        .await
        .unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = spawn_run(&[
        ("DATABASE_URL", db.url(SESSION_POOLER_PORT, ROLE)),
        ("FLY_API_TOKEN", TOKEN.into()),
        ("FLY_API_URL", sim.base_url()),
        ("LISTEN_ADDR", admin.to_string()),
        ("POLL_INTERVAL", "200ms".into()),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(admin).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "run exited early");
        assert!(Instant::now() < deadline, "admin server never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_http(admin, "/readyz", "ready", |s, _| s == 200).await;
    let id = insert_row(&postgres, USER_A, "pooled", Some(REPO), "main").await;
    let observer = Store::new(postgres.clone(), "observer");
    while !is_running(&observer.get(id).await.unwrap().unwrap()) {
        assert!(Instant::now() < deadline + Duration::from_secs(30), "row never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ =
        std::process::Command::new("kill").args(["-s", "TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "graceful exit: {status}");
    sim.shutdown().await;
}
