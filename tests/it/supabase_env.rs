//! The web app's per-preview variables (`public.fly_preview_env`) on the Supabase-faithful
//! database, written and read exactly as PostgREST does for a signed-in user: own rows only,
//! a secret's value never read back (it lives in the controller's schema), every refused
//! write one clear error with nothing partial.

use crate::controller_role::{CONTROLLER_ROLE_SQL, ROLE, pool_as};
use crate::supabase_contract::{Project, project};
use crate::support::postgrest::{
    Jwt, delete_sql_in, eq_in, insert_sql_in, select_sql, update_sql_in,
};
use crate::support::sqlstate;
use serde_json::{Value, json};
use uuid::Uuid;

const T: &str = "fly_preview_env";

impl Project {
    async fn env_insert(&self, user: Uuid, body: Value) -> Result<Vec<Value>, sqlx::Error> {
        self.api.request(Jwt::User(user), "POST", &insert_sql_in(T, &body), Some(&body)).await
    }

    async fn env_patch(
        &self,
        user: Uuid,
        name: &str,
        body: Value,
    ) -> Result<Vec<Value>, sqlx::Error> {
        let sql = update_sql_in(T, &eq_in(T, "name", name), &body);
        self.api.request(Jwt::User(user), "PATCH", &sql, Some(&body)).await
    }

    async fn env_get(&self, jwt: Jwt) -> Result<Vec<Value>, sqlx::Error> {
        self.api.call(jwt, "GET", &select_sql("\"public\".\"fly_preview_env\"", "true")).await
    }

