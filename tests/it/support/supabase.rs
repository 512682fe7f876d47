//! The Supabase-faithful cluster of `.ci/supabase/setup.sh` (127.0.0.1:54329) and PgBouncer in
//! front of it (`.ci/supabase/pgbouncer.sh`: transaction mode 6543, session mode 6544, and the
//! same with `server_round_robin = 1` on 6545 and 6546).
//!
//! Every test gets its own database, a copy of Supabase's `postgres` database (schemas auth,
//! extensions, …, and Supabase's default privileges, which live per database), owned by
//! `postgres` like on Supabase, dropped when the test ends. The copy is taken once into the
//! template database `fpc_supabase_template` (by `CREATE DATABASE … TEMPLATE postgres`, or, when
//! other sessions use `postgres`, by `pg_dump --schema-only` into an empty database).

use std::process::Command;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 54329;
pub const TX_POOLER_PORT: u16 = 6543;
pub const SESSION_POOLER_PORT: u16 = 6544;
/// The same two poolers with `server_round_robin = 1` (backends reused oldest-first).
pub const TX_POOLER_RR_PORT: u16 = 6545;
pub const SESSION_POOLER_RR_PORT: u16 = 6546;
pub const TEMPLATE: &str = "fpc_supabase_template";
pub const NEEDS_CLUSTER: &str = "needs the Supabase cluster: bash .ci/supabase/setup.sh";

/// Connection options for `role` on `db` at `port` (trust auth, no password).
pub fn opts(port: u16, role: &str, db: &str) -> PgConnectOptions {
    PgConnectOptions::new().host(HOST).port(port).username(role).database(db)
}

pub fn url(port: u16, role: &str, db: &str) -> String {
    format!("postgres://{role}@{HOST}:{port}/{db}")
}

async fn admin() -> PgConnection {
    PgConnection::connect_with(&opts(PORT, "supabase_admin", "template1"))
        .await
        .unwrap_or_else(|e| panic!("{NEEDS_CLUSTER} (and .ci/supabase/pgbouncer.sh): {e}"))
}

async fn exists(conn: &mut PgConnection, db: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(db)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// Creates the template once (serialized across test processes by an advisory lock).
async fn ensure_template(conn: &mut PgConnection) {
    sqlx::query("SELECT pg_advisory_lock(hashtext('fpc_supabase_template'))")
        .execute(&mut *conn)
        .await
        .unwrap();
    if !exists(conn, TEMPLATE).await {
        let mut cloned = false;
        // each attempt waits up to 5 s for other sessions of `postgres` to go away (55006)
        for _ in 0..2 {
            let sql = format!("CREATE DATABASE {TEMPLATE} TEMPLATE postgres");
            match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await {
                Ok(_) => {
                    cloned = true;
                    break;
                }
                // 55006: other sessions are connected to postgres
                Err(e) if super::sqlstate(&e) == "55006" => {
                    tokio::time::sleep(Duration::from_millis(300)).await
                }
                Err(e) => panic!("creating {TEMPLATE}: {e}"),
            }
        }
        if !cloned {
            dump_restore(conn).await;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtext('fpc_supabase_template'))")
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// The fallback copy. Known difference: the event trigger `issue_pg_net_access` belongs to
/// `postgres` on Supabase, and a restore cannot give an event trigger to a non-superuser; it
/// stays with supabase_admin (it only reacts to CREATE EXTENSION pg_net).
async fn dump_restore(conn: &mut PgConnection) {
    let tmp = format!("{TEMPLATE}_building");
    for sql in [
        format!("DROP DATABASE IF EXISTS {tmp}"),
        format!("CREATE DATABASE {tmp} TEMPLATE template0"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await.unwrap();
    }
    let script = format!(
        "pg_dump -h {HOST} -p {PORT} -U supabase_admin --schema-only postgres | psql -X -q -h {HOST} -p {PORT} -U supabase_admin -d {tmp}"
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("event trigger \"issue_pg_net_access\""))
        .collect();
    assert!(out.status.success() && errors.is_empty(), "pg_dump | psql: {stderr}");
    let rename = format!("ALTER DATABASE {tmp} RENAME TO {TEMPLATE}");
    sqlx::query(sqlx::AssertSqlSafe(rename)).execute(&mut *conn).await.unwrap();
}

/// A fresh database for one test: Supabase's `postgres` database as a new project has it,
/// owned by `postgres`. Dropped on drop (also when the test panics).
pub struct SupaDb {
    pub name: String,
}

impl SupaDb {
    pub async fn create() -> SupaDb {
        let mut conn = admin().await;
        ensure_template(&mut conn).await;
        let name = format!("fpc_it_{}", uuid::Uuid::new_v4().simple());
        let sql = format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE} OWNER postgres");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        SupaDb { name }
    }

    /// A pool on this database as `role`, directly or through a pooler port.
    pub async fn pool_at(&self, port: u16, role: &str, max: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max)
            .connect_with(opts(port, role, &self.name))
            .await
            .unwrap()
    }

    pub async fn pool(&self, role: &str) -> PgPool {
        self.pool_at(PORT, role, 4).await
    }

    pub fn url(&self, port: u16, role: &str) -> String {
        url(port, role, &self.name)
    }
}

impl Drop for SupaDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = Command::new("psql")
            .args(["-X", "-q", "-h", HOST, "-p", &PORT.to_string(), "-U", "supabase_admin"])
            .args(["-d", "template1", "-c", &sql])
            .output();
    }
}
