//! The reconciler. One pass over a claimed row: [`observe`] what Fly has, [`plan`] (pure) the
//! steps towards what the row asks for, [`reconcile`] executes them, [`outcome`] (pure)
//! decides what is written back and when the row is due again. The [`scheduler`] claims due
//! rows and runs passes; [`drift`] (leader only) notices changes behind our back and sweeps
//! orphans; [`background`] renews leases, listens for NOTIFY and refreshes statistics;
//! [`gate`] and [`fly_health`] decide what may run while Fly is down or our own Fly settings
//! are refused; [`local_lane`] gives verdicts that need no Fly call; [`daemon`] wires one
//! replica together.

pub mod background;
pub mod backoff;
pub mod daemon;
pub mod drift;
pub mod error;
pub mod fly_health;
pub mod gate;
pub mod limits;
pub mod local_lane;
pub mod machine_config;
pub mod observe;
pub mod outcome;
pub mod plan;
pub mod reconcile;
pub mod scheduler;
pub mod settings;
pub mod sync;
mod sync_once;
mod sync_settings;
