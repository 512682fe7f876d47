//! The daemon's periodic statements with rows parked (refused for the quota, never due): their
//! results (rows by status from the counts the triggers keep, the sync lane's candidates), and
//! that none of them reads the parked rows (each generic plan under EXPLAIN: no sequential
//! scan of the table, and as many buffers with 5,000 parked rows as with 50).

use crate::support::*;
use fly_preview_controller::model::naming;
use fly_preview_controller::store::Store;
use serde_json::Value;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";
const AHEAD: &str = "abcdef1";

/// As the controller writes (the request-translation trigger leaves such writes alone).
const BY_CONTROLLER: &str = "(SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";

async fn exec(pool: &PgPool, sql: String) -> u64 {
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap().rows_affected()
}

/// `n` more rows of USER_A, parked as the daemon parks a refused row (the row cap lifted).
async fn park(pool: &PgPool, tag: &str, n: i64) {
    exec(pool, "UPDATE fly_preview_controller.settings SET max_rows_per_user = 0".into()).await;
    let mut tx = pool.begin().await.unwrap();
    let insert = format!(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, github_repo_url, github_branch) \
         SELECT '{USER_A}', '{tag}-' || g, '{REPO}', 'main' FROM generate_series(1, {n}) g"
    );
    sqlx::query(sqlx::AssertSqlSafe(insert)).execute(&mut *tx).await.unwrap();
    let refuse = format!(
        "UPDATE public.fly_preview_apps SET status = 'error', status_reason = 'QuotaExceeded', \
         error_message = 'quota', observed_generation = generation, attempts = 1, \
         next_attempt_at = 'infinity' WHERE project_id::text LIKE '{tag}-%' AND {BY_CONTROLLER}"
    );
    let parked = sqlx::query(sqlx::AssertSqlSafe(refuse)).execute(&mut *tx).await.unwrap();
    assert_eq!(parked.rows_affected(), n as u64);
    tx.commit().await.unwrap();
}

/// A settled running preview of USER_B with machine `m-{project}` started, its `revision`
/// ahead of the served one or not.
async fn live(pool: &PgPool, project: &str, revision: Option<&str>) -> Uuid {
    let id = insert_row(pool, USER_B, project, Some(REPO), "main").await;
    let revision = revision.map_or("NULL".into(), |r| format!("'{r}'"));
    exec(
        pool,
        format!(
            "UPDATE public.fly_preview_apps SET status = 'running', status_reason = 'Ready', \
             observed_generation = generation, fly_machine_id = 'm-{project}', \
             machine_state = 'started', next_attempt_at = 'infinity', revision = {revision} \
             WHERE id = '{id}' AND {BY_CONTROLLER}"
        ),
    )
    .await;
    id
}

/// The named query's text as the store sends it.
fn query(name: &str) -> String {
    let path = format!("{}/src/store/sql/{name}.sql", env!("CARGO_MANIFEST_DIR"));
    let by_controller =
        "(SELECT pg_catalog.set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    std::fs::read_to_string(path).unwrap().replace("{by_controller}", by_controller)
}

/// The periodic statements, their parameter types and arguments (drift saw the three live
/// previews' machines stopped).
fn periodic() -> Vec<(&'static str, &'static str, String)> {
    let apps = ["l0", "l1", "l2"].map(|p| naming::app_name("roseram", USER_B, p)).join(",");
    let seen = format!("'{{{apps}}}', '{{m-l0,m-l1,m-l2}}', '{{stopped,stopped,stopped}}'");
    vec![
        ("stats", "(text, text[])", "('error', '{MachineExited}')".into()),
        (
            "mark_due",
            "(text[], text[], text[], text, text, text, text[], text, text[], text)",
            format!(
                "({seen}, 'running', 'stopped', 'error', '{{stopped}}', 'started', '{{MachineExited}}', 'ConfigRejected')"
            ),
        ),
        (
            "note_sleep",
            "(text[], text[], text[], text, text[], text, text, text)",
            format!("({seen}, 'running', '{{suspended,started}}', 'started', 'Ready', 'Idle')"),
        ),
        ("sync_candidates", "(bigint)", "(16)".into()),
        ("fleet/by_state", "", String::new()),
    ]
}

