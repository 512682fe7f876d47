//! Reading a preview's timeline (`public.fly_preview_events`; the controller writes it with
//! its status writes, `sql/write_status.sql`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, named_query};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub detail: serde_json::Value,
    pub elapsed_ms: Option<i64>,
}

impl Store {
    /// The latest `limit` events of the preview whose app is `app`, oldest first.
    pub async fn timeline(&self, app: &str, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let sql = named_query!("timeline");
        let mut rows: Vec<EventRow> =
            sqlx::query_as(sql).bind(app).bind(limit).fetch_all(self.pool()).await?;
        rows.reverse();
        Ok(rows)
    }
}
