//! Leadership as a session-level advisory lock held on a dedicated connection (never a pooled
//! one): the database releases it the moment the holder's backend ends, so a dead leader is
//! replaced as soon as Postgres notices its connection is gone. The `fly_preview_controller.leader`
//! row only names who holds the lock (for people, and for older replicas that still elect by
//! the row); the lock is the authority.
//!
//! # Guarantees
//! - At most one session of the database holds [`LEADER_KEY`] at a time (Postgres's lock).
//! - A waiting [`LeaderConn::lock`] is one statement, however long it waits.
//! - [`LeaderConn::note`] answers `true` only while this very session holds the lock.
//! # Caveats
//! - A statement cancelled mid-flight leaves the connection unusable: drop the [`LeaderConn`].
//! - Behind a session pooler the lock lives on the pooler's server connection; it is released
//!   when the pooler ends or resets that connection (PgBouncer's `DISCARD ALL` does).

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};

use super::{Store, StoreError, named_query};

/// The advisory lock key (advisory locks are per database): `fly_prev` in ASCII.
pub const LEADER_KEY: i64 = 0x666c_795f_7072_6576;

/// A dedicated connection that waits for, holds and gives up leadership.
pub struct LeaderConn {
    conn: PgConnection,
    owner: String,
}

impl LeaderConn {
    /// Opens a connection with the pool's options (not one of the pool's) and sets its
    /// session up: no timeouts, TCP keepalives (`leader_session.sql`).
    pub async fn connect(pool: &PgPool, owner: &str) -> Result<Self, StoreError> {
        let opts = pool.connect_options();
        let mut conn = PgConnection::connect_with(&opts)
            .await
            .map_err(|e| StoreError::Connect(super::describe(&e)))?;
        sqlx::query(named_query!("leader_session")).execute(&mut conn).await?;
        Ok(Self { conn, owner: owner.to_string() })
    }

    /// Waits until this session holds the leadership lock (no statement while it waits).
    pub async fn lock(&mut self) -> Result<(), StoreError> {
        let sql = named_query!("leader_lock");
        sqlx::query(sql).bind(LEADER_KEY).execute(&mut self.conn).await?;
        Ok(())
    }

    /// Names this replica in the leader row for `ttl`; true while this session holds the lock
    /// (the check that the connection, and so the leadership, is still alive).
    pub async fn note(&mut self, ttl: Duration) -> Result<bool, StoreError> {
        let held = sqlx::query_scalar::<_, String>(named_query!("note_leader"))
            .bind(&self.owner)
            .bind(ttl.as_secs_f64())
            .bind(LEADER_KEY)
            .fetch_optional(&mut self.conn)
            .await?;
        Ok(held.is_some())
    }

    /// Steps down: deletes our leader row and releases the lock; the connection stays open
    /// to wait again.
    pub async fn unlock(&mut self) -> Result<(), StoreError> {
        sqlx::query(named_query!("leader_unlock"))
            .bind(&self.owner)
            .bind(LEADER_KEY)
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Removes this replica's leader row (shutdown, after its leadership connection is gone),
    /// so the row stops naming it at once.
    pub async fn resign(&self) -> Result<(), StoreError> {
        sqlx::query(named_query!("resign")).bind(self.owner()).execute(self.pool()).await?;
        Ok(())
    }
}
