//! The pure heart of the controller: from what the row asks for and what Fly shows, decide
//! the single next step. No I/O here; the executor (`reconcile`) performs the step, updates
//! its picture of Fly, and asks again.

use crate::fly::Machine;
use crate::model::MachineState;
use crate::model::runner_output::RunnerReport;
use crate::preview::machine_config::{self, DEV_CHECK, GENERATION_KEY};

pub use crate::preview::failure::{
    Failure, failure_detail, failure_message, failure_reason, report_of, runner_exit,
};

/// What the row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    pub preview_id: uuid::Uuid,
    pub generation: i64,
    /// The row already reached `running` for this generation (so a stopped machine is a crash
    /// to repair, not a failed first boot).
    pub was_running: bool,
    /// The initializing deadline has passed.
    pub deadline_passed: bool,
    /// A save arrived after a failure a fix in the code repairs (crash loop, install, no dev
    /// script, never served, out of memory): start its machine again.
    pub restart_on_save: bool,
}

/// The app as seen through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppSeen {
    Missing,
    Ours,
    /// Exists, but in an organization our token cannot see (403) — never adopt.
    Foreign,
}

/// A machine, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSeen {
    pub id: String,
    pub state: MachineState,
    pub instance_id: Option<String>,
    /// Our metadata with this row's preview id.
    pub ours: bool,
    pub generation: Option<i64>,
    pub checks_passing: bool,
    pub check_output: Option<String>,
    /// The runner's last report: the `dev` check's output (kept after the machine stopped).
    pub dev: Option<RunnerReport>,
    pub exit_code: Option<i64>,
    /// The newest exit event says the process was killed for memory.
    pub oom_killed: bool,
}

/// The preview's machine as a pass last saw it (what the row records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRef {
    pub id: String,
    pub state: MachineState,
}

impl MachineRef {
    pub fn of(m: &MachineSeen) -> Self {
        Self { id: m.id.clone(), state: m.state.clone() }
    }
}

impl MachineSeen {
    pub fn from_machine(m: &Machine, preview_id: uuid::Uuid) -> Self {
        let meta = m.metadata();
        let get = |k: &str| meta.and_then(|md| md.get(k)).map(String::as_str);
        let ours = meta.is_some_and(|md| machine_config::is_ours(md, preview_id));
        let failing = m.checks.iter().find(|c| c.status != "passing");
        let dev = m.checks.iter().find(|c| c.name == DEV_CHECK && c.status != "passing");
        Self {
            id: m.id.clone(),
            state: m.state.clone(),
            instance_id: m.instance_id.clone(),
            ours,
            generation: get(GENERATION_KEY).and_then(|g| g.parse().ok()),
            checks_passing: m.checks_passing(),
            check_output: failing.and_then(|c| c.output.clone()).filter(|o| !o.is_empty()),
            dev: report_of(dev.and_then(|c| c.output.as_deref())),
            exit_code: m.last_exit_code(),
            oom_killed: m.last_exit_oom_killed(),
        }
    }
}

/// Everything observed about one preview on Fly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub app: AppSeen,
    pub has_v6: bool,
    pub has_shared_v4: bool,
    /// Active machines in the app (destroyed ones are left out).
    pub machines: Vec<MachineSeen>,
}

impl Observed {
    /// No app.
    pub fn missing() -> Self {
        Self { app: AppSeen::Missing, has_v6: false, has_shared_v4: false, machines: Vec::new() }
    }

    /// The picture right after we created the app ourselves: nothing inside yet.
    pub fn fresh_app() -> Self {
        Self { app: AppSeen::Ours, has_v6: false, has_shared_v4: false, machines: Vec::new() }
    }
}

/// The next step for a preview that should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateApp,
    AllocateV6,
    AllocateSharedV4,
    /// Remove a machine that should not be there (a duplicate of ours, or one we did not
    /// create in an adopted app).
    DestroyMachine {
        id: String,
    },
    CreateMachine,
    UpdateMachine {
        id: String,
    },
    StartMachine {
        id: String,
    },
    /// Wait for the machine to reach `started`.
    WaitStarted {
        id: String,
        instance_id: Option<String>,
    },
    /// Started, checks not passing yet: come back shortly.
    WaitHealthy {
        id: String,
    },
    /// Machine in a transient state we do not drive (stopping, destroying, …).
    Requeue {
        id: String,
    },
    Ready {
        id: String,
        state: MachineState,
    },
    Fail(Failure),
}

