//! The pure planner: one table of situations and the step each must produce.

use super::*;
use uuid::Uuid;

fn want() -> Desired {
    Desired { preview_id: Uuid::nil(), generation: 2, was_running: false, deadline_passed: false }
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
            oom_killed: false
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
        Step::Fail(Failure::Unhealthy { output: Some("connection refused".into()) })
    );
    assert_eq!(
        plan(&late, &app(vec![m("a", MachineState::Starting, 2)])),
        Step::Fail(Failure::Unhealthy { output: None })
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
fn failure_messages_are_actionable() {
    let msg = failure_message(
        &Failure::MachineExited {
            code: Some(128),
            state: MachineState::Stopped,
            oom_killed: false,
        },
        "roseram-x",
    );
    assert!(
        msg.contains("exited with code 128")
            && msg.contains("fly logs -a roseram-x")
            && msg.contains("'pending'"),
        "{msg}"
    );
    let msg = failure_message(
        &Failure::Unhealthy { output: Some("connection refused\n".into()) },
        "roseram-x",
    );
    assert!(msg.contains("(last check: connection refused);"), "{msg}");
    assert!(
        failure_message(&Failure::NameOwnedElsewhere, "roseram-x")
            .contains("another Fly organization")
    );
}

#[test]
fn runner_exits_name_the_cause_and_the_setting() {
    let exited = |code: i64, oom_killed: bool| {
        failure_message(
            &Failure::MachineExited { code: Some(code), state: MachineState::Stopped, oom_killed },
            "roseram-x",
        )
    };
    for (code, oom, wants) in [
        (
            3,
            false,
            &["exited with code 3", "could not clone", "github_repo_url", "github_branch"][..],
        ),
        (4, false, &["exited with code 4", "package.json", "\"dev\" or \"start\" script"]),
        (5, false, &["exited with code 5", "dev server keeps exiting"]),
        (6, false, &["exited with code 6", "INSTALL_TIMEOUT"]),
        (137, true, &["out of memory", "RUNNER_MEMORY_MB", "exited with code 137"]),
        (6, true, &["out of memory", "RUNNER_MEMORY_MB"]),
    ] {
        let msg = exited(code, oom);
        for want in wants {
            assert!(msg.contains(want), "code {code} oom {oom}: {want:?} not in {msg}");
        }
        assert!(msg.contains("fly logs -a roseram-x") && msg.contains("'pending'"), "{msg}");
    }
    let oom =
        MachineSeen { exit_code: Some(137), oom_killed: true, ..m("a", MachineState::Stopped, 2) };
    let failed = Step::Fail(Failure::MachineExited {
        code: Some(137),
        state: MachineState::Stopped,
        oom_killed: true,
    });
    assert_eq!(plan(&want(), &app(vec![oom.clone()])), failed);
    let running = Desired { was_running: true, ..want() };
    assert_eq!(plan(&running, &app(vec![oom])), failed, "an OOM kill is not restarted again");
}
