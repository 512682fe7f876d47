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

/// Milliseconds of execution and calls of every statement run in database `db` so far, but for
/// the measurement's own (run as `supabase_admin`).
async fn exec_ms(admin: &PgPool, db: &str) -> (f64, i64) {
    let sql = "SELECT coalesce(sum(total_exec_time), 0)::float8, coalesce(sum(calls), 0)::int8 \
               FROM extensions.pg_stat_statements(true) s \
               JOIN pg_database d ON d.oid = s.dbid \
               WHERE d.datname = $1 AND s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user)";
    sqlx::query_as(sql).bind(db).fetch_one(admin).await.unwrap()
}

/// CPU seconds (user + system, from /proc/<pid>/stat) of every backend process serving
/// database `db` now, by pid (the cluster runs on this machine), but for the measurement's own.
async fn backend_cpu(admin: &PgPool, db: &str) -> HashMap<i32, f64> {
    let sql = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename <> current_user";
    let pids: Vec<i32> = sqlx::query_scalar(sql).bind(db).fetch_all(admin).await.unwrap();
    let ticks = |pid: i32| -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // the fields after the command (which is in parentheses and may hold spaces)
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let (user, system): (f64, f64) =
            (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
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

/// Rows of one user, as PostgREST inserts them (the projects `{tag}-0..n`).
async fn post_rows(api: &PostgRest, user: uuid::Uuid, tag: &str, n: usize) {
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            json!({"user_id": user, "project_id": format!("{tag}-{i}"), "status": "pending",
                   "github_repo_url": "https://github.com/o/r", "github_branch": "main"})
        })
        .collect();
    let body = Value::Array(rows);
    api.request(Jwt::User(user), "POST", &insert_sql(&body), Some(&body)).await.unwrap();
}

/// `n` more rows of `user`, inserted and refused in one transaction exactly as the daemon left
/// its refused rows (every controller column copied from one of them): parked, never due.
async fn add_parked(pool: &PgPool, user: uuid::Uuid, n: i64) {
    let insert = "INSERT INTO public.fly_preview_apps (user_id, project_id, github_repo_url, github_branch) \
                  SELECT $1, 'parked-' || g, 'https://github.com/o/r', 'main' FROM generate_series(1, $2) g";
    let park = "UPDATE public.fly_preview_apps a SET status = t.status, status_reason = t.status_reason, \
                error_message = t.error_message, status_detail = t.status_detail, \
                observed_generation = a.generation, attempts = t.attempts, \
                next_attempt_at = t.next_attempt_at, last_transition_at = t.last_transition_at \
                FROM (SELECT * FROM public.fly_preview_apps WHERE status_reason = 'QuotaExceeded' LIMIT 1) t \
                WHERE a.project_id::text LIKE 'parked-%' \
                  AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(insert).bind(user).bind(n).execute(&mut *tx).await.unwrap();
    let parked = sqlx::query(park).execute(&mut *tx).await.unwrap().rows_affected();
    tx.commit().await.unwrap();
    assert_eq!(parked, n as u64);
}

/// (execution ms, statements, backends' CPU s) over `secs` seconds, and the three statements
/// that took most of the execution time.
async fn idle_cost(admin: &PgPool, db: &str, secs: u64) -> (f64, i64, f64, Vec<String>) {
    let reset =
        "SELECT extensions.pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = $1";
    sqlx::query(reset).bind(db).execute(admin).await.unwrap();
    let ((t0, c0), cpu0) = (exec_ms(admin, db).await, backend_cpu(admin, db).await);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let ((t1, c1), cpu1) = (exec_ms(admin, db).await, backend_cpu(admin, db).await);
    let top = "SELECT format('%s calls, %s ms: %s', calls, round(total_exec_time::numeric, 1), \
               left(regexp_replace(query, '\\s+', ' ', 'g'), 60)) \
               FROM extensions.pg_stat_statements(true) s JOIN pg_database d ON d.oid = s.dbid \
               WHERE d.datname = $1 ORDER BY total_exec_time DESC LIMIT 3";
    let top: Vec<String> = sqlx::query_scalar(top).bind(db).fetch_all(admin).await.unwrap();
    (t1 - t0, c1 - c0, cpu_between(&cpu0, &cpu1), top)
}

