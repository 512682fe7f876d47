//! Which role `run` connects as, on the Supabase-faithful cluster: Supabase's `postgres`
//! (BYPASSRLS, owner of the table) works but gets a loud warning and `/readyz` detail; the
//! least-privilege role gets neither; a role missing schema USAGE is refused with the grant
//! to run (exit 2, one line); `migrate` with nothing pending succeeds as the controller's role.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::controller_role::{CONTROLLER_ROLE_SQL, ROLE};
use crate::support::admin_http::wait_http;
use crate::support::harness::TOKEN;
use crate::support::supabase::{PORT, SupaDb};
use fly_preview_controller::store;
use fly_sim::{SimConfig, Simulator};

async fn migrated() -> SupaDb {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&postgres).await.unwrap();
    db
}

/// `/readyz` of `run` as `role` once ready; the process is stopped after.
async fn readyz_as(db: &SupaDb, role: &str) -> String {
    let sim = Simulator::start(SimConfig { token: Some(TOKEN.into()), ..SimConfig::default() })
        .await
        .unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .arg("run")
        .env_clear()
        .env("DATABASE_URL", db.url(PORT, role))
        .env("FLY_API_TOKEN", TOKEN)
        .env("FLY_API_URL", sim.base_url())
        .env("LISTEN_ADDR", admin.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(admin).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "run exited early");
        assert!(Instant::now() < deadline, "admin server never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, body) = wait_http(admin, "/readyz", "ready", |s, _| s == 200).await;
    let _ = child.kill();
    let _ = child.wait();
    sim.shutdown().await;
    body
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn supabases_postgres_role_is_warned_about_and_the_least_privilege_role_is_not() {
    let db = migrated().await;
    let body = readyz_as(&db, "postgres").await;
    assert!(
        body.starts_with("ready\nwarning: DATABASE_URL connects as role \"postgres\""),
        "{body}"
    );
    assert!(
        body.contains("bypasses row-level security and owns public.fly_preview_apps"),
        "{body}"
    );
    assert!(body.contains("deploy/sql/controller-role.sql"), "{body}");
    assert_eq!(readyz_as(&db, ROLE).await, "ready\n");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn a_role_without_schema_usage_is_told_the_grant_to_run() {
    let db = migrated().await;
    let postgres = db.pool("postgres").await;
    sqlx::raw_sql("REVOKE USAGE ON SCHEMA fly_preview_controller FROM fly_preview_reconciler")
        .execute(&postgres)
        .await
        .unwrap();
    let stderr = run_refused(&db, &[]);
    let grant = "grant usage on schema fly_preview_controller to \"fly_preview_reconciler\";";
    assert!(stderr.contains(grant), "{stderr}");
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&postgres).await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", db.url(PORT, ROLE))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("up to date"), "{stdout}");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn an_app_prefix_other_than_the_databases_is_refused() {
    let db = migrated().await;
    let stderr = run_refused(&db, &[("APP_PREFIX", "other")]);
    assert!(stderr.contains("APP_PREFIX") && stderr.contains("'roseram'"), "{stderr}");
}

/// `run` as the controller's role (Fly unreachable, never asked): refused with exit 2 and
/// exactly one line on stderr, which is returned.
fn run_refused(db: &SupaDb, env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .arg("run")
        .env_clear()
        .env("DATABASE_URL", db.url(PORT, ROLE))
        .env("FLY_API_TOKEN", "fo1_x")
        .env("FLY_API_URL", "http://127.0.0.1:9")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}
