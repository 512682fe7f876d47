//! Whether a row may have a Fly app (`fly_app_created`): written ahead of the first call that
//! can create one, so a row without it provably never had an app and costs no Fly call to
//! stop or delete (its delete leaves no tombstone).

use uuid::Uuid;

use super::{Store, StoreError, named_query};

impl Store {
    /// Records that leased row `id` may have an app from now on; false when the lease is lost
    /// (then no call that can create an app may be made).
    pub async fn note_app_created(&self, id: Uuid) -> Result<bool, StoreError> {
        let sql = named_query!("note_app_created");
        let r = sqlx::query(sql).bind(id).bind(self.owner()).fetch_optional(self.pool()).await?;
        Ok(r.is_some())
    }

    /// A deleted row's app `name` was kept for the row that holds the name again: that row
    /// has an app now.
    pub async fn note_app_kept(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query(named_query!("note_app_kept")).bind(name).execute(self.pool()).await?;
        Ok(())
    }
}
