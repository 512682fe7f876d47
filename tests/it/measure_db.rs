//! Measurements for BENCHMARKS.md (ignored by default; they print figures, and assert only
//! that the measured statements did their job):
//!   cargo test --test it measure_db -- --ignored --nocapture --test-threads=1
//! On the local Postgres of `DATABASE_URL`; wall time seen by the client (the statements run on
//! the same machine, so it bounds the database time from above).

use std::time::{Duration, Instant};

use crate::support::*;
use fly_preview_controller::store::{Admission, Store};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryScalar;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(300);

/// `n` due rows (new deploy requests) spread over users of 100 rows each, in one statement.
async fn due_rows(pool: &PgPool, n: i64) {
    sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = 0")
        .execute(pool)
        .await
        .unwrap();
    // rows whose derived names would collide are left out (the database refuses them)
    let sql = "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, github_repo_url) \
               SELECT DISTINCT ON (nm) u, p, nm, 'https://github.com/o/r' \
               FROM (SELECT md5('measure-user-' || (g / 100))::uuid AS u, 'p-' || g AS p \
                     FROM generate_series(1, $1::bigint) g) s, \
               LATERAL (SELECT 'roseram-' || left(md5(s.u::text || '-' || s.p), 8) AS nm) x \
               ORDER BY nm";
    sqlx::query(sql).bind(n).execute(pool).await.unwrap();
    sqlx::query("ANALYZE public.fly_preview_apps").execute(pool).await.unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A claim statement with the parameters every measurement here gives it: owner `measure`,
/// 16 rows, a 300 s lease, per-user cap 2, and (where the claim has it) no slot kept for
/// started work.
fn bound_claim<O>(sql: &str) -> QueryScalar<'static, Postgres, O, PgArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, PgRow>,
{
    let q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind("measure")
        .bind(16i64)
        .bind(300.0f64)
        .bind(Status::Initializing)
        .bind(2i64);
    if sql.contains("$6") { q.bind(16i64) } else { q }
}

/// Median of 21 claims of 16 rows (per-user cap 2), each given back after; `old` runs the
/// claim of commit 5bfd9a4 (a window over every due row) instead, for comparison.
async fn claim_time(pool: &PgPool, old: Option<&str>) -> Duration {
    let s = Store::new(pool.clone(), "measure");
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let ids: Vec<Uuid> = match old {
            None => s.claim(16, LEASE, 2).await.unwrap().into_iter().map(|r| r.id).collect(),
            Some(sql) => bound_claim(sql).fetch_all(pool).await.unwrap(),
        };
        times.push(t.elapsed());
        assert_eq!(ids.len(), 16);
        for id in ids {
            assert!(s.release(id).await.unwrap());
        }
    }
    median(times)
}

/// The claim before the bounded windows, from git history (None without git).
fn old_claim() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["show", "5bfd9a4:src/store/sql/claim.sql"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok().filter(|t| !t.is_empty())?;
    Some(expanded(&text))
}

fn expanded(claim: &str) -> String {
    claim.replace("{row_cols}", "id").replace(
        "{by_controller}",
        "(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL",
    )
}

/// The triggers as they were before migration 20261208000300 (no WHEN clauses): the claim's
/// cost with them, for comparison (recreated in the measurement's own database, after the
/// figures of the current ones).
const TRIGGERS_BEFORE: &str = "\
DROP TRIGGER fly_preview_apps_10_update ON public.fly_preview_apps;
CREATE TRIGGER fly_preview_apps_10_update BEFORE UPDATE ON public.fly_preview_apps
  FOR EACH ROW EXECUTE FUNCTION public.fly_preview_apps_on_update();
DROP TRIGGER fly_preview_apps_15_derived ON public.fly_preview_apps;
CREATE TRIGGER fly_preview_apps_15_derived BEFORE INSERT OR UPDATE ON public.fly_preview_apps
  FOR EACH ROW EXECUTE FUNCTION public.fly_preview_apps_derived();
