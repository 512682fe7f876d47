//! Command dispatch. Configuration problems exit with status 2 and one line naming the
//! setting; runtime failures exit with status 1 and one line.

use std::process::ExitCode;

pub mod commands;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod size;
pub mod status;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::config::{Cli, Command};
use crate::ops::telemetry;
pub use error::CliError;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    let quiet = !matches!(cli.command, Command::Run(_) | Command::Migrate(_));
    telemetry::init(
        cli.log_format,
        if quiet { telemetry::QUIET_FILTER } else { telemetry::DEFAULT_FILTER },
    );
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Config(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(CliError::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as usual; errors become one line and exit status 2.
fn clap_error(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let line = if e.kind() == ErrorKind::MissingRequiredArgument {
        // "error: the following required arguments were not provided:" + the arguments
        let head: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("Usage:"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        head.join(" ")
    } else {
        text.lines().next().unwrap_or("error: invalid arguments").to_string()
    };
    eprintln!("{line}");
    ExitCode::from(2)
}

async fn dispatch(cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::AppName(a) => commands::app_name(&a),
        Command::Migrate(a) => commands::migrate(&a).await,
        Command::Status(a) => commands::status(&a).await,
        Command::Run(a) => commands::run(*a).await,
        #[cfg(feature = "demo")]
        Command::Demo(a) => demo::run(a).await,
    }
}
