//! The web app's write of `opened_at` exactly as PostgREST makes it (`authenticated` + JWT
//! claims, RLS) on the Supabase-faithful cluster: the owner's open is accepted, is no spec
//! change and wakes a running preview; another user's open reaches nothing; anon's is refused.

use crate::supabase_contract::project;
use crate::support::postgrest::{Jwt, eq, insert_sql, update_sql};
use crate::support::*;
use fly_preview_controller::model::naming;
use serde_json::{Value, json};
use uuid::Uuid;

fn seed_insert(user: Uuid, project: &str) -> Value {
    let name = naming::app_name("roseram", &user.to_string(), project);
    json!({
        "user_id": user, "project_id": project, "fly_app_name": name,
        "preview_url": naming::preview_url(&name), "status": "pending",
        "github_repo_url": "https://github.com/vercel/next-learn", "github_branch": "main",
    })
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_owner_may_write_opened_at_and_no_one_else() {
    let p = project().await;
    let body = seed_insert(p.a, "site");
    let created = p.api.request(Jwt::User(p.a), "POST", &insert_sql(&body), Some(&body)).await;
    let id = created.unwrap()[0]["id"].as_str().unwrap().to_string();
    // The controller settled it running (as the table's owner here: the same trigger rules).
    let settle = "SELECT set_config('fly_preview.controller', 'on', true); \
                  UPDATE public.fly_preview_apps SET status = 'running', status_reason = 'Idle', \
                  observed_generation = generation, fly_machine_id = 'm1', \
                  machine_state = 'suspended', next_attempt_at = 'infinity'";
    sqlx::raw_sql(settle).execute(&p.postgres).await.unwrap();

    let open = json!({"opened_at": "2026-12-06T09:00:00Z"});
    let sql = update_sql(&eq("id", &id), &open);
    let ben = p.api.request(Jwt::User(p.b), "PATCH", &sql, Some(&open)).await.unwrap();
    assert!(ben.is_empty(), "another user's open reaches no row: {ben:?}");
    let err = p.api.request(Jwt::Anon, "PATCH", &sql, Some(&open)).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "anon: {err}");

    let ana = p.api.request(Jwt::User(p.a), "PATCH", &sql, Some(&open)).await.unwrap();
    assert_eq!(ana.len(), 1, "{ana:?}");
    let row = &ana[0];
    assert_eq!(row["opened_at"], json!("2026-12-06T09:00:00+00:00"));
    assert_eq!(row["generation"], json!(1), "not a spec change");
    assert_eq!(row["status"], json!("running"));
    assert_eq!(row["status_reason"], json!("WakeRequested"));
}
