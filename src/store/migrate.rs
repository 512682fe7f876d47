//! Applying the embedded migrations; a dry run that only reads ([`dry_run`]); and a rehearsal
//! that applies them inside a transaction, reports the difference in the schema and the
//! backfilled rows, and rolls everything back ([`rehearse`]).

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migration;
use sqlx::postgres::{PgConnection, PgPool};

use super::{MIGRATOR, StoreError};

mod dry;
pub use dry::{dry_run, tables_changed};

/// Where the migration bookkeeping lives (set in `sqlx.toml`, which `sqlx::migrate!()` and
/// `#[sqlx::test]` read): a schema PostgREST does not expose.
pub const MIGRATIONS_TABLE: &str = "fly_preview_controller._sqlx_migrations";
/// Where releases before the Supabase seam (migration 20261127000100) kept it.
pub const LEGACY_MIGRATIONS_TABLE: &str = "public._sqlx_migrations";

/// Moves `public._sqlx_migrations` of an existing install into the controller's schema, with
/// its history, so the migrator finds it there. Runs on the caller's connection (inside the
/// rehearsal's transaction too); serialized by a transaction-level advisory lock.
const MOVE_LEGACY: &str = "\
DO $$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('fly_preview_controller.migrate'));
  IF to_regclass('public._sqlx_migrations') IS NULL THEN
    RETURN;
  END IF;
  IF to_regclass('fly_preview_controller._sqlx_migrations') IS NOT NULL THEN
    RAISE EXCEPTION 'both public._sqlx_migrations and fly_preview_controller._sqlx_migrations exist: an older release migrated this database again after the move; check that fly_preview_controller._sqlx_migrations lists every migration, then drop public._sqlx_migrations'
      USING ERRCODE = 'P0001';
  END IF;
  CREATE SCHEMA IF NOT EXISTS fly_preview_controller;
  ALTER TABLE public._sqlx_migrations SET SCHEMA fly_preview_controller;
END $$";

async fn move_legacy(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(MOVE_LEGACY).execute(conn).await?;
    Ok(())
}

