//! The controller's own role: `run` refuses a role that cannot see and write every row (exit 2,
//! one line, before /readyz exists), and the documented least-privilege role
//! (deploy/sql/controller-role.sql: no superuser, no BYPASSRLS, its own policies and grants)
//! passes that check and can do everything `run` does.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use fly_preview_controller::store::{self, LeaderConn, Lease, StatusWrite, Store, Tombstones};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub const CONTROLLER_ROLE_SQL: &str = include_str!("../../deploy/sql/controller-role.sql");
pub const ROLE: &str = "fly_preview_reconciler";

/// A pool on the same database as `pool`, logged in as `role` (trust auth on the test server).
pub async fn pool_as(pool: &PgPool, role: &str) -> PgPool {
    let opts = pool.connect_options().as_ref().clone().username(role);
    PgPoolOptions::new().max_connections(4).connect_with(opts).await.unwrap()
}

/// `DATABASE_URL` of `pool`'s database for `role`.
pub async fn url_as(pool: &PgPool, role: &str) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
    let opts = pool.connect_options();
    format!("postgres://{role}@{}:{}/{db}", opts.get_host(), opts.get_port())
}

/// A role with every grant `run` needs but no policy and no BYPASSRLS: RLS hides all rows.
async fn role_without_policies(pool: &PgPool, role: &str) {
    let create = format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(pool).await.unwrap();
    let grants = format!(
        "GRANT USAGE ON SCHEMA fly_preview_controller TO {role};
         GRANT SELECT, UPDATE ON public.fly_preview_apps TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON fly_preview_controller.leader TO {role};
         GRANT SELECT, UPDATE, DELETE ON fly_preview_controller.tombstones TO {role};
         GRANT SELECT ON fly_preview_controller._sqlx_migrations TO {role};
         GRANT EXECUTE ON FUNCTION public.fly_preview_apps_by_controller() TO {role};"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(grants)).execute(pool).await.unwrap();
}

#[sqlx::test]
async fn a_role_without_bypassrls_or_a_policy_is_refused(pool: PgPool) {
    insert_rows(&pool, 1).await;
    role_without_policies(&pool, "fpc_test_no_policy").await;
    let as_role = pool_as(&pool, "fpc_test_no_policy").await;
    let err = store::check_row_access(&as_role).await.unwrap_err();
    assert_eq!(err.kind(), "db_access");
    let line = err.to_string();
    for part in [
        "\"fpc_test_no_policy\"",
        "public.fly_preview_apps: row-level security hides rows from SELECT/UPDATE",
        "fly_preview_controller.leader: row-level security hides rows from",
        "fly_preview_controller.tombstones: row-level security hides rows from DELETE/SELECT/UPDATE",
        "deploy/sql/controller-role.sql",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(!line.contains('\n'), "one line: {line}");
    // postgres (superuser here, BYPASSRLS on Supabase) passes
    store::check_row_access(&pool).await.unwrap();
}

#[sqlx::test]
async fn run_exits_2_with_one_line_and_never_serves_readyz(pool: PgPool) {
    role_without_policies(&pool, "fpc_test_no_policy").await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listen.local_addr().unwrap().to_string();
    drop(listen);
    let out = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .arg("run")
        .env_clear()
        .env("DATABASE_URL", url_as(&pool, "fpc_test_no_policy").await)
        .env("FLY_API_TOKEN", "fo1_x")
        .env("FLY_API_URL", "http://127.0.0.1:9")
        .env("LISTEN_ADDR", &addr)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("deploy/sql/controller-role.sql"), "names the fix: {stderr}");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "/readyz was never served");
}

#[sqlx::test]
async fn the_documented_role_is_least_privilege_and_can_do_what_run_does(pool: PgPool) {
    let ids = insert_rows(&pool, 2).await;
    let (id, deleted) = (ids[0], ids[1]);
    had_app(&pool, &[deleted]).await;
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(deleted)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&pool).await.unwrap();
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&pool).await.expect("running it again is a no-op");
    let (sup, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(ROLE)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((sup, bypass), (false, false));
    let as_role = pool_as(&pool, ROLE).await;
    store::check_row_access(&as_role).await.unwrap();
    assert!(store::migrate::pending(&as_role).await.unwrap().is_empty());
    let s = Store::new(as_role.clone(), "least-privilege");
    // leadership: its session settings, the lock (no grant needed) and the row
    let mut leader = LeaderConn::connect(&as_role, "least-privilege").await.unwrap();
    leader.lock().await.unwrap();
    assert!(leader.note(Duration::from_secs(30)).await.unwrap());
    let claimed = s.claim(10, Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "sees every row");
    let w = StatusWrite {
        status: Status::Initializing,
        reason: Reason::Deploying,
        error_message: None,
        detail: None,
        preview_url: None,
        fly_machine_id: None,
        machine_state: None,
        observed_generation: None,
        attempts: 0,
        next_attempt_at: None,
    };
    assert!(s.write_status(id, 1, &w, Lease::Release).await.unwrap().is_some());
    leader.unlock().await.unwrap();
    s.resign().await.unwrap();
    // the teardown of deleted rows: every statement of the tombstone queue
    let t = Tombstones::new(as_role.clone(), "least-privilege", Duration::from_secs(30));
    assert_eq!(t.pending().await.unwrap(), 1, "sees every tombstone");
    let claimed = t.claim(10).await.unwrap();
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), [deleted]);
    assert!(t.next_due().await.unwrap().is_some());
    assert_eq!(t.renew(&[deleted]).await.unwrap(), [deleted]);
    let later = chrono::Utc::now() + chrono::Duration::seconds(30);
    assert!(t.retry(deleted, later, "503", true).await.unwrap());
    assert_eq!(t.wake().await.unwrap(), 1, "the heal makes it due");
    let claimed = t.claim(10).await.unwrap();
    assert!(t.release(deleted).await.unwrap());
    t.claim(10).await.unwrap();
    assert_eq!(t.release_all().await.unwrap(), 1);
    t.claim(10).await.unwrap();
    assert!(t.finish(&claimed[0]).await.unwrap());
    assert_eq!(t.pending().await.unwrap(), 0);
    for (what, sql) in [
        (
            "insert previews",
            "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name) VALUES (gen_random_uuid(), 'x', 'x')",
        ),
        ("delete previews", "DELETE FROM public.fly_preview_apps"),
        ("change the schema", "ALTER TABLE public.fly_preview_apps ADD COLUMN x int"),
        ("rewrite history", "DELETE FROM fly_preview_controller._sqlx_migrations"),
        (
            "forge tombstones",
            "INSERT INTO fly_preview_controller.tombstones (id, user_id, fly_app_name) VALUES (gen_random_uuid(), gen_random_uuid(), 'x')",
        ),
    ] {
        let err = sqlx::query(sql).execute(&as_role).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "it cannot {what}: {err}");
    }
}