/// On the way to `started` by itself: wait for it.
const STARTING: &[MachineState] = &[
    MachineState::Created,
    MachineState::Starting,
    MachineState::Updating,
    MachineState::Replacing,
    MachineState::Restarting,
];
/// Idle but ready: the proxy wakes it on the next request.
const IDLE: &[MachineState] = &[MachineState::Suspended, MachineState::Suspending];

/// Whether a machine that is not healthy yet has had its time: `init_deadline` after the
/// later of the request and the row's last status change (so a machine started again long
/// after the first deploy, after a crash or a save, gets the whole deadline too).
pub fn deadline_passed(
    since: chrono::DateTime<chrono::Utc>,
    deadline: std::time::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    chrono::Duration::from_std(deadline).is_ok_and(|d| now - since > d)
}

/// Picks the machine to keep: newest generation first, then a healthy state.
fn keeper(ours: &[&MachineSeen]) -> Option<usize> {
    let score = |m: &MachineSeen| {
        (m.generation.unwrap_or(0), m.state == MachineState::Started, m.checks_passing)
    };
    (0..ours.len())
        .max_by(|a, b| score(ours[*a]).cmp(&score(ours[*b])).then(ours[*b].id.cmp(&ours[*a].id)))
}

/// The next step towards "one healthy machine of ours, at the row's generation".
pub fn plan(want: &Desired, seen: &Observed) -> Step {
    match seen.app {
        AppSeen::Foreign => return Step::Fail(Failure::NameOwnedElsewhere),
        AppSeen::Missing => return Step::CreateApp,
        AppSeen::Ours => {}
    }
    if !seen.has_v6 {
        return Step::AllocateV6;
    }
    if !seen.has_shared_v4 {
        return Step::AllocateSharedV4;
    }
    let ours: Vec<&MachineSeen> = seen.machines.iter().filter(|m| m.ours).collect();
    if let Some(foreign) = seen.machines.iter().find(|m| !m.ours) {
        return Step::DestroyMachine { id: foreign.id.clone() };
    }
    let Some(keep) = keeper(&ours) else { return Step::CreateMachine };
    if let Some(extra) = ours.iter().enumerate().find(|(i, _)| *i != keep) {
        return Step::DestroyMachine { id: extra.1.id.clone() };
    }
    machine_step(want, ours[keep])
}

fn machine_step(want: &Desired, m: &MachineSeen) -> Step {
    let id = m.id.clone();
    if m.generation != Some(want.generation) {
        return Step::UpdateMachine { id };
    }
    let stopped = matches!(m.state, MachineState::Stopped | MachineState::Failed);
    match &m.state {
        MachineState::Started if m.checks_passing => Step::Ready { id, state: m.state.clone() },
        MachineState::Started if want.deadline_passed => Step::Fail(unhealthy(m)),
        MachineState::Started => Step::WaitHealthy { id },
        s if IDLE.contains(s) => Step::Ready { id, state: m.state.clone() },
        s if STARTING.contains(s) && want.deadline_passed => Step::Fail(unhealthy(m)),
        s if STARTING.contains(s) => Step::WaitStarted { id, instance_id: m.instance_id.clone() },
        // A save arrived after a failure a code fix repairs: the runner clones it afresh.
        _ if stopped && want.restart_on_save => Step::StartMachine { id },
        // Starting it again would repeat what stopped it (a later save starts it again):
        // killed for memory, a dev server that crash-looped, or a first boot that failed.
        _ if stopped && (!want.was_running || m.oom_killed || crashed(m)) => {
            Step::Fail(Failure::MachineExited {
                code: m.exit_code,
                state: m.state.clone(),
                oom_killed: m.oom_killed,
                report: m.dev.clone(),
            })
        }
        _ if stopped => Step::StartMachine { id },
        _ => Step::Requeue { id },
    }
}

fn crashed(m: &MachineSeen) -> bool {
    m.exit_code == Some(runner_exit::CRASHLOOP)
}

fn unhealthy(m: &MachineSeen) -> Failure {
    let report = m.dev.clone().or_else(|| report_of(m.check_output.as_deref()));
    Failure::Unhealthy { report }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
