//! Tombstones of deleted rows (`fly_preview_controller.tombstones`) as a work queue: claims
//! with leases, persisted attempts and due times, fenced retries, and removal once the
//! teardown is over (`preview::teardown` makes it the runtime's queue).

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreError, named_query};
use sqlx::PgPool;

/// A deleted row whose Fly app may still exist, as the controller reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Tombstone {
    /// The deleted row's id (the machines of its app carry it in their metadata).
    pub id: Uuid,
    pub user_id: Uuid,
    pub fly_app_name: String,
    pub deleted_at: DateTime<Utc>,
    /// Failed attempts that count towards the backoff (a Fly outage does not).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last failure, for operators.
    pub last_error: Option<String>,
}

/// The tombstone table, scoped to one replica (the lease owner) and its lease length.
#[derive(Clone, Debug)]
pub struct Tombstones {
    pool: PgPool,
    owner: String,
    lease: Duration,
}

impl Tombstones {
    pub fn new(pool: PgPool, owner: impl Into<String>, lease: Duration) -> Self {
        Self { pool, owner: owner.into(), lease }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Leases up to `limit` due, unleased tombstones to this replica, oldest due first.
    pub async fn claim(&self, limit: i64) -> Result<Vec<Tombstone>, StoreError> {
        Ok(sqlx::query_as::<_, Tombstone>(named_query!("tombstones/claim"))
            .bind(&self.owner)
            .bind(limit)
            .bind(self.lease.as_secs_f64())
            .fetch_all(&self.pool)
            .await?)
    }

    /// How long until the earliest tombstone may be claimed (`Duration::ZERO` if one is due
    /// already, or leased by a replica whose lease has expired); `None` when there is none.
    pub async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        let secs: Option<f64> =
            sqlx::query_scalar(named_query!("tombstones/next_due")).fetch_one(&self.pool).await?;
        Ok(secs.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)))
    }

    /// Extends the leases this replica still holds; returns the ids it still owns.
    pub async fn renew(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar::<_, Uuid>(named_query!("tombstones/renew"))
            .bind(ids)
            .bind(&self.owner)
            .bind(self.lease.as_secs_f64())
            .fetch_all(&self.pool)
            .await?)
    }

    /// Gives one tombstone back unchanged.
    pub async fn release(&self, id: Uuid) -> Result<bool, StoreError> {
        let r = sqlx::query(named_query!("tombstones/release"))
            .bind(id)
            .bind(&self.owner)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives back every tombstone this replica holds (shutdown).
    pub async fn release_all(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(named_query!("tombstones/release_all"))
            .bind(&self.owner)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// The teardown is over: removes the tombstone. `false` = fenced out (the lease is
    /// another replica's, or the row was deleted again since the claim).
    pub async fn finish(&self, t: &Tombstone) -> Result<bool, StoreError> {
        let r = sqlx::query(named_query!("tombstones/finish"))
            .bind(t.id)
            .bind(&self.owner)
            .bind(t.deleted_at)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a failed attempt and gives the lease back: due again at `at`, `error` kept
    /// for operators; `counts` adds one to the attempts (the backoff's exponent). `false` =
    /// fenced out (the lease is another replica's).
    pub async fn retry(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        error: &str,
        counts: bool,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(named_query!("tombstones/retry"))
            .bind(id)
            .bind(&self.owner)
            .bind(i32::from(counts))
            .bind(at)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Fly healed: every waiting, unleased tombstone is due now. Returns how many.
    pub async fn wake(&self) -> Result<u64, StoreError> {
        let r = sqlx::query(named_query!("tombstones/wake")).execute(&self.pool).await?;
        Ok(r.rows_affected())
    }

    /// How many tombstones wait for their teardown (leased or not).
    pub async fn pending(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(named_query!("tombstones/pending")).fetch_one(&self.pool).await?)
    }
}
