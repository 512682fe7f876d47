//! Per-user limits in the database: quota admission (serialised per user with an advisory
//! lock, shared with the quota-wake trigger), waking refused rows, and the redeploy budget's
//! bookkeeping.

use std::time::Duration;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Store, StoreError, named_query};
use crate::model::state::{DesiredState, Reason, Status};

/// The quota's answer for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The row holds a slot now (and shows `initializing`).
    Admitted,
    /// The user's other previews hold this many slots (at least the limit).
    Refused { active: i64 },
    /// The row changed or the lease was lost meanwhile.
    Fenced,
}

async fn lock_user(tx: &mut Transaction<'_, Postgres>, user: Uuid) -> Result<(), StoreError> {
    sqlx::query(named_query!("lock_user")).bind(user).execute(&mut **tx).await?;
    Ok(())
}

async fn active(
    tx: &mut Transaction<'_, Postgres>,
    user: Uuid,
    except: Option<Uuid>,
) -> Result<i64, StoreError> {
    let n = sqlx::query_scalar::<_, i64>(named_query!("active_previews"))
        .bind(user)
        .bind(except)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}

impl Store {
    /// Lets row `id` of `user` take one of the user's `limit` slots, or refuses it.
    pub async fn admit(
        &self,
        id: Uuid,
        user: Uuid,
        generation: i64,
        limit: u32,
    ) -> Result<Admission, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Fast path without the lock: refusing never over-admits, and a slot freed meanwhile
        // wakes a refused row (the quota-wake trigger, or `wake_refused_if_free`).
        let others = active(&mut tx, user, Some(id)).await?;
        if others >= i64::from(limit) {
            tx.commit().await?;
            return Ok(Admission::Refused { active: others });
        }
        lock_user(&mut tx, user).await?;
        let others = active(&mut tx, user, Some(id)).await?;
        if others >= i64::from(limit) {
            tx.commit().await?;
            return Ok(Admission::Refused { active: others });
        }
        let landed = sqlx::query(named_query!("admit"))
            .bind(id)
            .bind(&self.owner)
            .bind(generation)
            .bind(Status::Initializing)
            .bind(Reason::Deploying)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if landed.is_some() { Admission::Admitted } else { Admission::Fenced })
    }

    /// After a refusal was written: if `user` has a free slot after all (one was freed while
    /// the row was being refused), wakes the user's oldest refused row. Returns whether one was.
    pub async fn wake_refused_if_free(&self, user: Uuid, limit: u32) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut woken = 0;
        // Under the lock: a transaction freeing a slot holds it until it commits (the
        // quota-wake trigger), so the count below sees that slot free, or the trigger saw this
        // refusal. Refused rows are parked, so no wake-up is ever lost.
        lock_user(&mut tx, user).await?;
        if active(&mut tx, user, None).await? < i64::from(limit) {
            woken = sqlx::query(named_query!("wake_refused"))
                .bind(user)
                .bind(Reason::QuotaExceeded)
                .bind(DesiredState::Running)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(woken > 0)
    }

    /// Counts generation `generation` of row `id` against its redeploy budget (once).
    pub async fn note_change(
        &self,
        id: Uuid,
        generation: i64,
        window: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(named_query!("note_change"))
            .bind(id)
            .bind(&self.owner)
            .bind(generation)
            .bind(window.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
