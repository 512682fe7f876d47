//! The web app's contract on a Supabase-faithful database (`.ci/supabase/setup.sh`: Supabase's
//! own init scripts and migrations, the auth service's migrations). Each test: a fresh copy of
//! Supabase's `postgres` database, `migrate` as `postgres` (NOSUPERUSER BYPASSRLS, as on
//! Supabase), then requests exactly as PostgREST makes them (support/postgrest.rs), as the
//! signed-in user (`authenticated` + JWT claims) or with the anon key.

use crate::controller_role::CONTROLLER_ROLE_SQL;
use crate::support::postgrest::{
    Jwt, PostgRest, delete_sql, eq, insert_sql, select_sql, update_sql,
};
use crate::support::supabase::{PORT, SupaDb, opts};
use crate::support::*;
use fly_preview_controller::model::naming;
use fly_preview_controller::store;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const LINTS: &str = include_str!("supabase_lints.sql");

/// A migrated Supabase database, the PostgREST stand-in and the two users' ids.
struct Project {
    db: SupaDb,
    postgres: PgPool,
    api: PostgRest,
    a: Uuid,
    b: Uuid,
}

async fn project() -> Project {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let (a, b) = (USER_A.parse().unwrap(), USER_B.parse().unwrap());
    for (id, email) in [(a, "ana@example.com"), (b, "ben@example.com")] {
        sqlx::query("INSERT INTO auth.users (instance_id, id, aud, role, email) VALUES ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2)")
            .bind(id).bind(email).execute(&postgres).await.unwrap();
    }
    Project { db, postgres, api, a, b }
}

