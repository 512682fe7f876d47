//! The events a pass's final write adds to the preview's timeline, decided from the row as
//! the pass claimed it and the write (pure): a write that changes nothing adds nothing, so a
//! converged fleet records no events.

use serde_json::json;

use crate::model::MachineState;
use crate::model::runner_output::clip_bytes;
use crate::model::state::{Reason, Status};
use crate::model::timeline::{Event, EventKind, MAX_EVENT_MESSAGE};
use crate::preview::outcome::Outcome;
use crate::store::{PreviewRow, StatusWrite};

/// Machine states a started machine is restarted from.
const DOWN: &[MachineState] = &[MachineState::Stopped, MachineState::Failed];

fn machine(w: &StatusWrite) -> serde_json::Value {
    json!({"machine_id": w.fly_machine_id, "machine_state": w.machine_state})
}

/// The milestones of a deploy pass: app and machine created, machine (re)started.
fn milestones(row: &PreviewRow, w: &StatusWrite, out: &mut Vec<Event>) {
    let new_machine = w.fly_machine_id.is_some() && w.fly_machine_id != row.fly_machine_id;
    if new_machine && row.observed_generation == 0 && row.fly_machine_id.is_none() {
        out.push(Event::of(EventKind::AppCreated));
    }
    if new_machine {
        out.push(Event { detail: machine(w), ..Event::of(EventKind::MachineCreated) });
    }
    let was_down = row.machine_state.as_ref().is_some_and(|s| DOWN.contains(s));
    let restarting = w.machine_state == Some(MachineState::Starting);
    if !new_machine && was_down && restarting {
        let reason = row.status_reason;
        out.push(Event { reason, detail: machine(w), ..Event::of(EventKind::Restarted) });
    }
    let started = w.machine_state == Some(MachineState::Started);
    if started && row.machine_state != Some(MachineState::Started) {
        out.push(Event { detail: machine(w), ..Event::of(EventKind::MachineStarted) });
    }
}

/// The events of writing `w` over `row`.
pub fn events(row: &PreviewRow, w: &StatusWrite) -> Vec<Event> {
    let mut out = Vec::new();
    milestones(row, w, &mut out);
    let entered = row.status != w.status;
    match w.status {
        Status::Running if entered => {
            if w.reason == Reason::Ready {
                out.push(Event::of(EventKind::DevServerAnswered));
            }
            let detail = json!({"preview_url": w.preview_url, "machine_state": w.machine_state});
            out.push(Event { reason: Some(w.reason), detail, ..Event::of(EventKind::Running) });
        }
        Status::Error if entered || row.status_reason != Some(w.reason) => {
            let kind = if w.reason == Reason::DevServerCrashed {
                EventKind::CrashLoop
            } else {
                EventKind::Error
            };
            let message = w.error_message.as_deref().map(|m| clip_bytes(m, MAX_EVENT_MESSAGE));
            out.push(Event {
                reason: Some(w.reason),
                message: message.map(str::to_owned),
                detail: machine(w),
                ..Event::of(kind)
            });
        }
        Status::Stopped if entered && w.reason == Reason::Expired => out.push(Event {
            reason: Some(w.reason),
            message: w
                .error_message
                .as_deref()
                .map(|m| clip_bytes(m, MAX_EVENT_MESSAGE).to_owned()),
            ..Event::of(EventKind::Stopped)
        }),
        Status::Stopped if entered => out.push(Event::of(EventKind::Stopped)),
        _ => {}
    }
    out
}

/// A wake records one `machine_started` event, reason `WakeRequested`, with the state the
/// machine woke from (in place of the plain milestone, which only sees the row's record).
pub fn note_wake(events: &mut Vec<Event>, outcome: &Outcome, w: &StatusWrite) {
    let Outcome::Woken { from, .. } = outcome else { return };
    events.retain(|e| e.kind != EventKind::MachineStarted);
    let mut detail = machine(w);
    detail["woken_from"] = json!(from);
    let reason = Some(Reason::WakeRequested);
    events.insert(0, Event { reason, detail, ..Event::of(EventKind::MachineStarted) });
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
