//! What the simulated runners serve: revisions pushed per app, served per machine, and the
//! `sync` faults and run time (state for `exec`, shared by the server and the handle).

use std::collections::HashMap;
use std::time::Duration;

/// How the simulated runner's `sync` goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFault {
    /// `git fetch` fails: `{"ok":false,"error":"fetch_failed",…}`, exit 1.
    FetchFailed,
    /// No runner on the control socket: `{"ok":false,"error":"not_running",…}`, exit 3.
    NotRunning,
    /// The fetch never finishes: the runner's `--timeout` answers (exit 1), or the exec's
    /// own timeout (408) when that is shorter.
    Hang,
    /// The exec itself never returns (the tenant's code holds the machine, the runner's own
    /// `--timeout` never answers): flyd's deadline answers **408** `deadline_exceeded` when
    /// the exec's `timeout` passes.
    Wedged,
    /// The fetch succeeds but the pushed commit is not there yet: answers the old revision.
    Stale,
    /// The pushed commit changed dependencies: answers the old revision plus
    /// `"installing": <pushed>` (the runner installs it beside the running dev server).
    Installing,
}

/// Revisions and sync behaviour, per app / machine.
#[derive(Debug, Default)]
pub(crate) struct ExecState {
    pub pushed: HashMap<String, String>,
    pub served: HashMap<String, String>,
    pub faults: HashMap<String, SyncFault>,
    pub sync_time: Option<Duration>,
}

impl ExecState {
    /// What a machine serves before any sync: a revision derived from the app name.
    pub(crate) fn initial(app: &str) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in app.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}{h:016x}{:08x}", h >> 32)
    }

    pub(crate) fn served(&self, app: &str, id: &str) -> String {
        self.served.get(id).cloned().unwrap_or_else(|| Self::initial(app))
    }
}
