//! Checks made once at connect / start, before any other statement: is this a real session
//! (not a transaction-mode pooler), and can the connected role see and write every row?

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Acquire, Connection, Row};

use super::StoreError;

/// The probe's session setting (a custom GUC: any role may set it).
const PROBE_GUC: &str = "fly_preview.pooler_probe";

/// One simple-protocol statement (no prepared statement: those are what break behind a
/// transaction pooler) returning the backend pid and the probe setting as this session sees it.
async fn pid_and_probe(
    conn: &mut PgConnection,
    set: Option<&str>,
) -> Result<(i32, String), StoreError> {
    let sql = match set {
        Some(token) => format!(
            "SELECT pg_catalog.pg_backend_pid(), pg_catalog.set_config('{PROBE_GUC}', '{token}', false)"
        ),
        None => format!(
            "SELECT pg_catalog.pg_backend_pid(), coalesce(pg_catalog.current_setting('{PROBE_GUC}', true), '')"
        ),
    };
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_one(conn).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Recognises a transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supabase's port
/// 6543) with two client sessions A and B, using what only a transaction pooler can do:
/// A sets a session setting; B, a different session, opens a transaction and must run on a
/// different backend without seeing that setting; while B's transaction is open, A must still
/// be on its own backend with its setting. On a direct connection or a session pooler all of
/// this holds by construction (no false alarms); behind a transaction pooler A's backend goes
/// back to the pool between statements, so B is handed it, or A moves (`.ci/supabase/README.md`
/// shows both with PgBouncer).
pub async fn detect_transaction_pooler(pool: &PgPool) -> Result<(), StoreError> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut a = pool.acquire().await?;
    let mut b = pool.acquire().await?;
    let (pid_a, _) = pid_and_probe(&mut a, Some(&token)).await?;
    let mut tx_b = b.begin().await?;
    let (pid_b, seen_by_b) = pid_and_probe(&mut tx_b, None).await?;
    let (pid_a2, seen_by_a) = pid_and_probe(&mut a, None).await?;
    tx_b.rollback().await?;
    let reset = format!("SELECT pg_catalog.set_config('{PROBE_GUC}', '', false)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(reset)).execute(&mut *a).await?;
    let pooled = pid_a == pid_b || seen_by_b == token || pid_a != pid_a2 || seen_by_a != token;
    if pooled || prepared_statements_collide(pool).await? {
        // these connections' state is unknowable: never hand them out again
        a.close_on_drop();
        b.close_on_drop();
        return Err(StoreError::TransactionPooler);
    }
    Ok(())
}

/// What a transaction pooler does to sqlx's named prepared statements: another client's
/// `sqlx_s_1` on the backend it was handed (42P05), its own missing on the next one (26000),
/// or another client's statement of the same name bound with this one's parameters (08P01).
pub(crate) fn is_pooler_symptom(e: &sqlx::Error) -> bool {
    let Some(d) = e.as_database_error() else {
        return false;
    };
    match d.code().as_deref() {
        Some("42P05" | "26000") => true,
        Some("08P01") => d.message().contains("prepared statement \"sqlx_s_"),
        _ => false,
    }
}

/// The second probe, for poolers that hand a client its previous backend back (PgBouncer with
/// `server_round_robin = 1` and few idle servers passes the first): fresh sessions, held open
/// side by side, each run a prepared statement twice. sqlx names the first statement of every
/// connection `sqlx_s_1`, and a session pooler resets a backend (DISCARD ALL) before another
/// client gets it, so on a real session every statement succeeds; behind a transaction pooler
/// one collides with another client's statement or loses its own, whatever order backends are
/// handed out in.
async fn prepared_statements_collide(pool: &PgPool) -> Result<bool, StoreError> {
    let opts = pool.connect_options();
    let mut held = Vec::new();
    let mut collided = false;
    'probe: for _ in 0..4 {
        let mut conn = PgConnection::connect_with(&opts).await?;
        for _ in 0..2 {
            let sql = "SELECT pg_catalog.pg_backend_pid()";
            match sqlx::query_scalar::<_, i32>(sql).fetch_one(&mut conn).await {
                Ok(_) => {}
                Err(e) if is_pooler_symptom(&e) => {
                    collided = true;
                    break 'probe;
                }
                Err(e) => return Err(e.into()),
            }
        }
        held.push(conn);
    }
    for conn in held {
        // a failed goodbye changes nothing about the answer
        let _ = conn.close().await;
    }
    Ok(collided)
}

