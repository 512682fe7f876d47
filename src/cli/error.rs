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
    /// A transaction pooler or a role that cannot see every row is a configuration problem
    /// of `DATABASE_URL` (exit 2, one line); everything else is a runtime failure.
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::TransactionPooler => CliError::Config(ConfigError::new(
                "DATABASE_URL",
                "points at a transaction pooler; use the session pooler (port 5432) or a direct connection",
            )),
            store::StoreError::Access(line) => {
                CliError::Config(ConfigError::new("DATABASE_URL", line))
            }
            e => CliError::Runtime(e.into()),
        }
    }
}