/// The daemon's production intervals (POLL_INTERVAL 30 s, DRIFT_INTERVAL 15 s,
/// FULL_RESYNC_INTERVAL 10 min, stats every 30 s, LEASE_DURATION 8 s, the sync lane's
/// defaults: a sweep every 30 s when idle), quota 10.
fn production_intervals() -> Settings {
    let mut s = Settings::for_tests("personal");
    s.sync = Default::default();
    s.max_previews_per_user = 10;
    s.poll_interval = Duration::from_secs(30);
    s.drift_interval = Duration::from_secs(15);
    s.full_resync_interval = Duration::from_secs(600);
    s.stats_interval = Duration::from_secs(30);
    s.lease = Duration::from_secs(8);
    s
}

fn print_cost(what: &str, (ms, n, cpu, top): (f64, i64, f64, Vec<String>)) {
    println!("{what}: {ms:.1} ms of execution in {n} statements, backends' CPU {cpu:.2} s");
    top.iter().for_each(|t| println!("    {t}"));
}

/// One user with quota 10: 210 rows through PostgREST, 10 deployed and 200 refused by the
/// daemon (the cost per refusal, test intervals). Then a replica with the production intervals:
/// 60 s with those 200 parked; 19,800 more rows refused the same way (written as the daemon
/// writes them: refusing 20,000 rows one by one takes the daemon too long for a test), 20 s to
/// settle, 60 s with 20,000 parked.
#[tokio::test]
#[ignore = "measurement for BENCHMARKS.md (needs the Supabase cluster)"]
async fn measure_supabase_20k_refused_rows() {
    let db = SupaDb::create().await;
    let postgres = db.pool("postgres").await;
    store::migrate::run(&postgres).await.unwrap();
    sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = 0")
        .execute(&postgres)
        .await
        .unwrap();
    let admin = db.pool("supabase_admin").await;
    let api = PostgRest::connect(opts(PORT, "authenticator", &db.name)).await;
    let user: uuid::Uuid = USER_A.parse().unwrap();
    post_rows(&api, user, "p", 210).await;
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = 10;
    let h = Harness::with_settings(postgres.clone(), SimConfig::default(), s).await;
    let ((t0, c0), cpu0) = (exec_ms(&admin, &db.name).await, backend_cpu(&admin, &db.name).await);
    let r = h.start("a");
    let all = h.wait_all("converged", 600, |r| is_running(r) || refused(r)).await;
    let ((t1, c1), cpu1) = (exec_ms(&admin, &db.name).await, backend_cpu(&admin, &db.name).await);
    assert_eq!(all.iter().filter(|r| refused(r)).count(), 200);
    let cpu = cpu_between(&cpu0, &cpu1);
    println!(
        "210 rows (10 deployed, 200 refused): {:.1} ms of execution in {} statements, backends' \
         CPU {cpu:.2} s ({:.2} ms per row)",
        t1 - t0,
        c1 - c0,
        cpu * 1000.0 / 210.0
    );
    r.stop().await;
    let r = h.start_with("b", std::sync::Arc::new(production_intervals()));
    tokio::time::sleep(Duration::from_secs(20)).await;
    print_cost("60 s with 200 rows parked", idle_cost(&admin, &db.name, 60).await);
    add_parked(&postgres, user, 19_800).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    print_cost("60 s with 20,000 rows parked", idle_cost(&admin, &db.name, 60).await);
    // what autovacuum does after such a change (its first run may come minutes later)
    sqlx::query("VACUUM ANALYZE public.fly_preview_apps").execute(&postgres).await.unwrap();
    print_cost("60 s more, after VACUUM ANALYZE", idle_cost(&admin, &db.name, 60).await);
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.fly_preview_apps \
         WHERE status_reason = 'QuotaExceeded' AND next_attempt_at <= now()",
    )
    .fetch_one(&postgres)
    .await
    .unwrap();
    assert_eq!(due, 0, "parked rows are never due");
    r.stop().await;
}
