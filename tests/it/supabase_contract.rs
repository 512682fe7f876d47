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
pub(crate) struct Project {
    /// Dropped (with the database) when the test ends.
    _db: SupaDb,
    pub(crate) postgres: PgPool,
    pub(crate) api: PostgRest,
    pub(crate) a: Uuid,
    pub(crate) b: Uuid,
}

pub(crate) async fn project() -> Project {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let (a, b) = (USER_A.parse().unwrap(), USER_B.parse().unwrap());
    for (id, email) in [(a, "ana@example.com"), (b, "ben@example.com")] {
        sqlx::query("INSERT INTO auth.users (instance_id, id, aud, role, email) VALUES ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2)")
            .bind(id).bind(email).execute(&postgres).await.unwrap();
    }
    Project { _db: db, postgres, api, a, b }
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
async fn the_web_app_creates_and_reads_its_previews() {
    let p = project().await;
    let name = naming::app_name("roseram", USER_A, "site");
    // create with the seed's column list, including preview_url
    let row = p.create(p.a, "site", json!({})).await;
    let created = [
        ("preview_url", json!(naming::preview_url(&name))),
        ("status", json!("pending")),
        ("desired_state", json!("running")),
        ("generation", json!(1)),
        ("error_message", Value::Null),
    ];
    assert_fields(&row, &created);
    // also with error_message null, and with forged derived values: replaced by the truth
    p.create(p.a, "blog", json!({"error_message": null})).await;
    let forged = json!({"preview_url": "https://evil.example", "status": "running", "error_message": "forged"});
    let forged = p.create(p.a, "shop", forged).await;
    let shop = naming::app_name("roseram", USER_A, "shop");
    let truth = [
        ("preview_url", json!(naming::preview_url(&shop))),
        ("status", json!("pending")),
        ("error_message", Value::Null),
    ];
    assert_fields(&forged, &truth);
    // read own
    assert_eq!(p.get(Jwt::User(p.a), "true").await.unwrap().len(), 3);
    let id = row["id"].as_str().unwrap();
    assert_eq!(p.get(Jwt::User(p.a), &eq("id", id)).await.unwrap()[0]["fly_app_name"], json!(name));
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_web_app_steers_and_deletes_its_previews() {
    let p = project().await;
    let row = p.create(p.a, "site", json!({})).await;
    let url = row["preview_url"].clone();
    let id = row["id"].clone();
    // status = 'stopped': a teardown request; the status stays truthful until the app is gone
    let r = p.patch(p.a, &id, json!({"status": "stopped"})).await.unwrap();
    let stop = [
        ("desired_state", json!("stopped")),
        ("status", json!("pending")),
        ("generation", json!(2)),
        ("status_reason", json!("TeardownRequested")),
    ];
    assert_fields(&r[0], &stop);
    // status = 'pending' (and clearing error_message): a redeploy request
    let r = p.patch(p.a, &id, json!({"status": "pending", "error_message": null})).await.unwrap();
    let redeploy = [
        ("desired_state", json!("running")),
        ("status", json!("pending")),
        ("generation", json!(3)),
        ("error_message", Value::Null),
    ];
    assert_fields(&r[0], &redeploy);
    // change branch: a spec change, the same row, a new generation
    let r = p.patch(p.a, &id, json!({"github_branch": "dev"})).await.unwrap();
    let branch = [
        ("github_branch", json!("dev")),
        ("generation", json!(4)),
        ("status_reason", json!("SpecChanged")),
        ("preview_url", url),
    ];
    assert_fields(&r[0], &branch);
    // delete own
    let by_id = eq("id", id.as_str().unwrap());
    let gone = p.api.call(Jwt::User(p.a), "DELETE", &delete_sql(&by_id)).await.unwrap();
    assert_eq!(gone.len(), 1);
    assert!(p.get(Jwt::User(p.a), &by_id).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn users_cannot_reach_each_others_previews() {
    let p = project().await;
    let bens = p.create(p.b, "ben-site", json!({})).await;
    let ben_id = bens["id"].as_str().unwrap().to_string();
    // Ana cannot see, change or delete Ben's row (0 rows), nor create one for him
    assert!(p.get(Jwt::User(p.a), &eq("id", &ben_id)).await.unwrap().is_empty());
    assert!(p.patch(p.a, &bens["id"], json!({"status": "stopped"})).await.unwrap().is_empty());
    let delete = delete_sql(&eq("id", &ben_id));
    assert!(p.api.call(Jwt::User(p.a), "DELETE", &delete).await.unwrap().is_empty());
    let body = seed_insert(p.b, "forged", &json!({}));
    let insert = insert_sql(&body);
    let err = p.api.request(Jwt::User(p.a), "POST", &insert, Some(&body)).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err}");
    let ben_sees = p.get(Jwt::User(p.b), &eq("id", &ben_id)).await.unwrap();
    assert_eq!(ben_sees[0]["generation"], json!(1), "Ben's row is untouched");
}

/// Every column the controller owns, with a plausible value.
fn controller_columns(other_user: Uuid) -> Vec<(&'static str, Value)> {
    let t = json!("2030-01-01T00:00:00Z");
    vec![
        ("status_reason", json!("Ready")),
        ("attempts", json!(0)),
        ("generation", json!(9)),
        ("observed_generation", json!(9)),
        ("lease_owner", json!("me")),
        ("lease_expires_at", t.clone()),
        ("fly_machine_id", json!("m1")),
        ("machine_state", json!("started")),
        ("next_attempt_at", t.clone()),
        ("last_transition_at", t.clone()),
        ("requested_at", t.clone()),
        ("fly_app_name", json!("roseram-evil")),
        ("user_id", json!(other_user)),
        ("id", json!(Uuid::new_v4())),
        ("created_at", t.clone()),
        ("updated_at", t),
    ]
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn writes_to_controller_columns_are_refused() {
    let p = project().await;
    let anas = p.create(p.a, "ana-site", json!({})).await;
    for (col, v) in controller_columns(p.b) {
        let err = p.patch(p.a, &anas["id"], json!({ col: v })).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "update {col}: {err}");
        if ["fly_app_name", "user_id"].contains(&col) {
            continue; // the insert's own columns
        }
        let body = seed_insert(p.a, &format!("with-{col}"), &json!({ col: v }));
        let insert = insert_sql(&body);
        let err = p.api.request(Jwt::User(p.a), "POST", &insert, Some(&body)).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "insert {col}: {err}");
    }
    let after = p.get(Jwt::User(p.a), &eq("id", anas["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(after[0]["generation"], json!(1), "nothing changed: {after:?}");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn anon_can_read_or_change_nothing() {
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
}

/// GET /rest/v1/<table> as PostgREST would run it for `jwt`: the SQLSTATE it fails with.
async fn refused(p: &Project, jwt: Jwt, schema: &str, table: &str) -> String {
    let sql = select_sql(&format!("\"{schema}\".\"{table}\""), "true");
    sqlstate(&p.api.call(jwt, "GET", &sql).await.unwrap_err())
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_controllers_bookkeeping_is_unreachable_through_the_api() {
    let p = project().await;
    for jwt in [Jwt::Anon, Jwt::User(p.a)] {
        // not in an exposed schema: PostgREST does not know these tables
        for table in ["_sqlx_migrations", "fly_preview_controller_leader", "leader", "tombstones"] {
            assert_eq!(refused(&p, jwt, "public", table).await, "42P01", "{jwt:?} {table}");
        }
        // and not reachable when named
        for table in ["_sqlx_migrations", "leader", "tombstones"] {
            let state = refused(&p, jwt, "fly_preview_controller", table).await;
            assert_eq!(state, "42501", "{jwt:?} {table}");
        }
    }
    let facts: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT t, (SELECT relrowsecurity FROM pg_class WHERE oid = to_regclass(t)), \
         EXISTS (SELECT 1 FROM unnest(array['anon', 'authenticated']) r, \
                 unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p \
                 WHERE has_table_privilege(r, t, p) OR has_schema_privilege(r, 'fly_preview_controller', 'USAGE')) \
         FROM unnest(array['fly_preview_controller._sqlx_migrations', 'fly_preview_controller.leader', \
                           'fly_preview_controller.tombstones']) t",
    )
    .fetch_all(&p.postgres)
    .await
    .unwrap();
    for (table, rls, granted) in facts {
        assert!(rls && !granted, "{table}: rls {rls}, anon/authenticated privileges {granted}");
    }
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn anon_and_users_hold_exactly_the_contracts_privileges() {
    let p = project().await;
    let grants = "SELECT grantee::text || ' ' || privilege_type::text FROM information_schema.role_table_grants \
         WHERE table_schema = 'public' AND table_name = 'fly_preview_apps' AND grantee IN ('anon', 'authenticated') ORDER BY 1";
    let table: Vec<String> = sqlx::query_scalar(grants).fetch_all(&p.postgres).await.unwrap();
    assert_eq!(
        table,
        ["authenticated DELETE", "authenticated SELECT"],
        "no TRUNCATE, REFERENCES, TRIGGER"
    );
    let columns = "SELECT privilege_type::text || ' ' || string_agg(column_name::text, ',' ORDER BY column_name) \
         FROM information_schema.column_privileges WHERE table_schema = 'public' AND table_name = 'fly_preview_apps' \
         AND grantee = 'authenticated' AND privilege_type IN ('INSERT', 'UPDATE') GROUP BY privilege_type ORDER BY 1";
    let columns: Vec<String> = sqlx::query_scalar(columns).fetch_all(&p.postgres).await.unwrap();
    assert_eq!(
        columns,
        [
            "INSERT desired_state,error_message,fly_app_name,github_branch,github_repo_url,opened_at,preview_url,project_id,revision,root_directory,status,user_id",
            "UPDATE desired_state,error_message,github_branch,github_repo_url,opened_at,preview_url,revision,root_directory,status",
        ]
    );
    // functions: none for anon (no /rest/v1/rpc), only the triggers' helper for users
    let functions = "SELECT r || ' ' || p.oid::regprocedure::text FROM pg_proc p, unnest(array['anon', 'authenticated']) r \
         WHERE p.pronamespace IN ('public'::regnamespace, 'fly_preview_controller'::regnamespace) \
         AND has_function_privilege(r, p.oid, 'EXECUTE') ORDER BY 1";
    let functions: Vec<String> =
        sqlx::query_scalar(functions).fetch_all(&p.postgres).await.unwrap();
    assert_eq!(functions, ["authenticated fly_preview_apps_by_controller()"]);
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn supabase_security_lints_find_nothing() {
    let p = project().await;
    let lints = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, String, String, String)>(LINTS).fetch_all(&pool).await.unwrap()
    };
    let found = lints(p.postgres.clone()).await;
    // before the controller's role exists, its tables have no policy at all: INFO, intended
    let info: Vec<&str> = found.iter().filter(|f| f.1 == "INFO").map(|f| f.2.as_str()).collect();
    assert_eq!(
        info,
        [
            "fly_preview_controller._sqlx_migrations",
            "fly_preview_controller.env_secrets",
            "fly_preview_controller.leader",
            "fly_preview_controller.settings",
            "fly_preview_controller.status_deltas",
            "fly_preview_controller.status_totals",
            "fly_preview_controller.tombstones"
        ],
        "{found:#?}"
    );
    assert!(found.iter().all(|f| f.1 == "INFO"), "{found:#?}");
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&p.postgres).await.unwrap();
    let found = lints(p.postgres.clone()).await;
    assert!(found.is_empty(), "with the controller's role: {found:#?}");
}
