//! `simulate`: not yet implemented.
use crate::cli::CliError;
use crate::config::SimulateArgs;

pub async fn run(_a: SimulateArgs) -> Result<(), CliError> {
    Err(CliError::Runtime(anyhow::anyhow!("simulate: not yet implemented")))
}
