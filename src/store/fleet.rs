//! The fleet as the rows record it: machines by state (for the cost gauges), each user's
//! previews by machine state (`status --by-user`), and the rows as drift compares them.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
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
    /// Only its lease changed since the time given to [`Store::drift_rows`].
    pub settled: bool,
}

impl Store {
    /// Machines by the state last seen on Fly.
    pub async fn machines_by_state(&self) -> Result<Vec<(MachineState, i64)>, StoreError> {
        Ok(sqlx::query_as(named_query!("fleet/by_state")).fetch_all(self.pool()).await?)
    }

    /// Every row, as the full drift verification compares it with Fly, handed to `each` one
    /// at a time as the database sends them (never all held at once); `settled` is judged
    /// against `unchanged_since`. One statement.
    pub async fn drift_rows(
        &self,
        unchanged_since: DateTime<Utc>,
        mut each: impl FnMut(DriftRow),
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query_as(named_query!("drift_rows"))
            .bind(DesiredState::Running)
            .bind(Status::Running)
            .bind(unchanged_since)
            .fetch(self.pool());
        while let Some(row) = rows.try_next().await? {
            each(row);
        }
        Ok(())
    }

    /// Per user: previews by machine state (`None`: the preview has no machine).
    pub async fn previews_by_user(
        &self,
    ) -> Result<Vec<(Uuid, Option<MachineState>, i64)>, StoreError> {
        Ok(sqlx::query_as(named_query!("fleet/by_user")).fetch_all(self.pool()).await?)
    }
}