    /// What the controller's schema holds for `name` (as `postgres`).
    async fn stored_secret(&self, name: &str) -> Option<String> {
        sqlx::query_scalar("SELECT value FROM fly_preview_controller.env_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.postgres)
            .await
            .unwrap()
    }
}

fn var(user: Uuid, name: &str, value: &str) -> Value {
    json!({"user_id": user, "project_id": "site", "name": name, "value": value})
}

fn by_name(rows: &[Value], name: &str) -> Value {
    rows.iter().find(|r| r["name"] == json!(name)).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn secrets_are_written_replaced_and_deleted_but_never_read_back() {
    let p = project().await;
    // a secret by default; the response itself does not echo it
    let made = p.env_insert(p.a, var(p.a, "GIT_TOKEN", "ghp_canary_1")).await.unwrap();
    assert_eq!(made[0]["value"], Value::Null, "{made:?}");
    assert_eq!(made[0]["secret"], json!(true));
    let plain = json!({"user_id": p.a, "project_id": "site", "name": "API_URL",
                       "value": "https://api.example", "secret": false});
    p.env_insert(p.a, plain).await.unwrap();
    let rows = p.env_get(Jwt::User(p.a)).await.unwrap();
    assert_eq!(by_name(&rows, "GIT_TOKEN")["value"], Value::Null);
    assert_eq!(by_name(&rows, "API_URL")["value"], json!("https://api.example"));
    assert!(!rows.iter().any(|r| r.to_string().contains("ghp_canary")), "{rows:?}");
    assert_eq!(p.stored_secret("GIT_TOKEN").await.as_deref(), Some("ghp_canary_1"));
    // replaced (rotation), still unreadable
    let r = p.env_patch(p.a, "GIT_TOKEN", json!({"value": "ghp_canary_2"})).await.unwrap();
    assert_eq!(r[0]["value"], Value::Null);
    assert_eq!(p.stored_secret("GIT_TOKEN").await.as_deref(), Some("ghp_canary_2"));
    // turning a secret into a plain variable needs its value in the same write
    let e = p.env_patch(p.a, "GIT_TOKEN", json!({"secret": false})).await.unwrap_err();
    assert!(e.to_string().contains("needs its new value"), "{e}");
    assert_eq!(p.stored_secret("GIT_TOKEN").await.as_deref(), Some("ghp_canary_2"));
    // a plain variable made secret leaves the table
    p.env_patch(p.a, "API_URL", json!({"secret": true})).await.unwrap();
    let rows = p.env_get(Jwt::User(p.a)).await.unwrap();
    assert_eq!(by_name(&rows, "API_URL")["value"], Value::Null);
    assert_eq!(p.stored_secret("API_URL").await.as_deref(), Some("https://api.example"));
    // deleted with its secret
    let del = delete_sql_in(T, &eq_in(T, "name", "GIT_TOKEN"));
    assert_eq!(p.api.call(Jwt::User(p.a), "DELETE", &del).await.unwrap().len(), 1);
    assert_eq!(p.stored_secret("GIT_TOKEN").await, None);
    // a deleted user takes their variables and secrets along
    sqlx::query("DELETE FROM auth.users WHERE id = $1")
        .bind(p.a)
        .execute(&p.postgres)
        .await
        .unwrap();
    assert_eq!(p.stored_secret("API_URL").await, None);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_env")
        .fetch_one(&p.postgres)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn nobody_else_reaches_a_users_variables() {
    let p = project().await;
    p.env_insert(p.a, var(p.a, "SECRET_KEY", "s3cr3t")).await.unwrap();
    // Ben sees, changes and deletes nothing of Ana's, and cannot write for her
    assert!(p.env_get(Jwt::User(p.b)).await.unwrap().is_empty());
    assert!(p.env_patch(p.b, "SECRET_KEY", json!({"value": "x"})).await.unwrap().is_empty());
    let del = delete_sql_in(T, &eq_in(T, "name", "SECRET_KEY"));
    assert!(p.api.call(Jwt::User(p.b), "DELETE", &del).await.unwrap().is_empty());
    let e = p.env_insert(p.b, var(p.a, "OTHER", "x")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    // anon: no privilege at all
    let e = p.env_get(Jwt::Anon).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    let e = p.env_insert(p.a, json!({"user_id": p.a, "project_id": "site", "name": "N", "value": "v", "created_at": "2020-01-01T00:00:00Z"})).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "timestamps are the database's: {e}");
    assert_eq!(p.stored_secret("SECRET_KEY").await.as_deref(), Some("s3cr3t"));
}

/// Each refused write: its SQLSTATE and a phrase of its message.
async fn refused(p: &Project, body: Value, state: &str, says: &str) {
    let e = p.env_insert(p.a, body.clone()).await.unwrap_err();
    assert_eq!(sqlstate(&e), state, "{body}: {e}");
    assert!(e.to_string().contains(says), "{body}: {e}");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn bad_variables_are_refused_with_a_clear_error_and_nothing_partial() {
    let p = project().await;
    let a = p.a;
    let long = "A".repeat(129);
    for name in ["1ABC", "A-B", "ÄPI", "", long.as_str()] {
        refused(&p, var(a, name, "v"), "23514", "fly_preview_env_name_format").await;
    }
    for name in [
        "PORT",
        "port",
        "HOST",
        "REPO_URL",
        "REPO_BRANCH",
        "ROOT_DIRECTORY",
        "FLY_API_TOKEN",
        "fly_x",
    ] {
        refused(&p, var(a, name, "v"), "23514", "fly_preview_env_name_reserved").await;
    }
    refused(&p, var(a, "BIG", &"x".repeat(4097)), "23514", "at most 4096").await;
    let plain = json!({"user_id": a, "project_id": "site", "name": "BIG", "value": "x".repeat(4097), "secret": false});
    refused(&p, plain, "23514", "at most 4096").await;
    // NUL cannot reach a text column: PostgREST's JSON decoding refuses it first
    refused(&p, var(a, "NUL", "a\u{0}b"), "22P05", "unsupported Unicode escape").await;
    refused(
        &p,
        json!({"user_id": a, "project_id": "site", "name": "NOVALUE"}),
        "23502",
        "needs a value",
    )
    .await;
    // 65 variables in one request: refused, none stored
    let many: Vec<Value> = (0..65).map(|i| var(a, &format!("V{i}"), "v")).collect();
    refused(&p, json!(many), "54000", "at most 64 variables").await;
    assert!(p.env_get(Jwt::User(a)).await.unwrap().is_empty());
    // 64 fit; 17 × 4 KiB does not (more than 64 KiB), secrets counted too
    let fit: Vec<Value> = (0..64).map(|i| var(a, &format!("V{i}"), "v")).collect();
    assert_eq!(p.env_insert(a, json!(fit)).await.unwrap().len(), 64);
    let big: Vec<Value> = (0..17)
        .map(|i| json!({"user_id": a, "project_id": "big", "name": format!("B{i}"), "value": "x".repeat(4000)}))
        .collect();
    refused(&p, json!(big), "54000", "at most 64 KiB").await;
    assert_eq!(p.env_get(Jwt::User(a)).await.unwrap().len(), 64, "nothing of the refused write");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_controllers_role_reads_every_preview_variable() {
    let p = project().await;
    p.env_insert(p.a, var(p.a, "NPM_TOKEN", "npm_canary")).await.unwrap();
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&p.postgres).await.unwrap();
    let ctl = pool_as(&p.postgres, ROLE).await;
    let (name, value): (String, String) = sqlx::query_as(
        "SELECT e.name, s.value FROM public.fly_preview_env e \
         JOIN fly_preview_controller.env_secrets s USING (user_id, project_id, name)",
    )
    .fetch_one(&ctl)
    .await
    .unwrap();
    assert_eq!((name.as_str(), value.as_str()), ("NPM_TOKEN", "npm_canary"));
    let e = sqlx::query("DELETE FROM fly_preview_controller.env_secrets")
        .execute(&ctl)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "read only: {e}");
}
