//! Row-level security and column privileges as a signed-in Supabase user, and migrations on
//! a database prepared like Supabase (roles and auth.uid() pre-existing, owned by others).

use crate::support::*;
use fly_preview_controller::model::naming;
use fly_preview_controller::store;
use sqlx::PgPool;

#[sqlx::test]
async fn users_see_only_their_own_rows(pool: PgPool) {
    insert_row(&pool, USER_A, "a1", Some("https://github.com/a/b"), "main").await;
    insert_row(&pool, USER_B, "b1", Some("https://github.com/a/b"), "main").await;
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let users: Vec<String> =
        sqlx::query_scalar("SELECT user_id::text FROM public.fly_preview_apps")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(users, vec![USER_A.to_string()]);
    let n = sqlx::query("DELETE FROM public.fly_preview_apps WHERE user_id = $1::uuid")
        .bind(USER_B)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n.rows_affected(), 0, "B's rows are invisible to A");
}

#[sqlx::test]
async fn users_insert_only_for_themselves(pool: PgPool) {
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let insert = "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, github_repo_url) VALUES ($1::uuid, 'p', $2, 'https://github.com/a/b')";
    let err = sqlx::query(insert)
        .bind(USER_B)
        .bind(naming::app_name("roseram", USER_B, "p"))
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    drop(tx);
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    sqlx::query(insert)
        .bind(USER_A)
        .bind(naming::app_name("roseram", USER_A, "p"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let bad = "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, attempts) VALUES ($1::uuid, 'q', 'x', 5)";
    let err = sqlx::query(bad).bind(USER_A).execute(&mut *tx).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "controller columns are not insertable: {err}");
}

#[sqlx::test]
async fn users_cannot_write_controller_columns(pool: PgPool) {
    let id = insert_row(&pool, USER_A, "a1", Some("https://github.com/a/b"), "main").await;
    for set in [
        "status_reason = 'x'",
        "attempts = 9",
        "fly_app_name = 'roseram-evil'",
        "user_id = gen_random_uuid()",
        "observed_generation = 5",
        "lease_owner = 'me'",
        "fly_machine_id = 'm'",
        "machine_state = 'started'",
        "generation = 99",
        "next_attempt_at = now()",
    ] {
        let mut tx = pool.begin().await.unwrap();
        become_user(&mut tx, USER_A).await;
        let err = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE public.fly_preview_apps SET {set} WHERE id = $1"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{set}: {err}");
    }
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let ok = sqlx::query("UPDATE public.fly_preview_apps SET github_branch = 'dev', status = 'stopped' WHERE id = $1").bind(id).execute(&mut *tx).await.unwrap();
    assert_eq!(ok.rows_affected(), 1, "steering columns are writable");
    let (desired, generation): (String, i64) = sqlx::query_as(
        "SELECT desired_state, generation FROM public.fly_preview_apps WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((desired.as_str(), generation), ("stopped", 2));
}

#[sqlx::test]
async fn anonymous_requests_see_nothing(pool: PgPool) {
    insert_row(&pool, USER_A, "a1", Some("https://github.com/a/b"), "main").await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE anon").execute(&mut *tx).await.unwrap();
    let err = sqlx::query("SELECT count(*) FROM public.fly_preview_apps")
        .fetch_one(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
}

/// Supabase: roles and auth.uid() exist and belong to other roles; the migrating role is
/// not a superuser and may not touch schema auth. The shim must leave all of it alone.
#[sqlx::test(migrations = false)]
async fn migrations_apply_on_a_supabase_like_database(pool: PgPool) {
    let setup = [
        "DO $$ BEGIN CREATE ROLE fpc_auth_admin NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "DO $$ BEGIN CREATE ROLE fpc_supa_postgres NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "DO $$ BEGIN CREATE ROLE anon NOLOGIN NOINHERIT; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "DO $$ BEGIN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "CREATE SCHEMA auth AUTHORIZATION fpc_auth_admin",
        "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid /* supabase original */ $$",
        "ALTER FUNCTION auth.uid() OWNER TO fpc_auth_admin",
        "GRANT USAGE ON SCHEMA auth TO authenticated, anon, service_role, fpc_supa_postgres",
        "GRANT CREATE, USAGE ON SCHEMA public TO fpc_supa_postgres",
        "GRANT authenticated, anon, service_role TO fpc_supa_postgres",
    ];
    for s in setup {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
    let db: String =
        sqlx::query_scalar("SELECT current_database()").fetch_one(&pool).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "GRANT CREATE ON DATABASE \"{db}\" TO fpc_supa_postgres"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET ROLE fpc_supa_postgres").execute(&mut *conn).await.unwrap();
    store::MIGRATOR.run(&mut *conn).await.unwrap();
    store::MIGRATOR.run(&mut *conn).await.unwrap();
    let (owner, src): (String, String) = sqlx::query_as("SELECT pg_get_userbyid(proowner)::text, prosrc FROM pg_proc WHERE oid = 'auth.uid()'::regprocedure").fetch_one(&mut *conn).await.unwrap();
    assert_eq!(owner, "fpc_auth_admin");
    assert!(src.contains("supabase original"), "auth.uid() was replaced: {src}");
    drop(conn);
    let id = insert_row(&pool, USER_A, "a1", Some("https://github.com/a/b"), "main").await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE authenticated").execute(&mut *tx).await.unwrap();
    sqlx::query("SELECT set_config('request.jwt.claim.sub', $1, true)")
        .bind(USER_A)
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM public.fly_preview_apps")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec![id], "the pre-existing auth.uid() drives the policies");
}

type Derived = (Option<String>, Option<String>, String);

/// preview_url, error_message, status of one row.
async fn derived(conn: &mut sqlx::PgConnection, id: uuid::Uuid) -> Derived {
    let sql =
        "SELECT preview_url, error_message, status FROM public.fly_preview_apps WHERE id = $1";
    sqlx::query_as(sql).bind(id).fetch_one(conn).await.unwrap()
}

/// The web app's own insert, with forged derived values, as the signed-in user.
async fn insert_forged(pool: &PgPool, name: &str) -> uuid::Uuid {
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let id = sqlx::query_scalar(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, preview_url, status, error_message, github_repo_url, github_branch) \
         VALUES ($1::uuid, 'p', $2, 'https://evil.example', 'running', 'forged', 'https://github.com/a/b', 'main') RETURNING id",
    )
    .bind(USER_A)
    .bind(name)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// The web app's own writes are accepted as it sends them; derived values it sends are
/// replaced by the truth (trigger fly_preview_apps_15_derived), never trusted.
#[sqlx::test]
async fn derived_values_inserted_by_users_are_replaced_by_the_truth(pool: PgPool) {
    let name = naming::app_name("roseram", USER_A, "p");
    let id = insert_forged(&pool, &name).await;
    let mut conn = pool.acquire().await.unwrap();
    let truth = (Some(naming::preview_url(&name)), None, "pending".to_string());
    assert_eq!(derived(&mut conn, id).await, truth);
}

#[sqlx::test]
async fn derived_values_updated_by_users_are_kept_until_a_redeploy(pool: PgPool) {
    let id = insert_forged(&pool, &naming::app_name("roseram", USER_A, "p")).await;
    // the controller records an error
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'error', error_message = 'boom', preview_url = NULL WHERE id = $1 AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL")
        .bind(id).execute(&pool).await.unwrap();
    // the user's writes to derived columns are accepted and change nothing, even when the
    // user sets the controller's marker
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let mark = "SELECT set_config('fly_preview.controller', 'on', true)";
    sqlx::query(mark).execute(&mut *tx).await.unwrap();
    let n = sqlx::query("UPDATE public.fly_preview_apps SET error_message = NULL, preview_url = 'https://evil' WHERE id = $1")
        .bind(id).execute(&mut *tx).await.unwrap();
    assert_eq!(n.rows_affected(), 1, "accepted");
    assert_eq!(derived(&mut tx, id).await, (None, Some("boom".into()), "error".into()));
    // until a redeploy request: a pending row has no error yet
    let redeploy =
        "UPDATE public.fly_preview_apps SET status = 'pending', error_message = NULL WHERE id = $1";
    sqlx::query(redeploy).bind(id).execute(&mut *tx).await.unwrap();
    assert_eq!(derived(&mut tx, id).await, (None, None, "pending".into()));
}

#[sqlx::test]
async fn users_hold_no_truncate_references_or_trigger(pool: PgPool) {
    for role in ["anon", "authenticated"] {
        for privilege in ["TRUNCATE", "REFERENCES", "TRIGGER"] {
            let held: bool =
                sqlx::query_scalar("SELECT has_table_privilege($1, 'public.fly_preview_apps', $2)")
                    .bind(role)
                    .bind(privilege)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert!(!held, "{role} holds {privilege}");
        }
    }
}
