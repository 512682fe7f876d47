//! The preview domain: what one row of `public.fly_preview_apps` means on Fly. One pass over a
//! claimed row: [`observe`] what Fly has, [`plan`] (pure) the steps towards what the row asks
//! for, [`reconcile`] executes them, [`outcome`] (pure) decides what is written back and when
//! the row is due again; [`error`] classifies every failure into one policy, [`failure`] says
//! why a preview cannot run, to its user and to operators. [`teardown`]
//! destroys the apps of deleted rows (their tombstones are a second queue). [`drift`] (leader
//! only) notices changes behind our back and sweeps orphans; [`sync`] pushes saves to running
//! previews; [`gate`] decides what may run while Fly is down or our own Fly settings are
//! refused; [`local_lane`] gives verdicts that need no Fly call; [`limits`] holds the per-user
//! quota and redeploy budget; [`expiry`] (pure) and [`idle`] expire unused previews and wake
//! opened ones; [`machine_config`] is what a row asks Fly to run; [`quiet`] counts passes that
//! changed nothing; [`refresh`] spares the gauges' queries at rest; [`timeline`] decides the
//! events a write records; [`daemon`] wires one replica together; [`stop`] tears a preview
//! down to an empty app.

pub(crate) mod background;
pub mod cost;
pub(crate) mod ctx;
pub mod daemon;
pub(crate) mod deploy;
pub(crate) mod drift;
pub(crate) mod env;
pub(crate) mod error;
pub(crate) mod expiry;
pub(crate) mod failure;
pub(crate) mod gate;
pub(crate) mod idle;
pub(crate) mod limits;
pub(crate) mod local_lane;
pub mod machine_config;
pub(crate) mod observe;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod quiet;
pub(crate) mod reconcile;
pub(crate) mod refresh;
pub mod settings;
pub(crate) mod stop;
pub mod sync;
pub(crate) mod teardown;
#[cfg(test)]
mod test_rows;
pub(crate) mod timeline;
