//! Leader election with a TTL row: only the leader runs the orphan sweep.

use std::time::Duration;

use super::{Store, StoreError};

impl Store {
    /// Takes or renews leadership; true while this replica is the leader.
    pub async fn try_lead(&self, ttl: Duration) -> Result<bool, StoreError> {
        let sql = "INSERT INTO public.fly_preview_controller_leader AS l (id, holder, expires_at) \
                   VALUES (1, $1, now() + make_interval(secs => $2)) \
                   ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                   WHERE l.holder = excluded.holder OR l.expires_at < now() \
                   RETURNING holder";
        let held = sqlx::query_scalar::<_, String>(sql)
            .bind(self.owner())
            .bind(ttl.as_secs_f64())
            .fetch_optional(self.pool())
            .await?;
        Ok(held.is_some())
    }

    /// Steps down (shutdown) so another replica can lead at once.
    pub async fn resign(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM public.fly_preview_controller_leader WHERE holder = $1")
            .bind(self.owner())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
