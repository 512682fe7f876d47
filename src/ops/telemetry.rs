//! Logging: `tracing` with a human format by default and JSON for production; `RUST_LOG`
//! overrides the default filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,reqwest=warn";
/// Commands whose screen output is the point (demo, status, app-name) log warnings only.
pub const QUIET_FILTER: &str = "warn,sqlx::postgres::notice=warn";

/// Installs the global subscriber (a second call is a no-op, which keeps tests simple).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colours only on a terminal: piped or collected logs carry no ANSI escapes.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}

/// Log format: text for people, json for production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