/// How long one migration statement waits for a lock (e.g. behind a web-app transaction that
/// holds the table): the web app's queries queued behind the waiting migration wait no longer.
/// Then the migration gives up, is rolled back, and tries again after [`RETRY_PAUSE`].
pub const LOCK_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between two attempts (the web app's queries run freely meanwhile).
pub const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Attempts before `migrate` gives up (about a minute of waiting for a quiet moment).
pub const ATTEMPTS: u32 = 30;

/// Applies pending migrations; a second run is a no-op (and needs only SELECT on the
/// bookkeeping, so the controller's own role can run it). Returns the versions applied now.
/// An existing install's `public._sqlx_migrations` is moved first (history kept). Every
/// statement waits at most [`LOCK_TIMEOUT`] for a lock; a migration that times out is rolled
/// back and tried again, up to [`ATTEMPTS`] times.
pub async fn run(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let legacy: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(LEGACY_MIGRATIONS_TABLE)
        .fetch_one(pool)
        .await?;
    if legacy {
        let mut tx = pool.begin().await?;
        move_legacy(&mut tx).await?;
        tx.commit().await?;
        tracing::info!("moved {LEGACY_MIGRATIONS_TABLE} to {MIGRATIONS_TABLE} (history kept)");
    }
    let before = applied(pool).await?;
    if pending(pool).await?.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.acquire().await?;
    let applied_now = apply_with_retries(&mut conn).await;
    // the connection goes back to the pool without the migrator's settings or locks
    let reset = "RESET lock_timeout; SELECT pg_catalog.pg_advisory_unlock_all()";
    let reset = sqlx::raw_sql(reset).execute(&mut *conn).await;
    applied_now?;
    reset?;
    let after = applied(pool).await?;
    Ok(after.difference(&before).copied().collect())
}

const UNLOCK: &str = "SELECT pg_catalog.pg_advisory_unlock_all()";

/// Whether a migration failed because it waited for a lock longer than `lock_timeout`.
fn lock_timed_out(e: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError::{Execute, ExecuteMigration};
    let db = match e {
        Execute(e) | ExecuteMigration(e, _) => e.as_database_error(),
        _ => None,
    };
    db.and_then(|d| d.code()).is_some_and(|c| c == "55P03")
}

async fn apply_with_retries(conn: &mut PgConnection) -> Result<(), StoreError> {
    let set = format!("SET lock_timeout = '{}ms'", LOCK_TIMEOUT.as_millis());
    sqlx::raw_sql(sqlx::AssertSqlSafe(set)).execute(&mut *conn).await?;
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(&mut *conn).await {
            Ok(()) => return Ok(()),
            Err(e) if lock_timed_out(&e) && attempt < ATTEMPTS => {
                tracing::warn!(
                    attempt,
                    "a migration waited {LOCK_TIMEOUT:?} for a table lock (the web app is using the table); rolled back, trying again in {RETRY_PAUSE:?}"
                );
                // the migrator's session lock is not given back on an error
                sqlx::raw_sql(UNLOCK).execute(&mut *conn).await?;
                tokio::time::sleep(RETRY_PAUSE).await;
                attempt += 1;
            }
            Err(e) if lock_timed_out(&e) => {
                return Err(StoreError::Busy(format!(
                    "migrate gave up after {ATTEMPTS} attempts: each waited {LOCK_TIMEOUT:?} for a lock on a table the web app kept busy; nothing was changed by the unfinished migration, run migrate again at a quieter time"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Versions recorded as applied: in the controller's schema, or (not moved yet) in public.
async fn applied(pool: &PgPool) -> Result<BTreeSet<i64>, StoreError> {
    let (current, legacy): (bool, bool) =
        sqlx::query_as("SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL")
            .bind(MIGRATIONS_TABLE)
            .bind(LEGACY_MIGRATIONS_TABLE)
            .fetch_one(pool)
            .await?;
    let sql = match (current, legacy) {
        (true, _) => "SELECT version FROM fly_preview_controller._sqlx_migrations WHERE success",
        (false, true) => "SELECT version FROM public._sqlx_migrations WHERE success",
        (false, false) => return Ok(BTreeSet::new()),
    };
    let rows: Vec<i64> = sqlx::query_scalar(sql).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// Migrations embedded in this binary that the database has not applied yet.
pub async fn pending(pool: &PgPool) -> Result<Vec<&'static Migration>, StoreError> {
    let done = applied(pool).await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !done.contains(&m.version))
        .collect())
}

/// Everything about the table a user would care to see change, one fact per line.
const SNAPSHOT: &str = "\
WITH t AS (SELECT to_regclass('public.fly_preview_apps') AS oid) \
SELECT 'column ' || attname || ' ' || format_type(atttypid, atttypmod) || \
       CASE WHEN attnotnull THEN ' not null' ELSE '' END FROM pg_attribute, t \
 WHERE attrelid = t.oid AND attnum > 0 AND NOT attisdropped \
UNION ALL SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(c.oid) FROM pg_constraint c, t WHERE conrelid = t.oid \
UNION ALL SELECT 'index ' || indexrelid::regclass::text FROM pg_index, t WHERE indrelid = t.oid \
UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger, t WHERE tgrelid = t.oid AND NOT tgisinternal \
UNION ALL SELECT 'row level security ' || CASE WHEN relrowsecurity THEN 'enabled' ELSE 'disabled' END FROM pg_class, t WHERE pg_class.oid = t.oid \
UNION ALL SELECT 'policy \"' || policyname || '\" for ' || cmd || ' to ' || array_to_string(roles, ',') || \
       coalesce(' using ' || qual, '') || coalesce(' with check ' || with_check, '') \
  FROM pg_policies WHERE schemaname = 'public' AND tablename = 'fly_preview_apps' \
UNION ALL SELECT 'grant ' || privilege_type || ' to ' || grantee FROM information_schema.role_table_grants \
 WHERE table_schema = 'public' AND table_name = 'fly_preview_apps' AND grantee IN ('anon', 'authenticated', 'service_role') \
UNION ALL SELECT 'grant ' || privilege_type || ' (' || column_name || ') to ' || grantee FROM information_schema.column_privileges \
 WHERE table_schema = 'public' AND table_name = 'fly_preview_apps' AND grantee IN ('anon', 'authenticated') \
UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role') \
UNION ALL SELECT 'function auth.uid()' WHERE to_regprocedure('auth.uid()') IS NOT NULL \
UNION ALL SELECT 'table ' || t FROM unnest(array['public.fly_preview_controller_leader', 'fly_preview_controller.leader', \
  'fly_preview_controller.tombstones', 'public._sqlx_migrations', 'fly_preview_controller._sqlx_migrations']) AS t WHERE to_regclass(t) IS NOT NULL";

const ROWS: &str = "SELECT status || ' -> desired_state ' || desired_state || ': ' || count(*) \
    FROM public.fly_preview_apps GROUP BY status, desired_state ORDER BY 1";

async fn snapshot(conn: &mut sqlx::PgConnection) -> Result<BTreeSet<String>, StoreError> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(SNAPSHOT).fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().flatten().collect())
}

/// The rehearsal never queues behind the web app for long: a lock that is not free within
/// 100 ms ends it, and the web app's queries queue behind it at most that long.
const REHEARSAL_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '100ms'";

/// `migrate --rehearse`: applies the pending migrations in a transaction, reports the schema
/// difference and the backfilled rows, and rolls back. Unlike [`dry_run`] it takes the
/// migrations' locks (only while it applies and rolls back, and only locks that are free within
/// 100 ms, see [`REHEARSAL_LOCK_TIMEOUT`]).
pub async fn rehearse(pool: &PgPool) -> Result<String, StoreError> {
    let pending: Vec<String> =
        pending(pool).await?.iter().map(|m| format!("{} {}", m.version, m.description)).collect();
    let mut out = String::from("migrate --rehearse: nothing below has been changed.\n");
    if pending.is_empty() {
        out.push_str("All migrations are applied; `migrate` would change nothing.\n");
        return Ok(out);
    }
    out.push_str(&format!("Pending migrations ({}):\n", pending.len()));
    pending.iter().for_each(|p| out.push_str(&format!("  {p}\n")));
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(REHEARSAL_LOCK_TIMEOUT).execute(&mut *tx).await?;
    let before = snapshot(&mut tx).await?;
    move_legacy(&mut tx).await?;
    match MIGRATOR.run(&mut *tx).await {
        Err(e) if lock_timed_out(&e) => {
            tx.rollback().await?;
            // the migrator's session lock is not given back on an error
            sqlx::raw_sql(UNLOCK).execute(&mut *conn).await?;
            out.push_str(
                "The tables are in use (a lock was not free within 100 ms), so the schema \
                 difference was not computed; nothing waited for them. Try again later.\n",
            );
            return Ok(out);
        }
        r => r?,
    }
    let after = snapshot(&mut tx).await?;
    let rows: Vec<String> = sqlx::query_scalar(ROWS).fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    out.push_str("Schema changes (+ added, - removed):\n");
    after.difference(&before).for_each(|l| out.push_str(&format!("  + {l}\n")));
    before.difference(&after).for_each(|l| out.push_str(&format!("  - {l}\n")));
    out.push_str("Rows after the backfill (status -> desired_state: count):\n");
    if rows.is_empty() {
        out.push_str("  (no rows)\n");
    }
    rows.iter().for_each(|r| out.push_str(&format!("  {r}\n")));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlx_toml_places_the_bookkeeping_where_the_code_looks() {
        assert_eq!(MIGRATOR.table_name, MIGRATIONS_TABLE);
        assert!(MIGRATOR.create_schemas.iter().any(|s| s == "fly_preview_controller"));
    }
}
