//! Database time of quota refusals on the Supabase-faithful cluster (pg_stat_statements is
//! preloaded there), for BENCHMARKS.md; ignored by default:
//!   cargo test --test it measure_supabase -- --ignored --nocapture
//! One user at the row cap (100 rows, one PostgREST POST) with a quota of 10: the daemon
//! deploys 10 and refuses 90. Reported: the database's execution time of every statement in
//! the test database while that converges, and while the 90 refused rows then sit parked.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::postgrest::{Jwt, PostgRest, insert_sql};
use crate::support::supabase::{PORT, SupaDb, opts};
use crate::support::*;
use fly_preview_controller::model::naming;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Milliseconds of execution and calls of every statement run in database `db` so far.
async fn exec_ms(admin: &PgPool, db: &str) -> (f64, i64) {
    let sql = "SELECT coalesce(sum(total_exec_time), 0)::float8, coalesce(sum(calls), 0)::int8 \
               FROM extensions.pg_stat_statements(true) s \
               JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1";
    sqlx::query_as(sql).bind(db).fetch_one(admin).await.unwrap()
}

fn refused(r: &PreviewRow) -> bool {
    r.status == Status::Error && r.status_reason == Some(Reason::QuotaExceeded)
}

#[tokio::test]
#[ignore = "measurement for BENCHMARKS.md (needs the Supabase cluster)"]
async fn measure_supabase_refusal_time() {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    let admin = db.pool("supabase_admin").await;
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let user: uuid::Uuid = USER_A.parse().unwrap();
    let rows: Vec<Value> = (0..100)
        .map(|i| {
            let project = format!("p-{i}");
            let name = naming::app_name("roseram", USER_A, &project);
            json!({"user_id": user, "project_id": project, "fly_app_name": name,
                   "status": "pending", "github_repo_url": "https://github.com/o/r",
                   "github_branch": "main"})
        })
        .collect();
    let body = Value::Array(rows);
    api.request(Jwt::User(user), "POST", &insert_sql(&body), Some(&body)).await.unwrap();
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = 10;
    let h = Harness::with_settings(postgres.clone(), SimConfig::default(), s).await;
    let (t0, c0) = exec_ms(&admin, &db.name).await;
    let r = h.start("a");
    let all = h.wait_all("converged", 120, |r| is_running(r) || refused(r)).await;
    let (t1, c1) = exec_ms(&admin, &db.name).await;
    assert_eq!(all.iter().filter(|r| refused(r)).count(), 90);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (t2, c2) = exec_ms(&admin, &db.name).await;
    r.stop().await;
    println!(
        "converging (10 deployed, 90 refused): {:.1} ms of database execution in {} statements \
         ({:.2} ms per row); then 10 s with 90 rows parked: {:.1} ms in {} statements",
        t1 - t0,
        c1 - c0,
        (t1 - t0) / 100.0,
        t2 - t1,
        c2 - c1
    );
}
