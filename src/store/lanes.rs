//! Queries for work outside the main claim loop: the local lane (rows whose pass needs no
//! Fly call) and the wake-up of rows parked by a Fly outage.

use std::time::Duration;

use uuid::Uuid;

use super::{PreviewRow, Store, StoreError, named_query};
use crate::model::state::Reason;

impl Store {
    /// Up to `limit` due, unleased rows, oldest first, not claimed.
    pub async fn due_unleased(&self, limit: i64) -> Result<Vec<PreviewRow>, StoreError> {
        let sql = named_query!("due_unleased");
        Ok(sqlx::query_as::<_, PreviewRow>(sql).bind(limit).fetch_all(self.pool()).await?)
    }

    /// Claims these rows if they are still due and unleased.
    pub async fn claim_ids(
        &self,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<Vec<PreviewRow>, StoreError> {
        let sql = named_query!("claim_ids");
        Ok(sqlx::query_as::<_, PreviewRow>(sql)
            .bind(self.owner())
            .bind(ids)
            .bind(lease.as_secs_f64())
            .fetch_all(self.pool())
            .await?)
    }

    /// Fly healed: rows parked with this reason are due now and their deploy clock
    /// (`requested_at`) restarts. Returns how many.
    pub async fn wake_parked(&self, reason: Reason) -> Result<u64, StoreError> {
        let sql = named_query!("wake_parked");
        Ok(sqlx::query(sql).bind(reason).execute(self.pool()).await?.rows_affected())
    }
}
