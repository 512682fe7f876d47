//! The database holds under a signed-in user's abuse, on the Supabase-faithful cluster with
//! requests as PostgREST sends them (`authenticator` → `authenticated` + JWT claims, its
//! 8 s statement timeout): names derived by the database (no squatting), bounded text, a row
//! cap per user that refuses a whole insert, and bulk cleanup of a user's own rows.

use std::time::Instant;

use crate::controller_role::{CONTROLLER_ROLE_SQL, ROLE};
use crate::support::harness::{Harness, is_running};
use crate::support::postgrest::{Jwt, PostgRest, delete_sql, eq, insert_sql, update_sql};
use crate::support::supabase::{PORT, SupaDb, opts};
use crate::support::*;
use fly_preview_controller::fly::Secret;
use fly_preview_controller::model::naming;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

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
    Project { db, postgres, api, a: USER_A.parse().unwrap(), b: USER_B.parse().unwrap() }
}

/// The seed web app's insert body, with `name` as the `fly_app_name` it sends.
fn body(user: Uuid, project: &str, name: &str) -> Value {
    json!({
        "user_id": user, "project_id": project, "fly_app_name": name,
        "preview_url": naming::preview_url(name), "status": "pending",
        "github_repo_url": "https://github.com/vercel/next-learn", "github_branch": "main",
    })
}

fn seed(user: Uuid, project: &str) -> Value {
    body(user, project, &naming::app_name("roseram", &user.to_string(), project))
}

impl Project {
    async fn post(&self, user: Uuid, body: &Value) -> Result<Vec<Value>, sqlx::Error> {
        self.api.request(Jwt::User(user), "POST", &insert_sql(body), Some(body)).await
    }

    async fn rows_of(&self, user: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_apps WHERE user_id = $1")
            .bind(user)
            .fetch_one(&self.postgres)
            .await
            .unwrap()
    }

    async fn set_cap(&self, cap: i32) {
        sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = $1")
            .bind(cap)
            .execute(&self.postgres)
            .await
            .unwrap();
    }
}