/// The body of the seed's `GET /api/fly-preview` insert.
fn seed_insert(user: Uuid, project: &str, extra: &Value) -> Value {
    let name = naming::app_name("roseram", &user.to_string(), project);
    let mut body = json!({
        "user_id": user, "project_id": project, "fly_app_name": name,
        "preview_url": naming::preview_url(&name), "status": "pending",
        "github_repo_url": "https://github.com/vercel/next-learn", "github_branch": "main",
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

impl Project {
    async fn create(&self, user: Uuid, project: &str, extra: Value) -> Value {
        let body = seed_insert(user, project, &extra);
        let rows = self
            .api
            .request(Jwt::User(user), "POST", &insert_sql(&body), Some(&body))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].clone()
    }

    async fn patch(&self, user: Uuid, id: &Value, body: Value) -> Result<Vec<Value>, sqlx::Error> {
        let sql = update_sql(&eq("id", id.as_str().unwrap()), &body);
        self.api.request(Jwt::User(user), "PATCH", &sql, Some(&body)).await
    }

    async fn get(&self, jwt: Jwt, filter: &str) -> Result<Vec<Value>, sqlx::Error> {
        self.api.call(jwt, "GET", &select_sql("\"public\".\"fly_preview_apps\"", filter)).await
    }
}

#[track_caller]
fn assert_fields(row: &Value, want: &[(&str, Value)]) {
    for (k, v) in want {
        assert_eq!(&row[*k], v, "{k} in {row:#}");
    }
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_web_apps_operations_succeed_and_follow_the_row_contract() {
    let p = project().await;
    let name = naming::app_name("roseram", USER_A, "site");
    let url = json!(naming::preview_url(&name));
    // create with the seed's column list, including preview_url
    let row = p.create(p.a, "site", json!({})).await;
    assert_fields(
        &row,
        &[
            ("preview_url", url.clone()),
            ("status", json!("pending")),
            ("desired_state", json!("running")),
            ("generation", json!(1)),
            ("error_message", Value::Null),
        ],
    );
    let id = row["id"].clone();
    // also with error_message null, and with forged derived values: replaced by the truth
    p.create(p.a, "blog", json!({"error_message": null})).await;
    let forged = p.create(p.a, "shop", json!({"preview_url": "https://evil.example", "status": "running", "error_message": "forged"})).await;
    let shop = naming::app_name("roseram", USER_A, "shop");
    assert_fields(
        &forged,
        &[
            ("preview_url", json!(naming::preview_url(&shop))),
            ("status", json!("pending")),
            ("error_message", Value::Null),
        ],
    );
    // read own
    let mine = p.get(Jwt::User(p.a), "true").await.unwrap();
    assert_eq!(mine.len(), 3);
    assert_eq!(
        p.get(Jwt::User(p.a), &eq("id", id.as_str().unwrap())).await.unwrap()[0]["fly_app_name"],
        json!(name)
    );
    // status = 'stopped': a teardown request; the status stays truthful until the app is gone
    let r = p.patch(p.a, &id, json!({"status": "stopped"})).await.unwrap();
    assert_fields(
        &r[0],
        &[
            ("desired_state", json!("stopped")),
            ("status", json!("pending")),
            ("generation", json!(2)),
            ("status_reason", json!("TeardownRequested")),
        ],
    );
    // status = 'pending' (and clearing error_message): a redeploy request
    let r = p.patch(p.a, &id, json!({"status": "pending", "error_message": null})).await.unwrap();
    assert_fields(
        &r[0],
        &[
            ("desired_state", json!("running")),
            ("status", json!("pending")),
            ("generation", json!(3)),
            ("error_message", Value::Null),
        ],
    );
    // change branch: a spec change, the same row, a new generation
    let r = p.patch(p.a, &id, json!({"github_branch": "dev"})).await.unwrap();
    assert_fields(
        &r[0],
        &[
            ("github_branch", json!("dev")),
            ("generation", json!(4)),
            ("status_reason", json!("SpecChanged")),
            ("preview_url", url),
        ],
    );
    // delete own
    let gone = p
        .api
        .call(Jwt::User(p.a), "DELETE", &delete_sql(&eq("id", id.as_str().unwrap())))
        .await
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert!(p.get(Jwt::User(p.a), &eq("id", id.as_str().unwrap())).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn cross_user_access_and_writes_to_controller_columns_are_refused() {
    let p = project().await;
    let bens = p.create(p.b, "ben-site", json!({})).await;
    let ben_id = bens["id"].as_str().unwrap().to_string();
    let anas = p.create(p.a, "ana-site", json!({})).await;
    // Ana cannot see, change or delete Ben's row (0 rows), nor create one for him
    assert!(p.get(Jwt::User(p.a), &eq("id", &ben_id)).await.unwrap().is_empty());
    assert!(p.patch(p.a, &bens["id"], json!({"status": "stopped"})).await.unwrap().is_empty());
    assert!(
        p.api
            .call(Jwt::User(p.a), "DELETE", &delete_sql(&eq("id", &ben_id)))
            .await
            .unwrap()
            .is_empty()
    );
    let body = seed_insert(p.b, "forged", &json!({}));
    let err =
        p.api.request(Jwt::User(p.a), "POST", &insert_sql(&body), Some(&body)).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    // every controller-owned column is refused, on update and on insert
    for (col, v) in [
        ("status_reason", json!("Ready")),
        ("attempts", json!(0)),
        ("generation", json!(9)),
        ("observed_generation", json!(9)),
        ("lease_owner", json!("me")),
        ("lease_expires_at", json!("2030-01-01T00:00:00Z")),
        ("fly_machine_id", json!("m1")),
        ("machine_state", json!("started")),
        ("next_attempt_at", json!("2030-01-01T00:00:00Z")),
        ("last_transition_at", json!("2030-01-01T00:00:00Z")),
        ("requested_at", json!("2030-01-01T00:00:00Z")),
        ("fly_app_name", json!("roseram-evil")),
        ("user_id", json!(p.b)),
        ("id", json!(Uuid::new_v4())),
        ("created_at", json!("2030-01-01T00:00:00Z")),
        ("updated_at", json!("2030-01-01T00:00:00Z")),
    ] {
        let err = p.patch(p.a, &anas["id"], json!({ col: v })).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "update {col}: {err}");
        if !["fly_app_name", "user_id"].contains(&col) {
            let body = seed_insert(p.a, &format!("with-{col}"), &json!({ col: v }));
            let err = p
                .api
                .request(Jwt::User(p.a), "POST", &insert_sql(&body), Some(&body))
                .await
                .unwrap_err();
            assert_eq!(sqlstate(&err), "42501", "insert {col}: {err}");
        }
    }
    let after = p.get(Jwt::User(p.a), &eq("id", anas["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(after[0]["generation"], json!(1), "nothing changed: {after:?}");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn anon_and_users_reach_nothing_of_the_controllers() {
    let p = project().await;
    let row = p.create(p.a, "site", json!({})).await;
    let id = row["id"].as_str().unwrap().to_string();
    let body = seed_insert(p.a, "anon", &json!({}));
    let patch = json!({"status": "stopped"});
    for (what, sql, body) in [
        ("read", select_sql("\"public\".\"fly_preview_apps\"", "true"), None),
        ("insert", insert_sql(&body), Some(&body)),
        ("update", update_sql(&eq("id", &id), &patch), Some(&patch)),
        ("delete", delete_sql(&eq("id", &id)), None),
    ] {
        let err = p.api.request(Jwt::Anon, "POST", &sql, body).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "anon {what}: {err}");
    }
    // the bookkeeping is not in an exposed schema, and not reachable when named
    for jwt in [Jwt::Anon, Jwt::User(p.a)] {
        for table in ["_sqlx_migrations", "fly_preview_controller_leader", "leader"] {
            let err = p
                .api
                .call(jwt, "GET", &select_sql(&format!("\"public\".\"{table}\""), "true"))
                .await
                .unwrap_err();
            assert_eq!(sqlstate(&err), "42P01", "{jwt:?} /rest/v1/{table}: {err}");
        }
        for table in ["_sqlx_migrations", "leader"] {
            let err = p
                .api
                .call(
                    jwt,
                    "GET",
                    &select_sql(&format!("\"fly_preview_controller\".\"{table}\""), "true"),
                )
                .await
                .unwrap_err();
            assert_eq!(sqlstate(&err), "42501", "{jwt:?} {table}: {err}");
        }
    }
    let facts: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT t, (SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(t)), \
         EXISTS (SELECT 1 FROM unnest(array['anon', 'authenticated']) r, unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p \
                 WHERE has_table_privilege(r, t, p) OR has_schema_privilege(r, 'fly_preview_controller', 'USAGE')) \
         FROM unnest(array['fly_preview_controller._sqlx_migrations', 'fly_preview_controller.leader']) t",
    )
    .fetch_all(&p.postgres).await.unwrap();
    for (table, rls, granted) in facts {
        assert!(rls && !granted, "{table}: rls {rls}, anon/authenticated privileges {granted}");
    }
    // exactly the privileges the contract needs on the web app's table
    let privs: Vec<(String, String)> = sqlx::query_as(
        "SELECT grantee::text, privilege_type::text FROM information_schema.role_table_grants \
         WHERE table_schema = 'public' AND table_name = 'fly_preview_apps' AND grantee IN ('anon', 'authenticated') ORDER BY 1, 2",
    )
    .fetch_all(&p.postgres).await.unwrap();
    let want = [("authenticated", "DELETE"), ("authenticated", "SELECT")];
    assert_eq!(
        privs,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec(),
        "table-wide grants"
    );
    drop(p.db);
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn supabase_security_lints_find_nothing() {
    let p = project().await;
    let lints = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, String, String, String)>(LINTS).fetch_all(&pool).await.unwrap()
    };
    let found = lints(p.postgres.clone()).await;
    // before the controller's role exists, its two tables have no policy at all: INFO, intended
    let info: Vec<&str> = found.iter().filter(|f| f.1 == "INFO").map(|f| f.2.as_str()).collect();
    assert_eq!(
        info,
        ["fly_preview_controller._sqlx_migrations", "fly_preview_controller.leader"],
        "{found:#?}"
    );
    assert!(found.iter().all(|f| f.1 == "INFO"), "{found:#?}");
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&p.postgres).await.unwrap();
    let found = lints(p.postgres.clone()).await;
    assert!(found.is_empty(), "with the controller's role: {found:#?}");
}