/// Catalog facts about the connected role and the tables `run` reads and writes.
const ACCESS: &str = include_str!("sql/access.sql");

/// Refuses a role that cannot see and write every row `run` needs: the role must bypass RLS
/// (superuser, BYPASSRLS, or owner of a table without FORCE) or hold a permissive policy with
/// `USING (true)` for what it does, with no restrictive policy applying to it, and hold the
/// table privileges. Without that the daemon would report ready and silently do nothing (RLS
/// hides rows; leader election fails). Tables that do not exist yet are left to
/// `check_migrated`. Returns the problems as one line naming the fix.
pub async fn check_row_access(pool: &PgPool) -> Result<(), StoreError> {
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as(ACCESS).fetch_all(pool).await?;
    let Some((role, _, _, _)) = rows.first() else {
        return Ok(());
    };
    Err(StoreError::Access(format!(
        "connects as role \"{role}\", which cannot see and write every row the controller needs ({}); connect as a role with BYPASSRLS (e.g. postgres on Supabase) or create the controller's role with deploy/sql/controller-role.sql",
        summarize(&rows)
    )))
}

/// "table: no SELECT/UPDATE privilege, row-level security hides rows from SELECT; …"
fn summarize(rows: &[(String, String, String, String)]) -> String {
    let mut tables: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    tables.dedup();
    let items = |table: &str, kind: &str| -> String {
        let v: Vec<&str> =
            rows.iter().filter(|r| r.1 == table && r.2 == kind).map(|r| r.3.as_str()).collect();
        v.join("/")
    };
    let grant = |table: &str| -> Option<String> {
        let schema = table.strip_prefix("schema ")?;
        let role = rows.first().map_or("", |r| r.0.as_str());
        Some(format!(
            "{table}: no USAGE privilege (run: grant usage on schema {schema} to \"{role}\";)"
        ))
    };
    let describe = |table: &str| -> String {
        if let Some(line) = grant(table) {
            return line;
        }
        let mut parts = Vec::new();
        for (kind, head, tail) in [
            ("schema", "no ", " privilege"),
            ("privilege", "no ", " privilege"),
            ("rls", "row-level security hides rows from ", " (no policy USING (true) for it)"),
            ("restrictive", "restrictive policy ", ""),
        ] {
            let what = items(table, kind);
            if !what.is_empty() {
                parts.push(format!("{head}{what}{tail}"));
            }
        }
        format!("{table}: {}", parts.join(", "))
    };
    tables.iter().map(|t| describe(t)).collect::<Vec<_>>().join("; ")
}

/// A warning when the connected role holds far more than `run` needs (superuser, or
/// BYPASSRLS plus ownership of the table): it works, but a bug or a leaked `DATABASE_URL`
/// could then change every row and the schema. One line naming the fix.
pub async fn privileged_role(pool: &PgPool) -> Result<Option<String>, StoreError> {
    let sql = include_str!("sql/privileged_role.sql");
    let row: Option<(String, String)> = sqlx::query_as(sql).fetch_optional(pool).await?;
    Ok(row.map(|(role, why)| {
        format!(
            "DATABASE_URL connects as role \"{role}\", which {why}: the controller needs far less, and a bug or a leaked DATABASE_URL could change every preview and the schema; create the least-privilege role with deploy/sql/controller-role.sql and connect as fly_preview_reconciler"
        )
    }))
}

/// The prefix the database derives app names with (`fly_preview_controller.settings`), if the
/// settings exist: `run` refuses an `APP_PREFIX` that differs (every new row would be invalid).
pub async fn database_app_prefix(pool: &PgPool) -> Result<Option<String>, StoreError> {
    let sql = "SELECT app_prefix FROM fly_preview_controller.settings WHERE id = 1";
    Ok(sqlx::query_scalar(sql).fetch_optional(pool).await?)
}
