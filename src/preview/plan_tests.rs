//! The pure planner: one table of situations and the step each must produce.

use super::*;
use uuid::Uuid;

fn want() -> Desired {
    Desired {
        preview_id: Uuid::nil(),
        generation: 2,
        was_running: false,
        deadline_passed: false,
        restart_on_save: false,
    }
}

fn m(id: &str, state: MachineState, generation: i64) -> MachineSeen {
    MachineSeen {
        id: id.into(),
        state,
        instance_id: None,
        ours: true,
        generation: Some(generation),
        checks_passing: false,
        check_output: None,
        dev: None,
        exit_code: None,
        oom_killed: false,
    }
}

fn app(machines: Vec<MachineSeen>) -> Observed {
    Observed { app: AppSeen::Ours, has_v6: true, has_shared_v4: true, machines }
}

#[test]
fn app_and_ips_come_first() {
    assert_eq!(plan(&want(), &Observed::missing()), Step::CreateApp);
    assert_eq!(
        plan(&want(), &Observed { app: AppSeen::Foreign, ..Observed::missing() }),
        Step::Fail(Failure::NameOwnedElsewhere)
    );
    assert_eq!(plan(&want(), &Observed::fresh_app()), Step::AllocateV6);
    assert_eq!(
        plan(&want(), &Observed { has_v6: true, ..Observed::fresh_app() }),
        Step::AllocateSharedV4
    );
    assert_eq!(plan(&want(), &app(vec![])), Step::CreateMachine);
}

#[test]
fn machine_lifecycle() {
    let passing = MachineSeen { checks_passing: true, ..m("a", MachineState::Started, 2) };
    assert_eq!(
        plan(&want(), &app(vec![passing])),
        Step::Ready { id: "a".into(), state: MachineState::Started }
    );
    assert_eq!(
        plan(&want(), &app(vec![m("a", MachineState::Started, 2)])),
        Step::WaitHealthy { id: "a".into() }
    );
    assert_eq!(
        plan(&want(), &app(vec![m("a", MachineState::Created, 2)])),
        Step::WaitStarted { id: "a".into(), instance_id: None }
    );
    assert_eq!(
        plan(&want(), &app(vec![m("a", MachineState::Started, 1)])),
        Step::UpdateMachine { id: "a".into() },
        "spec change updates in place"
    );
    assert_eq!(
        plan(&want(), &app(vec![m("a", MachineState::Suspended, 2)])),
        Step::Ready { id: "a".into(), state: MachineState::Suspended },
        "idle is healthy"
    );
    assert_eq!(
        plan(&want(), &app(vec![m("a", MachineState::Stopping, 2)])),
        Step::Requeue { id: "a".into() }
    );
    assert_eq!(
        plan(&want(), &app(vec![m("a", MachineState::from("some-future-state"), 2)])),
        Step::Requeue { id: "a".into() }
    );
}

#[test]
fn failures_fail_fast_while_initializing_and_are_repaired_once_running() {
    let exited = MachineSeen { exit_code: Some(128), ..m("a", MachineState::Stopped, 2) };
    assert_eq!(
        plan(&want(), &app(vec![exited.clone()])),
        Step::Fail(Failure::MachineExited {
            code: Some(128),
            state: MachineState::Stopped,
            oom_killed: false,
            report: None,
        })
    );
    let running = Desired { was_running: true, ..want() };
    assert_eq!(
        plan(&running, &app(vec![exited])),
        Step::StartMachine { id: "a".into() },
        "a crash after running is restarted"
    );
    assert_eq!(
        plan(&running, &app(vec![m("a", MachineState::Failed, 2)])),
        Step::StartMachine { id: "a".into() }
    );
    let late = Desired { deadline_passed: true, ..want() };
    let sick = MachineSeen {
        check_output: Some("connection refused".into()),
        ..m("a", MachineState::Started, 2)
    };
    assert_eq!(
        plan(&late, &app(vec![sick])),
        Step::Fail(Failure::Unhealthy { report: report_of(Some("connection refused")) })
    );
    assert_eq!(
        plan(&late, &app(vec![m("a", MachineState::Starting, 2)])),
        Step::Fail(Failure::Unhealthy { report: None })
    );
}

