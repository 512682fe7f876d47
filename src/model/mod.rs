//! The row's vocabulary, free of I/O and of every other module: typed states, app naming
//! and input validation.

pub mod naming;
pub mod state;
pub mod validate;
