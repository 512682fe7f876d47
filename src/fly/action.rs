//! The calls the client makes: their metric labels, rate-limit buckets, retry and
//! classification rules.

use super::error::{Classify, FlyError};
use super::ratelimit::Limits;

/// Every call the client makes; the label used in metrics and the rate-limit bucket name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    CreateApp,
    GetApp,
    DeleteApp,
    ListApps,
    ListIps,
    AssignIp,
    ListMachines,
    CreateMachine,
    GetMachine,
    UpdateMachine,
    StartMachine,
    StopMachine,
    DestroyMachine,
    WaitMachine,
    ListOrgMachines,
    ExecMachine,
    ListSecrets,
    UpdateSecrets,
}

impl Action {
    /// Every action: a test holds `ops::metrics::FLY_ACTIONS` (the `action` labels the
    /// metrics pre-initialise, below this module) to this list.
    #[cfg(test)]
    pub const ALL: &'static [Action] = &[
        Action::CreateApp,
        Action::GetApp,
        Action::DeleteApp,
        Action::ListApps,
        Action::ListIps,
        Action::AssignIp,
        Action::ListMachines,
        Action::CreateMachine,
        Action::GetMachine,
        Action::UpdateMachine,
        Action::StartMachine,
        Action::StopMachine,
        Action::DestroyMachine,
        Action::WaitMachine,
        Action::ListOrgMachines,
        Action::ExecMachine,
        Action::ListSecrets,
        Action::UpdateSecrets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::CreateApp => "create_app",
            Action::GetApp => "get_app",
            Action::DeleteApp => "delete_app",
            Action::ListApps => "list_apps",
            Action::ListIps => "list_ips",
            Action::AssignIp => "assign_ip",
            Action::ListMachines => "list_machines",
            Action::CreateMachine => "create_machine",
            Action::GetMachine => "get_machine",
            Action::UpdateMachine => "update_machine",
            Action::StartMachine => "start_machine",
            Action::StopMachine => "stop_machine",
            Action::DestroyMachine => "destroy_machine",
            Action::WaitMachine => "wait_machine",
            Action::ListOrgMachines => "list_org_machines",
            Action::ExecMachine => "exec_machine",
            Action::ListSecrets => "list_secrets",
            Action::UpdateSecrets => "update_secrets",
        }
    }

    pub(super) fn limits(self) -> Limits {
        match self {
            Action::GetMachine => Limits::GET_MACHINE,
            Action::DeleteApp => Limits::APP_DELETES,
            _ => Limits::PER_ACTION,
        }
    }

    /// Reads, deletes, start/stop and waits may be repeated; creates, updates, IP
    /// assignment and exec may not.
    pub(super) fn idempotent(self) -> bool {
        !matches!(
            self,
            Action::CreateApp
                | Action::CreateMachine
                | Action::UpdateMachine
                | Action::AssignIp
                | Action::ExecMachine
        )
    }

    /// For `/wait`, a 408 means "not yet" and is handled by the caller's loop.
    pub fn should_retry(self, err: &FlyError) -> bool {
        match self {
            _ if !self.idempotent() => false,
            Action::WaitMachine => {
                matches!(err, FlyError::Transient(_) | FlyError::RateLimited { .. })
            }
            _ => err.is_retryable(),
        }
    }

    pub(super) fn classify(self) -> Classify {
        Classify { ambiguous: self == Action::CreateMachine, create_app: self == Action::CreateApp }
    }
}