#[test]
fn exactly_one_machine_of_ours_survives() {
    let keep = MachineSeen { checks_passing: true, ..m("b", MachineState::Started, 2) };
    let step = plan(&want(), &app(vec![m("a", MachineState::Started, 1), keep.clone()]));
    assert_eq!(step, Step::DestroyMachine { id: "a".into() }, "the older generation goes");
    let foreign =
        MachineSeen { ours: false, generation: None, ..m("hand", MachineState::Started, 0) };
    assert_eq!(
        plan(&want(), &app(vec![keep, foreign])),
        Step::DestroyMachine { id: "hand".into() },
        "adopted apps lose machines we did not create"
    );
}

#[test]
fn a_crash_loop_or_memory_kill_waits_for_a_save() {
    let report = report_of(Some("crashloop: the dev server crashed 5 times\nError: boom"));
    let crashed = MachineSeen {
        exit_code: Some(runner_exit::CRASHLOOP),
        dev: report.clone(),
        ..m("a", MachineState::Stopped, 2)
    };
    let running = Desired { was_running: true, ..want() };
    let failed = Step::Fail(Failure::MachineExited {
        code: Some(7),
        state: MachineState::Stopped,
        oom_killed: false,
        report,
    });
    assert_eq!(plan(&running, &app(vec![crashed.clone()])), failed, "not restarted blindly");
    assert_eq!(plan(&want(), &app(vec![crashed.clone()])), failed);
    let saved = Desired { restart_on_save: true, ..want() };
    assert_eq!(plan(&saved, &app(vec![crashed])), Step::StartMachine { id: "a".into() });
    let oom =
        MachineSeen { exit_code: Some(137), oom_killed: true, ..m("a", MachineState::Stopped, 2) };
    let failed = Step::Fail(Failure::MachineExited {
        code: Some(137),
        state: MachineState::Stopped,
        oom_killed: true,
        report: None,
    });
    assert_eq!(plan(&want(), &app(vec![oom.clone()])), failed);
    assert_eq!(plan(&running, &app(vec![oom.clone()])), failed, "an OOM kill is not restarted");
    assert_eq!(
        plan(&saved, &app(vec![oom])),
        Step::StartMachine { id: "a".into() },
        "after a save it may fit"
    );
}

#[test]
fn the_dev_checks_output_is_the_report() {
    use crate::fly::{CheckStatus, Machine};
    let check = |name: &str, status: &str, output: &str| CheckStatus {
        name: name.into(),
        status: status.into(),
        output: Some(output.into()),
    };
    let machine = Machine {
        id: "a".into(),
        state: MachineState::Stopped,
        checks: vec![
            check("servicecheck-00-http-3000", "critical", "connection refused"),
            check("dev", "critical", "install_failed: needs NPM_TOKEN\u{1b}[0m\nnpm ERR! 404"),
        ],
        ..Machine::default()
    };
    let seen = MachineSeen::from_machine(&machine, Uuid::nil());
    let dev = seen.dev.expect("the dev check's report");
    assert_eq!(dev.sentence.as_deref(), Some("needs NPM_TOKEN[0m"));
    assert_eq!(dev.text, "install_failed: needs NPM_TOKEN[0m\nnpm ERR! 404");
    assert_eq!(seen.check_output.as_deref(), Some("connection refused"));
}

#[test]
fn the_deadline_runs_from_the_later_of_request_and_last_change() {
    use chrono::{Duration as D, TimeZone, Utc};
    let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
    let ten = std::time::Duration::from_secs(600);
    assert!(!deadline_passed(t0, ten, t0 + D::seconds(600)));
    assert!(deadline_passed(t0, ten, t0 + D::seconds(601)));
    assert!(!deadline_passed(t0, std::time::Duration::MAX, t0 + D::days(10_000)));
}
