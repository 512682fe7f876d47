//! The timeline of one preview (`public.fly_preview_events`): the kinds of event, and one
//! event as the controller records it.

use serde::Serialize;

use crate::model::state::{Reason, label_enum};

/// Most events kept per preview (the table's prune trigger keeps the newest).
pub const EVENTS_PER_PREVIEW: usize = 50;
/// Longest `message` stored (the table's CHECK allows 1,000 characters).
pub const MAX_EVENT_MESSAGE: usize = 500;

label_enum! {
    /// What happened (the table's CHECK lists the same texts).
    EventKind {
        /// A deploy was requested (row inserted, redeploy, spec change): written by a trigger.
        Queued = "queued",
        AppCreated = "app_created",
        MachineCreated = "machine_created",
        MachineStarted = "machine_started",
        /// The `dev` check passed: the dev server answers.
        DevServerAnswered = "dev_server_answered",
        Running = "running",
        /// The running preview serves the saved `revision`.
        SyncConfirmed = "sync_confirmed",
        /// A stopped machine was started again (after a crash, or a save after a crash loop).
        Restarted = "restarted",
        /// The dev server crash-looped and the runner exited.
        CrashLoop = "crash_loop",
        Stopped = "stopped",
        Error = "error",
        /// The row was deleted: written by a trigger.
        Deleted = "deleted",
    }
}

/// One event to record with a status write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    pub reason: Option<Reason>,
    pub message: Option<String>,
    pub detail: serde_json::Value,
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Event {
    /// An event with nothing but its kind.
    pub fn of(kind: EventKind) -> Self {
        Self { kind, reason: None, message: None, detail: serde_json::json!({}) }
    }
}
