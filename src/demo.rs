//! `demo`: not yet implemented.
use crate::cli::CliError;
use crate::config::DemoArgs;

pub async fn run(_a: DemoArgs) -> Result<(), CliError> {
    Err(CliError::Runtime(anyhow::anyhow!("demo: not yet implemented")))
}
