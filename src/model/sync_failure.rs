//! Why a sync on save did not confirm a commit: the `kind` label of
//! `fly_preview_sync_failures_total` and the `status_reason` the sync lane writes for it.

use super::state::{Reason, label_enum};

label_enum! {
    /// One failed sync attempt, by cause.
    SyncFailureKind {
        /// No answer within the exec or runner timeout.
        Timeout = "timeout",
        /// The runner answered that the fetch (or reset / install) failed.
        SyncFailed = "sync_failed",
        /// The runner's sync server was not running in the machine.
        RunnerNotRunning = "runner_not_running",
        /// The fetch worked but the branch does not have `revision` (yet).
        CommitNotFound = "commit_not_found",
        /// `revision` changed dependencies and is installing beside the running dev server.
        Installing = "installing",
        /// The runner's answer could not be read.
        BadAnswer = "bad_answer",
        /// The machine is not started (exec refused); the row is released, not marked.
        MachineNotStarted = "machine_not_started",
        /// The exec call failed at the Fly API.
        FlyApi = "fly_api",
        /// The database write failed.
        Db = "db",
    }
}

impl SyncFailureKind {
    /// The `status_reason` written for this failure.
    pub const fn reason(self) -> Reason {
        match self {
            SyncFailureKind::Timeout => Reason::SyncTimedOut,
            SyncFailureKind::CommitNotFound => Reason::SyncCommitNotFound,
            SyncFailureKind::Installing => Reason::SyncInstalling,
            SyncFailureKind::SyncFailed
            | SyncFailureKind::RunnerNotRunning
            | SyncFailureKind::BadAnswer
            | SyncFailureKind::MachineNotStarted
            | SyncFailureKind::FlyApi
            | SyncFailureKind::Db => Reason::SyncFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_map_to_sync_reasons() {
        for k in SyncFailureKind::ALL {
            assert_eq!(k.as_str().parse::<SyncFailureKind>(), Ok(*k));
            assert!(Reason::SYNC.contains(&k.reason()), "{k}");
        }
        assert_eq!(SyncFailureKind::Timeout.reason(), Reason::SyncTimedOut);
        assert_eq!(SyncFailureKind::BadAnswer.reason(), Reason::SyncFailed);
    }
}
