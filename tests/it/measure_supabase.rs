//! Database time of quota refusals on the Supabase-faithful cluster (pg_stat_statements is
//! preloaded there), for BENCHMARKS.md; ignored by default:
//!   cargo test --test it measure_supabase -- --ignored --nocapture --test-threads=1
//! One user at the row cap (100 rows, one PostgREST POST) with a quota of 10: the daemon
//! deploys 10 and refuses 90. Reported: the database's execution time of every statement in
//! the test database while that converges, and while the 90 refused rows then sit parked.
//! The same with 20,010 rows (the row cap raised for that user's database): 20,000 refused,
//! with the CPU time of the database's backend processes too (see [`backend_cpu`]).

use std::collections::HashMap;
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

/// CPU seconds (user + system, from /proc/<pid>/stat) of every backend process serving
/// database `db` now, by pid (the cluster runs on this machine).
async fn backend_cpu(admin: &PgPool, db: &str) -> HashMap<i32, f64> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(db)
        .fetch_all(admin)
        .await
        .unwrap();
    let ticks = |pid: i32| -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // the fields after the command (which is in parentheses and may hold spaces)
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let (user, system): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
        Some((user + system) / 100.0)
    };
    pids.into_iter().filter_map(|p| Some((p, ticks(p)?))).collect()
}

/// CPU seconds the backends spent between two samples (backends that started in between count
/// from zero; one that ended in between is missed, so this bounds the CPU from below).
fn cpu_between(a: &HashMap<i32, f64>, b: &HashMap<i32, f64>) -> f64 {
    b.iter().map(|(pid, t)| t - a.get(pid).copied().unwrap_or(0.0)).sum()
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

/// 20,010 rows of one user (one PostgREST POST; the row cap raised to that for the
/// measurement), quota 10: 10 deployed, 20,000 refused. Then 30 s parked.
#[tokio::test]
#[ignore = "measurement for BENCHMARKS.md (needs the Supabase cluster)"]
async fn measure_supabase_20k_refused_rows() {
    const ROWS: usize = 20_010;
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = $1")
        .bind(ROWS as i32)
        .execute(&postgres)
        .await
        .unwrap();
    let admin = db.pool("supabase_admin").await;
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let user: uuid::Uuid = USER_A.parse().unwrap();
    let rows: Vec<Value> = (0..ROWS)
        .map(|i| {
            json!({"user_id": user, "project_id": format!("p-{i}"), "status": "pending",
                   "github_repo_url": "https://github.com/o/r", "github_branch": "main"})
        })
        .collect();
    let body = Value::Array(rows);
    api.request(Jwt::User(user), "POST", &insert_sql(&body), Some(&body)).await.unwrap();
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = 10;
    let h = Harness::with_settings(postgres.clone(), SimConfig::default(), s).await;
    let ((t0, c0), cpu0, clock) = (exec_ms(&admin, &db.name).await, backend_cpu(&admin, &db.name).await, std::time::Instant::now());
    let r = h.start("a");
    let all = h.wait_all("converged", 3600, |r| is_running(r) || refused(r)).await;
    let ((t1, c1), cpu1, took) = (exec_ms(&admin, &db.name).await, backend_cpu(&admin, &db.name).await, clock.elapsed());
    assert_eq!(all.iter().filter(|r| refused(r)).count(), ROWS - 10);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let ((t2, c2), cpu2) = (exec_ms(&admin, &db.name).await, backend_cpu(&admin, &db.name).await);
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.fly_preview_apps WHERE next_attempt_at <= now()",
    )
    .fetch_one(&postgres)
    .await
    .unwrap();
    r.stop().await;
    println!(
        "converging ({ROWS} rows: 10 deployed, {} refused) in {took:.1?}: {:.1} ms of database \
         execution in {} statements ({:.3} ms per row), backends' CPU {:.2} s ({:.3} ms per row)",
        ROWS - 10,
        t1 - t0,
        c1 - c0,
        (t1 - t0) / ROWS as f64,
        cpu_between(&cpu0, &cpu1),
        cpu_between(&cpu0, &cpu1) * 1000.0 / ROWS as f64
    );
    println!(
        "then 30 s with {} rows parked ({due} due): {:.1} ms of execution in {} statements, \
         backends' CPU {:.2} s",
        ROWS - 10,
        t2 - t1,
        c2 - c1,
        cpu_between(&cpu1, &cpu2)
    );
}
