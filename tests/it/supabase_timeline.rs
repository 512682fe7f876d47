//! The timeline through Supabase's API, on the Supabase-faithful cluster: requests exactly as
//! PostgREST makes them (support/postgrest.rs). A signed-in user reads the events of their own
//! previews only; no API role writes events; anon cannot read them at all.

use crate::support::postgrest::{Jwt, PostgRest, insert_sql, select_sql};
use crate::support::supabase::{PORT, SupaDb, opts};
use crate::support::*;
use fly_preview_controller::model::naming;
use fly_preview_controller::store;
use serde_json::json;
use uuid::Uuid;

const EVENTS: &str = "\"public\".\"fly_preview_events\"";

/// A write to the events table in PostgREST's shape (`POST`/`PATCH`/`DELETE /rest/v1/…`).
fn write_sql(verb: &str) -> String {
    let source = match verb {
        "POST" => format!(
            "INSERT INTO {EVENTS}(\"preview_id\", \"user_id\", \"kind\") SELECT \"pgrst_body\".\"preview_id\", \
             \"pgrst_body\".\"user_id\", \"pgrst_body\".\"kind\" FROM (SELECT $1::json AS json_data) pgrst_payload, \
             LATERAL (SELECT * FROM json_to_record(pgrst_payload.json_data) AS _(\"preview_id\" uuid, \"user_id\" uuid, \"kind\" text)) pgrst_body \
             RETURNING {EVENTS}.*"
        ),
        "PATCH" => format!(
            "UPDATE {EVENTS} SET \"kind\" = \"pgrst_body\".\"kind\" FROM (SELECT $1::json AS json_data) pgrst_payload, \
             LATERAL (SELECT * FROM json_to_record(pgrst_payload.json_data) AS _(\"kind\" text)) pgrst_body \
             WHERE true RETURNING {EVENTS}.*"
        ),
        _ => format!("DELETE FROM {EVENTS} WHERE $1::json IS NOT NULL RETURNING {EVENTS}.*"),
    };
    format!(
        "WITH pgrst_source AS ({source}) SELECT pg_catalog.count(_postgrest_t) AS page_total, \
         coalesce(json_agg(_postgrest_t), '[]')::text AS body FROM (SELECT * FROM pgrst_source) _postgrest_t"
    )
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn users_read_their_own_timeline_and_no_api_role_writes_it() {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let (a, b): (Uuid, Uuid) = (USER_A.parse().unwrap(), USER_B.parse().unwrap());
    for (id, email) in [(a, "ana@example.com"), (b, "ben@example.com")] {
        sqlx::query("INSERT INTO auth.users (instance_id, id, aud, role, email) VALUES ('00000000-0000-0000-0000-000000000000', $1, 'authenticated', 'authenticated', $2)")
            .bind(id).bind(email).execute(&postgres).await.unwrap();
    }
    let name = naming::app_name("roseram", USER_A, "tl");
    let body = json!({"user_id": a, "project_id": "tl", "fly_app_name": name, "status": "pending",
                      "github_repo_url": "https://github.com/acme/site", "github_branch": "main"});
    let rows = api.request(Jwt::User(a), "POST", &insert_sql(&body), Some(&body)).await.unwrap();
    let preview = rows[0]["id"].clone();

    let own = api.call(Jwt::User(a), "GET", &select_sql(EVENTS, "true")).await.unwrap();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!((&own[0]["kind"], &own[0]["preview_id"]), (&json!("queued"), &preview));
    let other = api.call(Jwt::User(b), "GET", &select_sql(EVENTS, "true")).await.unwrap();
    assert!(other.is_empty(), "another user's timeline is invisible: {other:?}");
    let anon = api.call(Jwt::Anon, "GET", &select_sql(EVENTS, "true")).await.unwrap_err();
    assert_eq!(sqlstate(&anon), "42501", "anon: {anon}");

    let forged = json!({"preview_id": preview, "user_id": a, "kind": "running"});
    for jwt in [Jwt::User(a), Jwt::Anon] {
        for verb in ["POST", "PATCH", "DELETE"] {
            let err = api.request(jwt, verb, &write_sql(verb), Some(&forged)).await.unwrap_err();
            assert_eq!(sqlstate(&err), "42501", "{jwt:?} {verb}: {err}");
        }
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_events")
        .fetch_one(&postgres)
        .await
        .unwrap();
    assert_eq!(n, 1, "nothing written through the API");
}
