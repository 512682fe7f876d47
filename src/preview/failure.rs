//! Why a preview cannot run, said twice: one sentence for the person in the builder
//! (`error_message`: what happened and what they can do, never a command they cannot run or a
//! retry that would fail the same way), and the detail for operators (`status_detail`: exit
//! code, state, the runner's report, the setting to change).

use crate::model::MachineState;
use crate::model::runner_output::{Phase, RunnerReport, clip_bytes};
use crate::model::state::Reason;

/// Why a preview cannot be made to work without the row (or the world) changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    NameOwnedElsewhere,
    MachineExited {
        code: Option<i64>,
        state: MachineState,
        oom_killed: bool,
        /// What the runner reported last (the `dev` check's output).
        report: Option<RunnerReport>,
    },
    Unhealthy {
        /// The runner's report, else the first failing check's output.
        report: Option<RunnerReport>,
    },
}

/// Exit codes of the preview runner (deploy/runner/lib/exitcodes.mjs).
pub mod runner_exit {
    pub const INVALID_INPUT: i64 = 2;
    pub const CLONE_FAILED: i64 = 3;
    pub const NOTHING_TO_RUN: i64 = 4;
    pub const NEVER_SERVED: i64 = 5;
    pub const INSTALL_TIMEOUT: i64 = 6;
    /// The dev server served, then crashed again and again.
    pub const CRASHLOOP: i64 = 7;
}

/// `status_reason` for a failure.
pub fn failure_reason(f: &Failure) -> Reason {
    use runner_exit::*;
    match f {
        Failure::NameOwnedElsewhere => Reason::NameOwnedElsewhere,
        Failure::MachineExited { oom_killed: true, .. } => Reason::OutOfMemory,
        Failure::MachineExited { code: Some(code), report, .. } => match *code {
            CLONE_FAILED => Reason::CloneFailed,
            NOTHING_TO_RUN if phase(report) == Some(Phase::NoScript) => Reason::NoDevScript,
            NOTHING_TO_RUN | INSTALL_TIMEOUT => Reason::InstallFailed,
            NEVER_SERVED => Reason::DevServerNeverServed,
            CRASHLOOP => Reason::DevServerCrashed,
            _ => Reason::MachineExited,
        },
        Failure::MachineExited { code: None, .. } => Reason::MachineExited,
        Failure::Unhealthy { .. } => Reason::HealthDeadlineExceeded,
    }
}

fn phase(report: &Option<RunnerReport>) -> Option<Phase> {
    report.as_ref().and_then(|r| r.phase)
}

/// What happened, and what the person can do about it, for each reason.
fn lead_and_advice(f: &Failure, reason: Reason) -> (String, &'static str) {
    let slow = matches!(f, Failure::MachineExited { code: Some(runner_exit::INSTALL_TIMEOUT), .. });
    let (lead, advice) = match reason {
        _ if slow => ("installing the project's dependencies took too long", SLOW_INSTALL),
        Reason::OutOfMemory => ("the dev server ran out of memory", OUT_OF_MEMORY),
        Reason::CloneFailed => ("the repository could not be cloned", CLONE),
        Reason::NoDevScript => ("the project has nothing to run", NO_SCRIPT),
        Reason::InstallFailed => ("installing the project's dependencies failed", FIX_AND_SAVE),
        Reason::DevServerNeverServed => {
            ("the dev server exited or never answered at start", FIX_AND_SAVE)
        }
        Reason::DevServerCrashed => ("the dev server kept crashing", FIX_AND_SAVE),
        Reason::HealthDeadlineExceeded => (
            "the dev server did not start serving in time",
            "fix what its output in the details shows, then restart the preview",
        ),
        _ => return other_exit(f),
    };
    (lead.to_owned(), advice)
}

/// The failures a fix in the project's code repairs: the next save starts the preview again
/// (trigger `fly_preview_apps_12_restart_on_save`).
const FIX_AND_SAVE: &str =
    "fix the error shown in the details and save: the preview starts again by itself";
const SLOW_INSTALL: &str = "make the install smaller or faster (fewer dependencies, a committed lockfile) and save: the preview starts again by itself";
const OUT_OF_MEMORY: &str = "make it load less at start and save (the preview starts again by itself), or ask the preview service's operators for larger machines";
const CLONE: &str = "check the repository URL and that the branch exists (a private repository needs access granted)";
const NO_SCRIPT: &str = "add a \"dev\" or \"start\" script to package.json (in the project's root directory) and save: the preview starts again by itself";

fn other_exit(f: &Failure) -> (String, &'static str) {
    match f {
        Failure::MachineExited { code: Some(runner_exit::INVALID_INPUT), .. } => (
            "the preview refused the repository URL or branch".to_owned(),
            "check both in the project's settings",
        ),
        Failure::MachineExited { code: Some(c), .. } => (
            format!("the preview machine stopped while starting (exit code {c})"),
            "check the repository URL, the branch and the project's dev script",
        ),
        _ => (
            "the preview machine did not start".to_owned(),
            "restart the preview; if it happens again, the preview service's operators have the details",
        ),
    }
}

/// One sentence a person in the builder can act on, for `error_message`. The runner's own
/// sentence (cleaned and bounded) names the precise cause when it gave one.
pub fn failure_message(f: &Failure, app: &str) -> String {
    let reason = failure_reason(f);
    if reason == Reason::NameOwnedElsewhere {
        return format!(
            "the preview's name {app} is taken by another Fly organization; rename the project to get a new name"
        );
    }
    let (lead, advice) = lead_and_advice(f, reason);
    let report = match f {
        Failure::MachineExited { report, .. } | Failure::Unhealthy { report } => report.as_ref(),
        Failure::NameOwnedElsewhere => None,
    };
    match report.and_then(|r| r.sentence.as_deref()) {
        Some(why) => format!("{lead}: {}; {advice}", why.trim_end_matches(['.', ';'])),
        None => format!("{lead}; {advice}"),
    }
}

/// The operators' detail, for `status_detail`: exit code, state, the runner's report, and the
/// setting behind the cause.
pub fn failure_detail(f: &Failure, app: &str) -> Option<String> {
    let (head, report) = match f {
        Failure::NameOwnedElsewhere => return None,
        Failure::MachineExited { code, state, oom_killed, report } => {
            let setting = match (oom_killed, code) {
                (true, _) => "; killed for memory: raise RUNNER_MEMORY_MB",
                (false, Some(runner_exit::INSTALL_TIMEOUT)) => "; raise INSTALL_TIMEOUT",
                _ => "",
            };
            let code = code.map_or_else(|| "no exit code".to_owned(), |c| format!("exit code {c}"));
            (format!("machine {state}, {code}{setting}; logs: fly logs -a {app}"), report)
        }
        Failure::Unhealthy { report } => {
            (format!("the dev check did not pass in time; logs: fly logs -a {app}"), report)
        }
    };
    Some(match report {
        Some(r) => format!("{head}\n{}", r.text),
        None => head,
    })
}

/// A failing check's output as a report (cleaned, bounded), if it says anything.
pub fn report_of(output: Option<&str>) -> Option<RunnerReport> {
    output.map(|o| clip_bytes(o, 64 * 1024)).and_then(RunnerReport::parse)
}

#[cfg(test)]
#[path = "failure_tests.rs"]
mod tests;