DROP TRIGGER fly_preview_apps_90_notify_update ON public.fly_preview_apps;
DROP TRIGGER fly_preview_apps_90_notify ON public.fly_preview_apps;
CREATE TRIGGER fly_preview_apps_90_notify AFTER INSERT OR DELETE OR UPDATE ON public.fly_preview_apps
  FOR EACH ROW EXECUTE FUNCTION public.fly_preview_apps_notify();";

/// Median of 11 `Execution Time`s of EXPLAIN (ANALYZE, BUFFERS), each rolled back: the
/// database's own time for the claim, without the
/// client and the network; and the shared buffers the claim touched (its median run's).
/// The connection runs one untimed claim first (PL/pgSQL functions are compiled once per
/// session, as in the daemon's pooled connections).
async fn server_time(pool: &PgPool, claim: &str) -> (Duration, u64) {
    let mut conn = pool.acquire().await.unwrap();
    let mut runs = Vec::new();
    for i in 0..12 {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS) {claim}");
        let plan: Vec<String> = bound_claim(&explain).fetch_all(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
        let ms = plan.iter().find_map(|l| l.strip_prefix("Execution Time: "));
        let ms: f64 = ms.and_then(|m| m.trim_end_matches(" ms").parse().ok()).unwrap();
        let top = plan.iter().find_map(|l| l.trim().strip_prefix("Buffers: shared "));
        let hits = top.unwrap_or("").split_whitespace().filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            if matches!(k, "hit" | "read") { v.parse::<u64>().ok() } else { None }
        });
        let hits = hits.sum();
        if i > 0 {
            runs.push((Duration::from_secs_f64(ms / 1000.0), hits));
        }
    }
    runs.sort();
    runs[runs.len() / 2]
}

