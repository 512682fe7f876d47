//! `bench`: not yet implemented.
use crate::cli::CliError;
use crate::config::BenchArgs;

pub async fn run(_a: BenchArgs) -> Result<(), CliError> {
    Err(CliError::Runtime(anyhow::anyhow!("bench: not yet implemented")))
}
