//! Command dispatch. Configuration problems exit with status 2 and one line naming the
//! setting; runtime failures exit with status 1 and one line.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::config::{AppNameArgs, Cli, Command, ConfigError, MigrateArgs, StatusArgs};
use crate::{naming, status, store, telemetry};

/// Why a command failed: bad configuration (exit 2) or a runtime failure (exit 1).
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

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e),
    };
    let quiet = matches!(
        cli.command,
        Command::Demo(_) | Command::Bench(_) | Command::Status(_) | Command::AppName(_)
    );
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
        Command::AppName(a) => app_name(&a),
        Command::Migrate(a) => migrate(&a).await,
        Command::Status(a) => status_cmd(&a).await,
        Command::Run(a) => crate::daemon::run_cmd(*a).await,
        Command::Demo(a) => crate::demo::run(a).await,
        Command::Simulate(a) => crate::sim_cmd::run(a).await,
        Command::Bench(a) => crate::bench::run(a).await,
    }
}

fn app_name(a: &AppNameArgs) -> Result<(), CliError> {
    naming::validate_prefix(&a.app_prefix)
        .map_err(|e| ConfigError::new("APP_PREFIX", e.to_string()))?;
    println!("{}", naming::app_name(&a.app_prefix, &a.user_id, &a.project_id));
    Ok(())
}

async fn migrate(a: &MigrateArgs) -> Result<(), CliError> {
    let pool = store::connect(&a.db.require()?, 2).await?;
    if a.dry_run {
        print!("{}", store::migrate::dry_run(&pool).await?);
        return Ok(());
    }
    let applied = store::migrate::run(&pool).await?;
    if applied.is_empty() {
        println!("migrate: database is up to date (nothing applied)");
    } else {
        println!("migrate: applied {} migration(s): {applied:?}", applied.len());
    }
    Ok(())
}

async fn status_cmd(a: &StatusArgs) -> Result<(), CliError> {
    let pool = store::connect(&a.db.require()?, 2).await?;
    let rows = store::Store::new(pool, "status").list_all().await?;
    let now = chrono::Utc::now();
    let lines: Vec<status::StatusLine> =
        rows.iter().map(|r| status::StatusLine::from_row(r, now)).collect();
    if a.json {
        let json = serde_json::to_string_pretty(&lines).map_err(anyhow::Error::from)?;
        println!("{json}");
    } else {
        print!("{}", status::table(&lines, now));
    }
    Ok(())
}
