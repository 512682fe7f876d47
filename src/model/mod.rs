//! The row's vocabulary, free of I/O and of every other module: typed states (the row's
//! and Fly's machine states), sync failure kinds, app naming, input validation and what the
//! preview runner reports about its dev server.

pub mod invisible;
pub mod machine_state;
pub mod naming;
pub mod runner_output;
pub mod state;
pub mod sync_failure;
pub mod timeline;
pub mod validate;

pub use machine_state::MachineState;
pub use sync_failure::SyncFailureKind;
