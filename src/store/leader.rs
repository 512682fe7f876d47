//! Leader election with a TTL row: only the leader runs the orphan sweep.

use std::time::Duration;

use super::{Store, StoreError, named_query};

impl Store {
    /// Takes or renews leadership; true while this replica is the leader.
    pub async fn try_lead(&self, ttl: Duration) -> Result<bool, StoreError> {
        let sql = named_query!("try_lead");
        let held = sqlx::query_scalar::<_, String>(sql)
            .bind(self.owner())
            .bind(ttl.as_secs_f64())
            .fetch_optional(self.pool())
            .await?;
        Ok(held.is_some())
    }

    /// Steps down (shutdown) so another replica can lead at once.
    pub async fn resign(&self) -> Result<(), StoreError> {
        sqlx::query(named_query!("resign")).bind(self.owner()).execute(self.pool()).await?;
        Ok(())
    }
}
