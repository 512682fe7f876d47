//! Why a command failed: bad configuration (exit 2) or a runtime failure (exit 1).

use crate::cli::config::ConfigError;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Runtime(#[from] anyhow::Error),
}

impl From<store::StoreError> for CliError {
    fn from(e: store::StoreError) -> Self {
        CliError::Runtime(e.into())
    }
}