/// The generic plan of `name` under EXPLAIN (ANALYZE, BUFFERS), run twice and rolled back: its scans
/// ("Seq Scan on fly_preview_apps", …) and the shared buffers it touched.
async fn explain(pool: &PgPool, (name, types, args): &(&str, &str, String)) -> (Vec<String>, i64) {
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::raw_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await
        .unwrap();
    let prepare = format!("PREPARE s {types} AS {}", query(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *tx).await.unwrap();
    // the second run: the connection's caches (the catalog, a function's plans) are warm
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE s {args}");
    let mut plan = Value::Null;
    for _ in 0..2 {
        let sql = sqlx::AssertSqlSafe(explain.clone());
        plan = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
    }
    tx.rollback().await.unwrap();
    sqlx::raw_sql("DEALLOCATE s").execute(&mut *conn).await.unwrap();
    let top = &plan[0]["Plan"];
    let buffers =
        top["Shared Hit Blocks"].as_i64().unwrap() + top["Shared Read Blocks"].as_i64().unwrap();
    let mut scans = Vec::new();
    walk(top, &mut scans);
    (scans, buffers)
}

fn walk(node: &Value, scans: &mut Vec<String>) {
    if let Some(rel) = node["Relation Name"].as_str() {
        scans.push(format!("{} on {rel}", node["Node Type"].as_str().unwrap_or("?")));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        walk(child, scans);
    }
}

/// Each statement's buffers once the parked rows' own changes are folded and vacuumed (what
/// the first run after them and autovacuum do).
async fn buffers(pool: &PgPool) -> Vec<(Vec<String>, i64)> {
    for s in periodic() {
        explain(pool, &s).await;
    }
    Store::new(pool.clone(), "t").stats().await.unwrap();
    exec(pool, "VACUUM ANALYZE public.fly_preview_apps".into()).await;
    exec(pool, "VACUUM ANALYZE fly_preview_controller.status_deltas".into()).await;
    let mut out = Vec::new();
    for s in periodic() {
        out.push(explain(pool, &s).await);
    }
    out
}

#[sqlx::test]
async fn periodic_statements_read_no_parked_row(pool: PgPool) {
    for (i, revision) in [Some(AHEAD), None, None].into_iter().enumerate() {
        live(&pool, &format!("l{i}"), revision).await;
    }
    park(&pool, "few", 50).await;
    let few = buffers(&pool).await;
    park(&pool, "many", 4_950).await;
    let many = buffers(&pool).await;
    for ((name, _, _), ((_, b50), (scans, b5k))) in periodic().iter().zip(few.iter().zip(&many)) {
        assert!(
            !scans.iter().any(|s| s == "Seq Scan on fly_preview_apps"),
            "{name} scans the table at 5,000 parked rows: {scans:?}"
        );
        assert!(*b5k <= b50 + 10, "{name}: {b50} buffers at 50 parked rows, {b5k} at 5,000");
    }
}

/// Rows by status as `stats` reports them (statuses without rows left out).
async fn reported(s: &Store) -> Vec<(Status, i64)> {
    let stats = s.stats().await.unwrap();
    stats.by_status.into_iter().filter(|(_, n)| *n != 0).collect()
}

/// Rows by status, counted.
async fn counted(pool: &PgPool) -> Vec<(Status, i64)> {
    let sql = "SELECT status, count(*) FROM public.fly_preview_apps GROUP BY 1";
    let mut rows: Vec<(Status, i64)> = sqlx::query_as(sql).fetch_all(pool).await.unwrap();
    let order = |s: &Status| Status::ALL.iter().position(|t| t == s);
    rows.sort_by_key(|(s, _)| order(s));
    rows
}

#[sqlx::test]
async fn rows_by_status_are_counted_through_every_kind_of_write(pool: PgPool) {
    let s = Store::new(pool.clone(), "t");
    assert_eq!(reported(&s).await, vec![]);
    let ids = insert_rows(&pool, 5).await;
    park(&pool, "parked", 30).await;
    let running = live(&pool, "l0", None).await;
    let stop = "UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = ";
    let steps = [
        format!("{stop}'{running}'"),
        format!("{stop}'{}'", ids[0]),
        format!("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = '{running}' AND {BY_CONTROLLER}"),
        format!("UPDATE public.fly_preview_apps SET status = 'pending' WHERE id = '{running}'"),
        format!("DELETE FROM public.fly_preview_apps WHERE id = '{}'", ids[1]),
        "DELETE FROM public.fly_preview_apps WHERE project_id::text LIKE 'parked-1%'".into(),
        "UPDATE public.fly_preview_apps SET github_branch = 'dev' WHERE project_id::text LIKE 'parked-2%'".into(),
    ];
    assert_eq!(reported(&s).await, counted(&pool).await, "after the inserts");
    for step in steps {
        exec(&pool, step.clone()).await;
        assert_eq!(reported(&s).await, counted(&pool).await, "after {step}");
    }
    exec(&pool, "TRUNCATE public.fly_preview_apps CASCADE".into()).await;
    assert_eq!(reported(&s).await, vec![], "after TRUNCATE");
    insert_rows(&pool, 2).await;
    assert_eq!(reported(&s).await, vec![(Status::Pending, 2)]);
}

#[sqlx::test]
async fn a_reader_beside_a_folding_one_reads_the_same_counts(pool: PgPool) {
    let s = Store::new(pool.clone(), "t");
    insert_rows(&pool, 3).await;
    let mut folding = pool.begin().await.unwrap();
    let sql = "SELECT count(*) FROM fly_preview_controller.status_counts()";
    let _: i64 = sqlx::query_scalar(sql).fetch_one(&mut *folding).await.unwrap();
    park(&pool, "parked", 4).await;
    assert_eq!(reported(&s).await, vec![(Status::Pending, 3), (Status::Error, 4)]);
    folding.commit().await.unwrap();
    assert_eq!(reported(&s).await, vec![(Status::Pending, 3), (Status::Error, 4)]);
    assert_eq!(reported(&s).await, counted(&pool).await);
}

#[sqlx::test]
async fn sync_candidates_are_running_started_rows_whose_revision_is_ahead(pool: PgPool) {
    let first = live(&pool, "a", Some(AHEAD)).await;
    let second = live(&pool, "b", Some(AHEAD)).await;
    live(&pool, "none", None).await;
    let served = live(&pool, "served", Some(AHEAD)).await;
    let asleep = live(&pool, "asleep", Some(AHEAD)).await;
    let failed = live(&pool, "failed", Some(AHEAD)).await;
    park(&pool, "parked", 20).await;
    exec(&pool, format!("UPDATE public.fly_preview_apps SET revision = '{AHEAD}' WHERE project_id::text LIKE 'parked-%'")).await;
    let set = |id: Uuid, what: &str| {
        format!("UPDATE public.fly_preview_apps SET {what} WHERE id = '{id}' AND {BY_CONTROLLER}")
    };
    exec(&pool, set(served, &format!("served_revision = '{AHEAD}'"))).await;
    exec(&pool, set(asleep, "machine_state = 'suspended'")).await;
    exec(&pool, set(failed, "status = 'error', status_reason = 'FlyApiError'")).await;
    let s = Store::new(pool.clone(), "t");
    assert_eq!(s.sync_candidates(16).await.unwrap(), vec![first, second], "oldest first");
    assert_eq!(s.sync_candidates(1).await.unwrap(), vec![first]);
    let leased = "lease_owner = 'other', lease_expires_at = now() + interval '1 minute'";
    exec(&pool, set(first, leased)).await;
    assert_eq!(s.sync_candidates(16).await.unwrap(), vec![second], "a leased row is its holder's");
}
