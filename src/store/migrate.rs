//! Applying the embedded migrations, and a dry run that applies them inside a transaction,
//! reports the difference in the schema and the backfilled rows, and rolls everything back.

use std::collections::BTreeSet;

use sqlx::migrate::Migration;
use sqlx::postgres::PgPool;

use super::{MIGRATOR, StoreError};

/// Applies pending migrations; a second run is a no-op. Returns the versions applied now.
pub async fn run(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let before = applied(pool).await?;
    MIGRATOR.run(pool).await?;
    let after = applied(pool).await?;
    Ok(after.difference(&before).copied().collect())
}

async fn applied(pool: &PgPool) -> Result<BTreeSet<i64>, StoreError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    if !exists {
        return Ok(BTreeSet::new());
    }
    let rows: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM public._sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
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
UNION ALL SELECT 'table public.fly_preview_controller_leader' WHERE to_regclass('public.fly_preview_controller_leader') IS NOT NULL";

const ROWS: &str = "SELECT status || ' -> desired_state ' || desired_state || ': ' || count(*) \
    FROM public.fly_preview_apps GROUP BY status, desired_state ORDER BY 1";

async fn snapshot(conn: &mut sqlx::PgConnection) -> Result<BTreeSet<String>, StoreError> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(SNAPSHOT).fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Applies the pending migrations in a transaction, reports, and rolls back.
pub async fn dry_run(pool: &PgPool) -> Result<String, StoreError> {
    let pending: Vec<String> =
        pending(pool).await?.iter().map(|m| format!("{} {}", m.version, m.description)).collect();
    let mut out = String::from("migrate --dry-run: nothing below has been changed.\n");
    if pending.is_empty() {
        out.push_str("All migrations are applied; `migrate` would change nothing.\n");
        return Ok(out);
    }
    out.push_str(&format!("Pending migrations ({}):\n", pending.len()));
    pending.iter().for_each(|p| out.push_str(&format!("  {p}\n")));
    let mut tx = pool.begin().await?;
    let before = snapshot(&mut tx).await?;
    MIGRATOR.run(&mut *tx).await?;
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
