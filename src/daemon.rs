//! `run`: not yet implemented.
use crate::cli::CliError;
use crate::config::RunArgs;

pub async fn run_cmd(_a: RunArgs) -> Result<(), CliError> {
    Err(CliError::Runtime(anyhow::anyhow!("run: not yet implemented")))
}