/// CPU seconds (user + system) the backend process `pid` has used (the database runs on this
/// machine); 10 ms resolution.
fn backend_cpu(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The backend's CPU time per claim (as the daemon runs it: a prepared statement on a pooled
/// connection), averaged over 300 claims, each rolled back: unlike the
/// execution time, the CPU the claim costs does not grow with the load of the machine.
async fn cpu_per_claim(pool: &PgPool, claim: &str) -> Duration {
    const N: u32 = 300;
    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 =
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.unwrap();
    let mut cpu = 0.0;
    for i in 0..=N {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let before = backend_cpu(pid);
        let ids: Vec<Uuid> = bound_claim(claim).fetch_all(&mut *tx).await.unwrap();
        if i > 0 {
            cpu += backend_cpu(pid) - before;
        }
        assert_eq!(ids.len(), 16);
        tx.rollback().await.unwrap();
    }
    Duration::from_secs_f64(cpu / f64::from(N))
}

async fn measure_claim(pool: PgPool, n: i64) {
    due_rows(&pool, n).await;
    let due: i64 = sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_apps")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("claim of 16 at {due} due rows: median {:?}", claim_time(&pool, None).await);
    let new = expanded(include_str!("../../src/store/sql/claim.sql"));
    let (t, hits) = server_time(&pool, &new).await;
    println!("  server-side execution: median {t:?}, {hits} shared buffers");
    let cpu = cpu_per_claim(&pool, &new).await;
    println!("  the backend's CPU per claim (300 claims): {cpu:?}");
    sqlx::raw_sql(TRIGGERS_BEFORE).execute(&pool).await.unwrap();
    let (t, hits) = server_time(&pool, &new).await;
    let cpu = cpu_per_claim(&pool, &new).await;
    println!(
        "  with the triggers before 20261208000300: median {t:?}, {hits} shared buffers; \
         CPU per claim {cpu:?}"
    );
    if let Some(old) = old_claim() {
        let t = claim_time(&pool, Some(&old)).await;
        println!("  the claim of 5bfd9a4 at {due} due rows: median {t:?}");
        let (t, hits) = server_time(&pool, &old).await;
        println!("  server-side execution: median {t:?}, {hits} shared buffers");
    }
}

/// The due rows as a converging fleet has them, so every window of the claim is full: of
/// every four, a new deploy, a booting machine's re-check, a retry of a deploy in progress,
/// a running preview's periodic verification.
async fn mixed(pool: &PgPool) {
    let sql = "UPDATE public.fly_preview_apps a \
               SET status = CASE x.n % 4 WHEN 0 THEN 'pending' WHEN 3 THEN 'running' \
                                 ELSE 'initializing' END, \
                   observed_generation = CASE WHEN x.n % 4 IN (1, 3) THEN a.generation \
                                              ELSE a.observed_generation END, \
                   attempts = CASE WHEN x.n % 4 = 2 THEN 1 ELSE 0 END \
               FROM (SELECT id, row_number() OVER (ORDER BY id) AS n \
                     FROM public.fly_preview_apps) x \
               WHERE a.id = x.id \
                 AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    sqlx::query(sql).execute(pool).await.unwrap();
    sqlx::query("VACUUM ANALYZE public.fly_preview_apps").execute(pool).await.unwrap();
}

#[sqlx::test]
#[ignore = "measurement for BENCHMARKS.md"]
async fn measure_db_claim_100k_mixed(pool: PgPool) {
    due_rows(&pool, 100_000).await;
    mixed(&pool).await;
    println!("claim of 16 at 100k mixed due rows: median {:?}", claim_time(&pool, None).await);
    let claim = expanded(include_str!("../../src/store/sql/claim.sql"));
    let (t, hits) = server_time(&pool, &claim).await;
    println!("  server-side execution: median {t:?}, {hits} shared buffers");
    let cpu = cpu_per_claim(&pool, &claim).await;
    println!("  the backend's CPU per claim (300 claims): {cpu:?}");
}

#[sqlx::test]
#[ignore = "measurement for BENCHMARKS.md"]
async fn measure_db_claim_1k(pool: PgPool) {
    measure_claim(pool, 1_000).await;
}

#[sqlx::test]
#[ignore = "measurement for BENCHMARKS.md"]
async fn measure_db_claim_20k(pool: PgPool) {
    measure_claim(pool, 20_000).await;
}

#[sqlx::test]
#[ignore = "measurement for BENCHMARKS.md"]
async fn measure_db_claim_100k(pool: PgPool) {
    measure_claim(pool, 100_000).await;
}

/// A user at the cap (100 rows), 10 of them holding slots: what one refusal costs the
/// database (admit's count, the fenced write, the re-check under the user's lock), and what
/// the parked rows cost afterwards (nothing is due).
#[sqlx::test]
#[ignore = "measurement for BENCHMARKS.md"]
async fn measure_db_refusal(pool: PgPool) {
    due_rows(&pool, 20_000).await;
    let s = Store::new(pool.clone(), "measure");
    let user: Uuid =
        sqlx::query_scalar("SELECT md5('measure-user-7')::uuid").fetch_one(&pool).await.unwrap();
    let hold = "UPDATE public.fly_preview_apps SET status = 'running', next_attempt_at = 'infinity' \
                WHERE id IN (SELECT id FROM public.fly_preview_apps WHERE user_id = $1 LIMIT 10) \
                AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    sqlx::query(hold).bind(user).execute(&pool).await.unwrap();
    let ids: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT id, generation FROM public.fly_preview_apps WHERE user_id = $1 AND status = 'pending'",
    )
    .bind(user)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut times = Vec::new();
    for (id, generation) in ids {
        let t = Instant::now();
        let a = s.admit(id, user, generation, 10).await.unwrap();
        let park = "UPDATE public.fly_preview_apps SET status = 'error', \
                    status_reason = 'QuotaExceeded', next_attempt_at = 'infinity' WHERE id = $1 \
                    AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
        sqlx::query(park).bind(id).execute(&pool).await.unwrap();
        let woke = s.wake_refused_if_free(user, 10).await.unwrap();
        times.push(t.elapsed());
        assert!(matches!(a, Admission::Refused { active: 10 }) && !woke);
    }
    let n = times.len();
    println!("one refusal (admit + parked write + re-check), {n} rows: median {:?}", median(times));
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.fly_preview_apps WHERE user_id = $1 AND next_attempt_at <= now()",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(due, 0, "parked rows are never claimed");
}
