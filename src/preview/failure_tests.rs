//! Every failure said twice: one actionable sentence for the builder's user (no command they
//! cannot run, no retry that fails the same way), the detail for operators.

use super::*;

const APP: &str = "roseram-x";

fn exited(code: i64, oom_killed: bool, report: Option<&str>) -> Failure {
    Failure::MachineExited {
        code: Some(code),
        state: MachineState::Stopped,
        oom_killed,
        report: report_of(report),
    }
}

/// What no user-facing message may say.
fn assert_for_people(msg: &str) {
    for banned in ["fly logs", "'pending'", "retry", "RUNNER_MEMORY_MB", "INSTALL_TIMEOUT"] {
        assert!(!msg.contains(banned), "{banned:?} in {msg}");
    }
    assert_eq!(msg.matches(". ").count(), 0, "one sentence: {msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn each_runner_exit_has_its_reason_and_an_actionable_sentence() {
    let cases: [(Failure, Reason, &[&str]); 10] = [
        (exited(2, false, None), Reason::MachineExited, &["repository URL or branch"]),
        (exited(3, false, None), Reason::CloneFailed, &["could not be cloned", "branch exists"]),
        (
            exited(4, false, Some("no_script: package.json has no \"dev\" or \"start\" script")),
            Reason::NoDevScript,
            &["nothing to run", "package.json has no \"dev\" or \"start\" script", "add a"],
        ),
        (
            exited(
                4,
                false,
                Some("install_failed: @acme/ui is private and needs NPM_TOKEN\nnpm ERR! 404"),
            ),
            Reason::InstallFailed,
            &[
                "installing the project's dependencies failed: @acme/ui is private and needs NPM_TOKEN;",
            ],
        ),
        (exited(5, false, None), Reason::DevServerNeverServed, &["never answered at start"]),
        (exited(6, false, None), Reason::InstallFailed, &["took too long", "lockfile"]),
        (
            exited(7, false, Some("crashloop: the dev server crashed 5 times\nError: x")),
            Reason::DevServerCrashed,
            &["kept crashing: the dev server crashed 5 times;", "save", "starts again by itself"],
        ),
        (exited(137, true, None), Reason::OutOfMemory, &["ran out of memory", "larger machines"]),
        (exited(128, false, None), Reason::MachineExited, &["exit code 128", "repository URL"]),
        (
            Failure::Unhealthy { report: report_of(Some("starting: waiting for port 3001")) },
            Reason::HealthDeadlineExceeded,
            &["did not start serving in time: waiting for port 3001;", "restart the preview"],
        ),
    ];
    for (f, reason, wants) in cases {
        assert_eq!(failure_reason(&f), reason, "{f:?}");
        let msg = failure_message(&f, APP);
        assert_for_people(&msg);
        for want in wants {
            assert!(msg.contains(want), "{reason}: {want:?} not in {msg}");
        }
    }
}

#[test]
fn the_detail_has_the_codes_the_settings_and_the_runners_report() {
    let d = failure_detail(&exited(137, true, None), APP).unwrap();
    assert!(d.contains("exit code 137") && d.contains("RUNNER_MEMORY_MB"), "{d}");
    assert!(d.contains("fly logs -a roseram-x"), "{d}");
    let d = failure_detail(&exited(6, false, None), APP).unwrap();
    assert!(d.contains("INSTALL_TIMEOUT"), "{d}");
    let d = failure_detail(&exited(4, false, Some("install_failed: x\nnpm ERR! 404")), APP);
    let d = d.unwrap();
    assert!(
        d.ends_with("install_failed: x\nnpm ERR! 404") && !d.contains("INSTALL_TIMEOUT"),
        "{d}"
    );
    assert_eq!(failure_detail(&Failure::NameOwnedElsewhere, APP), None);
    let name = failure_message(&Failure::NameOwnedElsewhere, APP);
    assert!(name.contains("another Fly organization"), "{name}");
}

#[test]
fn a_hostile_report_is_bounded_in_both_fields() {
    let raw = format!("install_failed: {}\u{202E}\n{}", "a".repeat(5000), "b\n".repeat(5000));
    let f = exited(4, false, Some(&raw));
    let msg = failure_message(&f, APP);
    assert!(msg.len() < 500, "{}", msg.len());
    assert!(!msg.contains('\u{202E}'));
    let detail = failure_detail(&f, APP).unwrap();
    assert!(detail.len() < 1300, "{}", detail.len());
}
