//! Command line of the bench.

use std::time::Duration;

use clap::Parser;

pub use fly_preview_controller::cli::config::ConfigError;

/// The churn scenarios (`--churn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChurnKind {
    /// Many users each toggling their running previews between stopped and pending.
    Toggling,
    /// Random inserts, branch changes, stops, redeploys and deletes at a steady rate.
    Steady,
}

/// The Fly-in-trouble scenarios (`--scenario`; see BENCHMARKS.md, "Fly in trouble").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// Rows deploying while the simulator answers a share of calls 5xx, all of them slowly.
    PartialDegradation,
    /// A few tenants' syncs outlive exec's timeout while another user saves.
    HangingSync,
    /// Two replicas on one database; the leader is killed (SIGKILL) under deploying rows.
    Failover,
}

#[derive(Debug, Parser)]
#[command(
    name = "fly-preview-bench",
    version,
    about = "Benchmark fly-preview-controller against the Fly API simulator, next to the naive baseline"
)]
pub struct BenchArgs {
    /// The controller binary to benchmark (default: `fly-preview-controller` beside this binary;
    /// build both with `cargo build --release --workspace`).
    #[arg(long, env = "CONTROLLER_BIN")]
    pub controller_bin: Option<std::path::PathBuf>,
    /// Rows per run (repeatable: --rows 1000 --rows 10000).
    #[arg(long = "rows", default_value = "1000")]
    pub rows: Vec<usize>,
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Simulated Fly API latency per request.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "50ms")]
    pub api_latency: Duration,
    /// Simulated machine boot time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub boot_time: Duration,
    /// Simulated delay until the first passing service check.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub check_delay: Duration,
    /// Controller concurrency for the run.
    #[arg(long, default_value_t = 256)]
    pub concurrency: u16,
    /// Skip the naive baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Skip the ideal driver (the bound fleet times are compared with).
    #[arg(long)]
    pub no_ideal: bool,
    /// Skip the abuse scenario (one user: 2,000 rows + 500 toggles; a second user's row).
    #[arg(long)]
    pub no_abuse: bool,
    /// Steady-state observation window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub steady_window: Duration,
    /// Wait this long after convergence (and the 11 s settle) before the steady window, to
    /// watch the fleet at rest rather than settling.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub steady_delay: Duration,
    /// Longest wait for one fleet to converge; past it the run reports what converged.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15m")]
    pub converge_budget: Duration,
    /// Time budget of the naive baseline; the rest is extrapolated from its per-row time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "120s")]
    pub baseline_budget: Duration,
    /// The baseline runs only for fleets of at most this many rows.
    #[arg(long, default_value_t = 1000)]
    pub baseline_max_rows: usize,
    /// Enforce Fly's rate limits in the simulator (`--sim-rate-limits false` to lift them).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sim_rate_limits: bool,
    /// Rows inserted (and rows updated) one at a time to measure the wake latency.
    #[arg(long, default_value_t = 40)]
    pub wake_samples: usize,
    /// Exit with status 1 unless every fleet converged (CI smoke run).
    #[arg(long)]
    pub fail_unconverged: bool,
    /// Sync on save instead of the fleet runs: this many saves (`revision` writes), timed
    /// until `served_revision` shows them (see BENCHMARKS.md, "Sync on save").
    #[arg(long, default_value_t = 0)]
    pub saves: usize,
    /// Running previews the saves go to, round-robin.
    #[arg(long, default_value_t = 50)]
    pub save_rows: usize,
    /// Simulated run time of the runner's `sync` inside the machine (git fetch + reset).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    pub sync_time: Duration,
    /// A churn scenario instead of the fleet runs (see BENCHMARKS.md, "Churn").
    #[arg(long, value_enum)]
    pub churn: Option<ChurnKind>,
    /// How long the churn lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3m")]
    pub churn_duration: Duration,
    /// Users taking part in the churn.
    #[arg(long, default_value_t = 20)]
    pub churn_users: usize,
    /// `toggling`: running previews per user.
    #[arg(long, default_value_t = 10)]
    pub churn_previews: usize,
    /// `toggling`: how often each preview flips between stopped and pending.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub churn_toggle_every: Duration,
    /// `steady`: rows at the start (spread over `--churn-users`).
    #[arg(long, default_value_t = 2000)]
    pub churn_rows: usize,
    /// `steady`: operations per second.
    #[arg(long, default_value_t = 10.0)]
    pub churn_ops_per_s: f64,
    /// A Fly-in-trouble scenario instead of the fleet runs (see BENCHMARKS.md).
    #[arg(long, value_enum)]
    pub scenario: Option<ScenarioKind>,
    /// `partial-degradation` / `failover`: rows deploying when the fault starts.
    #[arg(long, default_value_t = 300)]
    pub scenario_rows: usize,
    /// `partial-degradation` / `hanging-sync`: how long the fault lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub fault_duration: Duration,
    /// `partial-degradation`: share of Fly calls answered 503 during the fault.
    #[arg(long, default_value_t = 0.2)]
    pub fault_error_rate: f64,
    /// `partial-degradation`: latency added to every Fly call during the fault.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub fault_latency: Duration,
    /// `hanging-sync`: previews (of one user) whose `sync` never answers.
    #[arg(long, default_value_t = 6)]
    pub hanging_rows: usize,
    /// The at-rest scenario instead of the fleet runs, watched for this long: the first
    /// `--rows` previews, 30 % in `error`, half suspended by autostop (BENCHMARKS.md, "At rest").
    #[arg(long, value_parser = humantime::parse_duration)]
    pub at_rest: Option<Duration>,
    /// Instead of the fleet runs: the first `--rows` previews settled on the simulator, then
    /// the daemon's first full verification of them, its memory (BENCHMARKS.md).
    #[arg(long)]
    pub walk_memory: bool,
    /// The bench's own database on that server, dropped and recreated for every run.
    #[arg(long, default_value = "fly_preview_bench")]
    pub db_name: String,
}
