//! The fleet as the rows record it: machines by state (for the cost gauges), each user's
//! previews by machine state (`status --by-user`), and the rows as drift compares them.

use uuid::Uuid;

use super::{Store, StoreError, named_query};
use crate::model::MachineState;
use crate::model::state::{DesiredState, Status};

/// What the full drift verification needs of one row (`drift_rows`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DriftRow {
    pub fly_app_name: String,
    pub fly_machine_id: Option<String>,
    /// The machine's state as the row last recorded it.
    pub machine_state: Option<MachineState>,
    /// The row should run and says it does.
    pub running: bool,
}

impl Store {
    /// Machines by the state last seen on Fly.
    pub async fn machines_by_state(&self) -> Result<Vec<(MachineState, i64)>, StoreError> {
        Ok(sqlx::query_as(named_query!("fleet/by_state")).fetch_all(self.pool()).await?)
    }

    /// Every row, as the full drift verification compares it with Fly.
    pub async fn drift_rows(&self) -> Result<Vec<DriftRow>, StoreError> {
        Ok(sqlx::query_as(named_query!("drift_rows"))
            .bind(DesiredState::Running)
            .bind(Status::Running)
            .fetch_all(self.pool())
            .await?)
    }

    /// Per user: previews by machine state (`None`: the preview has no machine).
    pub async fn previews_by_user(
        &self,
    ) -> Result<Vec<(Uuid, Option<MachineState>, i64)>, StoreError> {
        Ok(sqlx::query_as(named_query!("fleet/by_user")).fetch_all(self.pool()).await?)
    }
}
