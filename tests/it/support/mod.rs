//! Helpers shared by the integration tests.

pub mod admin_http;
pub mod dashboard_promql;
pub mod deploy_support;
pub mod fly_mock;
pub mod harness;
pub mod history;
pub mod postgrest;
pub mod prom_server;
pub mod runner_fixture;
pub mod supabase;

pub use fly_preview_controller::model::MachineState;
use fly_preview_controller::model::naming;
pub use fly_preview_controller::model::state::{DesiredState, Reason, Status};
pub use fly_preview_controller::store::Lease;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const USER_A: &str = "d20f481d-f7ac-4c72-8b42-c683320a6b6e";
pub const USER_B: &str = "5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d";

/// Inserts a row the way the web app's API does (as a privileged writer, not the controller).
pub async fn insert_row(
    pool: &PgPool,
    user: &str,
    project: &str,
    repo: Option<&str>,
    branch: &str,
) -> Uuid {
    let name = naming::app_name("roseram", user, project);
    sqlx::query_scalar(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, preview_url, status, github_repo_url, github_branch) \
         VALUES ($1::uuid, $2, $3, $4, 'pending', $5, $6) RETURNING id",
    )
    .bind(user)
    .bind(project)
    .bind(&name)
    .bind(naming::preview_url(&name))
    .bind(repo)
    .bind(branch)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Sets the row as the controller would (its writes are exempt from the request triggers).
pub async fn as_controller(pool: &PgPool, id: Uuid, set: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('fly_preview.controller', 'on', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let sql = format!("UPDATE public.fly_preview_apps SET {set} WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
}

/// The web app's write when the user opens the project (`opened_at`).
pub async fn open_project(pool: &PgPool, id: Uuid) {
    sqlx::query("UPDATE public.fly_preview_apps SET opened_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

/// Inserts `n` valid rows for USER_A with projects `p-0..p-n` (more than the database's
/// default cap of rows per user lifts the cap).
pub async fn insert_rows(pool: &PgPool, n: usize) -> Vec<Uuid> {
    if n > 100 {
        sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = 0")
            .execute(pool)
            .await
            .unwrap();
    }
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            insert_row(
                pool,
                USER_A,
                &format!("p-{i}"),
                Some("https://github.com/acme/site"),
                "main",
            )
            .await,
        );
    }
    ids
}

/// Marks rows as the controller does before its first call that can create their Fly app
/// (`fly_app_created`): their deletes leave tombstones.
pub async fn had_app(pool: &PgPool, ids: &[Uuid]) {
    sqlx::query("UPDATE public.fly_preview_apps SET fly_app_created = true WHERE id = ANY($1)")
        .bind(ids)
        .execute(pool)
        .await
        .unwrap();
}

/// Switches a transaction to a signed-in Supabase user (`authenticated` + JWT claims).
pub async fn become_user(conn: &mut PgConnection, user: &str) {
    sqlx::query("SET LOCAL ROLE authenticated").execute(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('request.jwt.claims', json_build_object('sub', $1::text, 'role', 'authenticated')::text, true)")
        .bind(user)
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// The SQLSTATE of a failed query.
pub fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string()).unwrap_or_default()
}

/// Path of an external tool the test needs (on PATH or in /usr/bin). Tests that call this are
/// `#[ignore = "needs <tool>: …"]`, so they only run when asked to: then a missing tool fails.
pub fn require_tool(tool: &str) -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|dir| dir.join(tool)).find(|p| p.is_file()));
    on_path
        .or_else(|| Some(std::path::Path::new("/usr/bin").join(tool)).filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("needs {tool}: install it with bash .ci/install-tools.sh"))
}

/// The versions of the embedded migrations from `first` on: what a database migrated by an
/// earlier release still lacks (later migrations keep these tests true).
pub fn migrations_from(first: i64) -> Vec<i64> {
    fly_preview_controller::store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v >= first)
        .collect()
}

/// How many migrations are embedded.
pub fn migration_count() -> usize {
    fly_preview_controller::store::MIGRATOR.iter().count()
}
