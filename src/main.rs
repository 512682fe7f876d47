//! Thin entry point: parse the command line, hand over to `cli::main`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    fly_preview_controller::cli::main()
}
