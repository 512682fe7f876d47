//! The timeline a pass adds, from the row it claimed and its final write: one table.

use std::time::Duration;

use super::*;
use crate::preview::outcome::{Outcome, decide};
use crate::preview::plan::MachineRef;
use crate::preview::settings::Settings;
use crate::preview::test_rows::{now, row};

fn write(r: &PreviewRow, o: &Outcome) -> StatusWrite {
    decide(&Settings::for_tests("personal"), r, o, now())
}

fn progressing(reason: Reason, state: MachineState) -> Outcome {
    let machine = Some(MachineRef { id: "m-old".into(), state });
    Outcome::Progressing { reason, machine, retry_in: Duration::from_secs(1) }
}

fn kinds(r: &PreviewRow, w: &StatusWrite) -> Vec<EventKind> {
    events(r, w).into_iter().map(|e| e.kind).collect()
}

#[test]
fn a_deploy_records_each_milestone_once() {
    use EventKind::*;
    let fresh = PreviewRow {
        observed_generation: 0,
        fly_machine_id: None,
        machine_state: None,
        ..row(Status::Pending, 0)
    };
    let created = write(&fresh, &progressing(Reason::WaitingForMachine, MachineState::Created));
    assert_eq!(kinds(&fresh, &created), [AppCreated, MachineCreated]);
    let booting =
        PreviewRow { machine_state: Some(MachineState::Created), ..row(Status::Initializing, 0) };
    let started =
        write(&booting, &progressing(Reason::WaitingForHealthCheck, MachineState::Started));
    assert_eq!(kinds(&booting, &started), [MachineStarted]);
    let healthy =
        PreviewRow { machine_state: Some(MachineState::Started), ..row(Status::Initializing, 0) };
    let machine = MachineRef { id: "m-old".into(), state: MachineState::Started };
    let running = write(&healthy, &Outcome::Running { machine: machine.clone() });
    assert_eq!(kinds(&healthy, &running), [DevServerAnswered, Running]);
    let fast = write(&booting, &Outcome::Running { machine: machine.clone() });
    assert_eq!(kinds(&booting, &fast), [MachineStarted, DevServerAnswered, Running]);
    let again = PreviewRow {
        status_reason: Some(Reason::Ready),
        machine_state: Some(MachineState::Started),
        ..row(Status::Running, 0)
    };
    let same = write(&again, &Outcome::Running { machine });
    assert_eq!(kinds(&again, &same), [], "a converged row records nothing");
    let waiting = write(&booting, &progressing(Reason::WaitingForMachine, MachineState::Created));
    assert_eq!(kinds(&booting, &waiting), [], "waiting is not news");
}

#[test]
fn crash_loop_restart_stop_and_errors() {
    use EventKind::*;
    let running = PreviewRow {
        status_reason: Some(Reason::Ready),
        machine_state: Some(MachineState::Started),
        ..row(Status::Running, 0)
    };
    let crashed = StatusWrite {
        status: Status::Error,
        reason: Reason::DevServerCrashed,
        error_message: Some("the dev server kept crashing".repeat(100)),
        machine_state: Some(MachineState::Stopped),
        ..write(&running, &Outcome::Stopped)
    };
    let ev = events(&running, &crashed);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].reason), (CrashLoop, Some(Reason::DevServerCrashed)));
    assert!(ev[0].message.as_ref().is_some_and(|m| m.len() <= MAX_EVENT_MESSAGE));
    let waiting = PreviewRow {
        status_reason: Some(Reason::RestartOnSave),
        machine_state: Some(MachineState::Stopped),
        ..row(Status::Error, 1)
    };
    let restart = write(&waiting, &progressing(Reason::WaitingForMachine, MachineState::Starting));
    let ev = events(&waiting, &restart);
    assert_eq!((ev[0].kind, ev[0].reason), (Restarted, Some(Reason::RestartOnSave)));
    let in_error = PreviewRow { status_reason: Some(Reason::DevServerCrashed), ..waiting };
    let same = StatusWrite { reason: Reason::DevServerCrashed, ..crashed.clone() };
    assert_eq!(kinds(&in_error, &same), [], "the same verdict again is not news");
    let other = StatusWrite { reason: Reason::FlyApiError, ..crashed };
    assert_eq!(kinds(&in_error, &other), [Error]);
    let stopping = row(Status::Running, 0);
    assert_eq!(kinds(&stopping, &write(&stopping, &Outcome::Stopped)), [Stopped]);
}

#[test]
fn an_expiry_says_why_and_a_wake_records_one_start() {
    let running = PreviewRow {
        observed_generation: 3,
        machine_state: Some(MachineState::Started),
        ..row(Status::Running, 0)
    };
    let w = write(&running, &Outcome::Expired);
    let ev = events(&running, &w);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].reason), (EventKind::Stopped, Some(Reason::Expired)));
    assert!(ev[0].message.as_deref().is_some_and(|m| m.starts_with("stopped after")));
    let expired = PreviewRow { status: Status::Stopped, ..running.clone() };
    assert!(events(&expired, &write(&expired, &Outcome::Expired)).is_empty(), "once");

    // The row may still say `started` (autostop is not recorded): the wake says so itself.
    let machine = MachineRef { id: "m-old".into(), state: MachineState::Started };
    for recorded in [MachineState::Started, MachineState::Suspended] {
        let r = PreviewRow { machine_state: Some(recorded), ..running.clone() };
        let woken = Outcome::Woken { machine: machine.clone(), from: MachineState::Suspended };
        let w = write(&r, &woken);
        let mut ev = events(&r, &w);
        note_wake(&mut ev, &woken, &w);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            (ev[0].kind, ev[0].reason),
            (EventKind::MachineStarted, Some(Reason::WakeRequested))
        );
        assert_eq!(ev[0].detail["woken_from"], "suspended");
        let awake = Outcome::Running { machine: machine.clone() };
        let mut none = events(&r, &write(&r, &awake));
        note_wake(&mut none, &awake, &write(&r, &awake));
        assert!(none.iter().all(|e| e.reason != Some(Reason::WakeRequested)));
    }
}
