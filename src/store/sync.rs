//! Sync on save: the queries of the controller's sync lane (`preview::sync`). They share
//! the row lease with reconcile passes, so a sync and a deploy never overlap on a row.

use std::time::Duration;

use uuid::Uuid;

use super::{Store, StoreError, named_query};
use crate::model::MachineState;
use crate::model::state::{DesiredState, Reason, Status};

/// The Fly machine state a sync needs (exec never wakes a stopped or suspended machine).
const STARTED: MachineState = MachineState::Started;

/// A claimed row: whom to ask for which commit.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SyncTarget {
    pub id: Uuid,
    #[sqlx(rename = "fly_app_name")]
    pub app: String,
    #[sqlx(rename = "fly_machine_id")]
    pub machine_id: String,
    pub revision: String,
}

impl Store {
    /// Leases row `id` for a sync if it is a running, converged preview with a started
    /// machine and an unconfirmed `revision`; `None` = nothing to do now.
    pub async fn sync_claim(
        &self,
        id: Uuid,
        lease: Duration,
    ) -> Result<Option<SyncTarget>, StoreError> {
        let sql = named_query!("sync_claim");
        Ok(sqlx::query_as::<_, SyncTarget>(sql)
            .bind(id)
            .bind(self.owner())
            .bind(lease.as_secs_f64())
            .bind(Status::Running)
            .bind(DesiredState::Running)
            .bind(STARTED)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Rows a sync could confirm now (unleased, running, started machine), oldest first.
    pub async fn sync_candidates(&self, limit: i64) -> Result<Vec<Uuid>, StoreError> {
        let sql = named_query!("sync_candidates");
        Ok(sqlx::query_scalar::<_, Uuid>(sql).bind(limit).fetch_all(self.pool()).await?)
    }

    /// The owners (`user_id`) of the rows in `ids` that still exist: `(row, user)`.
    pub async fn sync_owners(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        let sql = named_query!("sync_owners");
        Ok(sqlx::query_as::<_, (Uuid, Uuid)>(sql).bind(ids).fetch_all(self.pool()).await?)
    }

    /// Records the machine's answer `served`. `Some((true, _))`: it confirmed the row's
    /// current `revision` (served_revision set, lease given back). `Some((false, now))`: not
    /// confirmed, the lease is still held and `now` is the row's revision. `None`: the lease
    /// was lost.
    pub async fn sync_served(
        &self,
        id: Uuid,
        served: &str,
    ) -> Result<Option<(bool, Option<String>)>, StoreError> {
        let sql = named_query!("sync_served");
        Ok(sqlx::query_as::<_, (bool, Option<String>)>(sql)
            .bind(id)
            .bind(self.owner())
            .bind(served)
            .bind(Reason::SYNC)
            .bind(Reason::Ready)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Records why `revision` was not confirmed (status untouched): `message` for the person
    /// who saved, `detail` for operators; gives the lease back.
    pub async fn sync_failed(
        &self,
        id: Uuid,
        revision: &str,
        reason: Reason,
        message: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let sql = named_query!("sync_failed");
        sqlx::query(sql)
            .bind(id)
            .bind(self.owner())
            .bind(revision)
            .bind(reason)
            .bind(message)
            .bind(Status::Running)
            .bind(detail)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