fn message(e: &sqlx::Error) -> String {
    e.as_database_error().map(|d| d.message().to_string()).unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn names_are_derived_by_the_database_and_cannot_be_squatted() {
    let p = project().await;
    // Ben sends Ana's future name for her project "site": he gets his own derived name
    let anas = naming::app_name("roseram", USER_A, "site");
    let bens = p.post(p.b, &body(p.b, "site", &anas)).await.unwrap();
    let ben_name = naming::app_name("roseram", USER_B, "site");
    assert_eq!(bens[0]["fly_app_name"], json!(ben_name));
    assert_eq!(bens[0]["preview_url"], json!(naming::preview_url(&ben_name)));
    // Ana's own insert (the seed's body) keeps working and gets her name
    let hers = p.post(p.a, &seed(p.a, "site")).await.unwrap();
    assert_eq!(hers[0]["fly_app_name"], json!(anas));
    // the same project again: the unique name refuses it
    let again = p.post(p.a, &seed(p.a, "site")).await.unwrap_err();
    assert_eq!(sqlstate(&again), "23505", "{again}");
    // a name held by another project's row (an install's older row) is refused clearly
    let future = naming::app_name("roseram", USER_A, "blog");
    sqlx::query("UPDATE public.fly_preview_apps SET fly_app_name = $1 WHERE fly_app_name = $2")
        .bind(&future)
        .bind(&ben_name)
        .execute(&p.postgres)
        .await
        .unwrap();
    let taken = p.post(p.a, &seed(p.a, "blog")).await.unwrap_err();
    assert_eq!(sqlstate(&taken), "23505");
    assert!(message(&taken).contains("already taken by another project"), "{taken}");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn user_text_is_bounded_and_every_row_its_owner_inserts_its_owner_deletes() {
    let p = project().await;
    let huge = "x".repeat(1 << 20);
    let long_branch = "b".repeat(2000);
    for (what, over) in [
        ("project_id", json!({"project_id": huge})),
        ("github_branch", json!({"github_branch": long_branch})),
        ("github_repo_url", json!({"github_repo_url": format!("https://github.com/o/{huge}")})),
    ] {
        let mut b = seed(p.a, "p");
        b.as_object_mut().unwrap().extend(over.as_object().unwrap().clone());
        let err = p.post(p.a, &b).await.unwrap_err();
        assert_eq!(sqlstate(&err), "23514", "{what}: {err}");
    }
    assert_eq!(p.rows_of(p.a).await, 0);
    // the largest row a user may write, with a 9,000-character name sent: deletable by its owner
    let mut b = body(p.a, &"p".repeat(256), &"n".repeat(9000));
    let at_bounds = json!({"github_branch": "b".repeat(1024), "revision": "a".repeat(64)});
    b.as_object_mut().unwrap().extend(at_bounds.as_object().unwrap().clone());
    let row = p.post(p.a, &b).await.unwrap();
    let id = row[0]["id"].as_str().unwrap().to_string();
    let gone = p.api.call(Jwt::User(p.a), "DELETE", &delete_sql(&eq("id", &id))).await.unwrap();
    assert_eq!(gone.len(), 1, "the owner deletes it");
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn the_row_cap_refuses_a_whole_insert_with_a_clear_error() {
    let p = project().await;
    let (cap,): (i32,) =
        sqlx::query_as("SELECT max_rows_per_user FROM fly_preview_controller.settings")
            .fetch_one(&p.postgres)
            .await
            .unwrap();
    assert_eq!(cap, 100, "the default");
    for n in [101, 100_000] {
        let many: Vec<Value> = (0..n).map(|i| seed(p.a, &format!("p-{i}"))).collect();
        let t = Instant::now();
        let err = p.post(p.a, &Value::Array(many)).await.unwrap_err();
        println!("a POST of {n} rows refused by the row cap in {:?}", t.elapsed());
        assert_eq!(sqlstate(&err), "P0001", "{err}");
        assert!(message(&err).contains("already has 100 previews"), "{err}");
        assert_eq!(p.rows_of(p.a).await, 0, "nothing partial");
    }
    let hundred: Vec<Value> = (0..100).map(|i| seed(p.a, &format!("p-{i}"))).collect();
    assert_eq!(p.post(p.a, &Value::Array(hundred)).await.unwrap().len(), 100);
    assert!(p.post(p.a, &seed(p.a, "one-more")).await.is_err(), "the 101st");
    assert_eq!(p.post(p.b, &seed(p.b, "ben")).await.unwrap().len(), 1, "per user");
    // only the service side changes the cap: the user can neither read nor write the settings
    let sql = update_sql("true", &json!({"max_rows_per_user": 0}))
        .replace("\"public\".\"fly_preview_apps\"", "\"fly_preview_controller\".\"settings\"");
    let body = json!({"max_rows_per_user": 0});
    let denied = p.api.request(Jwt::User(p.a), "PATCH", &sql, Some(&body)).await.unwrap_err();
    assert_eq!(sqlstate(&denied), "42501", "{denied}");
    p.set_cap(0).await;
    assert!(p.post(p.a, &seed(p.a, "one-more")).await.is_ok(), "0 = no cap");
}

/// Marks `n` of user `a`'s rows as running previews with a machine (the controller's write).
async fn mark_running(pool: &PgPool, user: Uuid, n: i64) {
    let sql = "UPDATE public.fly_preview_apps SET status = 'running', status_reason = 'Ready', \
         observed_generation = generation, fly_machine_id = 'm-' || left(id::text, 8), \
         fly_app_created = true, next_attempt_at = 'infinity' \
         WHERE id IN (SELECT id FROM public.fly_preview_apps WHERE user_id = $1 ORDER BY created_at LIMIT $2) \
           AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    sqlx::query(sql).bind(user).bind(n).execute(pool).await.unwrap();
    let parked = "UPDATE public.fly_preview_apps SET status = 'error', status_reason = 'QuotaExceeded', \
         next_attempt_at = 'infinity' WHERE user_id = $1 AND status = 'pending' \
           AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    sqlx::query(parked).bind(user).execute(pool).await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn a_users_bulk_stop_and_delete_of_5000_rows_stays_within_the_statement_timeout() {
    let p = project().await;
    p.set_cap(0).await;
    let rows: Vec<Value> = (0..5000).map(|i| seed(p.a, &format!("bulk-{i}"))).collect();
    let t = Instant::now();
    assert_eq!(p.post(p.a, &Value::Array(rows)).await.unwrap().len(), 5000);
    let post = t.elapsed();
    mark_running(&p.postgres, p.a, 10).await;
    let mine = format!("\"public\".\"fly_preview_apps\".\"user_id\" = '{}'", p.a);
    let stop = json!({"status": "stopped"});
    let t = Instant::now();
    let stopped =
        p.api.request(Jwt::User(p.a), "PATCH", &update_sql(&mine, &stop), Some(&stop)).await;
    let patch = t.elapsed();
    assert_eq!(stopped.unwrap().len(), 5000, "the 8 s statement timeout did not cut it");
    let t = Instant::now();
    let gone = p.api.call(Jwt::User(p.a), "DELETE", &delete_sql(&mine)).await.unwrap();
    let delete = t.elapsed();
    assert_eq!(gone.len(), 5000);
    println!("5000 own rows via PostgREST: POST {post:?}, PATCH stop {patch:?}, DELETE {delete:?}");
}

/// `"public"."fly_preview_apps"."project_id" = '<project>'`, as PostgREST filters.
fn project_is(project: &str) -> String {
    format!("\"public\".\"fly_preview_apps\".\"project_id\" = '{project}'")
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn a_slot_is_freed_only_when_its_machine_is_gone() {
    let p = project().await;
    for i in 0..5 {
        p.post(p.a, &seed(p.a, &format!("q-{i}"))).await.unwrap();
    }
    mark_running(&p.postgres, p.a, 2).await; // q-0, q-1 run; q-2..q-4 refused, parked
    let due = || async {
        let sql = "SELECT count(*) FROM public.fly_preview_apps WHERE user_id = $1 \
                   AND status_reason = 'QuotaExceeded' AND desired_state = 'running' \
                   AND next_attempt_at <= now()"; // woken refused rows (not a stop's own pass)
        sqlx::query_scalar::<_, i64>(sql).bind(p.a).fetch_one(&p.postgres).await.unwrap()
    };
    let stop = json!({"status": "stopped"});
    let patch = |project: &str| update_sql(&project_is(project), &stop);
    assert_eq!(due().await, 0, "refused rows are parked");
    p.api.request(Jwt::User(p.a), "PATCH", &patch("q-4"), Some(&stop)).await.unwrap();
    assert_eq!(due().await, 0, "a refused row held no slot");
    p.api.request(Jwt::User(p.a), "PATCH", &patch("q-0"), Some(&stop)).await.unwrap();
    assert_eq!(due().await, 0, "stopping: the machine is still alive");
    let done = "UPDATE public.fly_preview_apps SET status = 'stopped', fly_machine_id = NULL \
                WHERE project_id = 'q-0' \
                AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    sqlx::query(done).execute(&p.postgres).await.unwrap();
    assert_eq!(due().await, 1, "the teardown is done: the oldest refused row is woken");
    let q1 = p.api.call(Jwt::User(p.a), "DELETE", &delete_sql(&project_is("q-1"))).await.unwrap();
    assert_eq!(due().await, 1, "deleted: its tombstone holds the slot until the app is gone");
    sqlx::query("DELETE FROM fly_preview_controller.tombstones WHERE id = $1::uuid")
        .bind(q1[0]["id"].as_str().unwrap())
        .execute(&p.postgres)
        .await
        .unwrap();
    assert_eq!(due().await, 2, "the tombstone is done: the next refused row is woken");
}

fn refused(r: &PreviewRow) -> bool {
    r.status == Status::Error && r.status_reason == Some(Reason::QuotaExceeded)
}

/// The race of the issue, as the web app makes it: the user, at the quota, redeploys a running
/// preview and creates a new one in two concurrent requests, in waves; the daemon runs as the
/// least-privilege role. Live machines end at the quota, the redeployed previews keep their
/// slots, and the refused rows have no app.
#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn redeploy_and_insert_races_through_postgrest_end_within_the_quota() {
    const QUOTA: usize = 3;
    let p = project().await;
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&p.postgres).await.unwrap();
    let pool = store::connect(&Secret::new(p.db.url(PORT, ROLE)), 8).await.unwrap();
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = QUOTA as u32;
    let h = Harness::with_settings(pool, SimConfig::default(), s).await;
    let r = h.start("a");
    let mut ids = Vec::new();
    for i in 0..QUOTA {
        let row = p.post(p.a, &seed(p.a, &format!("full-{i}"))).await.unwrap();
        ids.push(row[0]["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    for id in &ids {
        h.wait_row(*id, "running", is_running).await;
    }
    let redeploy = json!({"status": "pending", "error_message": null});
    for wave in 0..3 {
        let by_id = eq("id", ids[wave % QUOTA]);
        let patch = update_sql(&by_id, &redeploy);
        let new_row = seed(p.a, &format!("wave-{wave}"));
        let (patched, created) = tokio::join!(
            p.api.request(Jwt::User(p.a), "PATCH", &patch, Some(&redeploy)),
            p.post(p.a, &new_row)
        );
        assert_eq!((patched.unwrap().len(), created.unwrap().len()), (1, 1));
    }
    let rows = h.wait_all("converged", 60, |r| is_running(r) || refused(r)).await;
    let (waiting, running): (Vec<_>, Vec<_>) = rows.iter().cloned().partition(refused);
    assert_eq!((running.len(), waiting.len()), (QUOTA, 3), "{rows:#?}");
    assert!(ids.iter().all(|id| running.iter().any(|r| r.id == *id)), "redeploys kept slots");
    let live: usize = rows
        .iter()
        .flat_map(|r| h.sim.machines(&r.fly_app_name))
        .filter(|m| m["state"] != "destroyed")
        .count();
    assert_eq!(live, QUOTA, "live machines");
    assert!(waiting.iter().all(|w| h.sim.machines(&w.fly_app_name).is_empty()));
    println!("after 3 waves of redeploy + insert at quota {QUOTA}: {live} live machines");
    r.stop().await;
}
