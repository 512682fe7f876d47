//! The fleet as the rows record it: machines by state (for the cost gauges) and each user's
//! previews by machine state (`status --by-user`).

use uuid::Uuid;

use super::{Store, StoreError, named_query};
use crate::model::MachineState;

impl Store {
    /// Machines by the state last seen on Fly.
    pub async fn machines_by_state(&self) -> Result<Vec<(MachineState, i64)>, StoreError> {
        Ok(sqlx::query_as(named_query!("fleet/by_state")).fetch_all(self.pool()).await?)
    }

    /// Per user: previews by machine state (`None`: the preview has no machine).
    pub async fn previews_by_user(
        &self,
    ) -> Result<Vec<(Uuid, Option<MachineState>, i64)>, StoreError> {
        Ok(sqlx::query_as(named_query!("fleet/by_user")).fetch_all(self.pool()).await?)
    }
}
