//! LISTEN/NOTIFY: notifications are hints that wake the loop; they are never trusted alone.

use serde::Deserialize;
use sqlx::postgres::{PgListener, PgPool};
use uuid::Uuid;

use super::StoreError;

pub const CHANNEL: &str = "fly_preview_apps";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// Only `revision` changed (sync on save): a hint for the sync lane.
    Revision,
}

/// The trigger's payload: `{op, id}` (a delete's app name is in its tombstone).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notification {
    pub op: Op,
    pub id: Uuid,
}

/// What the listener yields.
#[derive(Debug)]
pub enum Event {
    Notified(Notification),
    /// The connection was lost and re-established: anything in between is unknown, resync.
    Reconnected,
}

pub struct Listener {
    inner: PgListener,
}

impl Listener {
    pub async fn connect(pool: &PgPool) -> Result<Self, StoreError> {
        let mut inner = PgListener::connect_with(pool).await?;
        inner.listen(CHANNEL).await?;
        Ok(Self { inner })
    }

    /// Next event. Malformed payloads are skipped (logged); a lost connection yields
    /// `Reconnected` after sqlx has reconnected and re-LISTENed.
    pub async fn next(&mut self) -> Result<Event, StoreError> {
        loop {
            match self.inner.try_recv().await? {
                None => return Ok(Event::Reconnected),
                Some(n) => match serde_json::from_str::<Notification>(n.payload()) {
                    Ok(parsed) => return Ok(Event::Notified(parsed)),
                    Err(e) => tracing::warn!(error = %e, "ignoring malformed notification"),
                },
            }
        }
    }
}

pub use Event as ListenEvent;
