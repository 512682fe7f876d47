//! Command line and environment configuration. Every flag has an env fallback; durations
//! are human strings (`30s`, `5m`). Bad configuration is reported as one line naming the
//! setting and exits with status 2.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::fly::Secret;
use crate::model::naming;
use crate::model::validate::Rules;
pub use crate::ops::telemetry::LogFormat;
use crate::preview::machine_config::{self, RunnerSettings};
use crate::preview::settings::Settings;
use crate::runtime::backoff::Backoff;

#[derive(Debug, Parser)]
#[command(
    name = "fly-preview-controller",
    version,
    about = "Reconciles fly_preview_apps rows into Fly.io preview apps"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: text for people, json for production.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller daemon.
    Run(Box<RunArgs>),
    /// Apply the database migrations and exit.
    Migrate(MigrateArgs),
    /// Everything local: embedded Fly API simulator, sample rows, live status.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Print a table of previews from the database.
    Status(StatusArgs),
    /// Print the Fly app name derived for a user and project.
    AppName(AppNameArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Postgres connection string (direct or session pooler, never the 6543 transaction pooler).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DbArgs {
    pub fn require(&self) -> Result<Secret, ConfigError> {
        let url = self.database_url.as_deref().filter(|u| !u.trim().is_empty());
        let url =
            url.ok_or(ConfigError::new("DATABASE_URL", "is not set (or pass --database-url)"))?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://",
            ));
        }
        if url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "could not be parsed (check host, port and percent-encoding of the password)",
            ));
        }
        Ok(Secret::new(url))
    }
}

#[derive(Debug, Clone, Args)]
pub struct FlyArgs {
    /// Fly API token (org token). Also read from FLY_IO_API_TOKEN.
    #[arg(long = "fly-api-token", env = "FLY_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Fly Machines API base URL.
    #[arg(long = "fly-api-url", env = "FLY_API_URL", default_value = "https://api.machines.dev")]
    pub api_url: String,
    /// Fly organization slug the previews live in.
    #[arg(long = "fly-org", env = "FLY_ORG", default_value = "personal")]
    pub org: String,
    /// Per-request timeout for Fly API calls.
    #[arg(long, env = "FLY_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub fly_request_timeout: Duration,
    /// Fly region for new machines (default: Fly picks one near the API endpoint).
    #[arg(long = "fly-region", env = "FLY_REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Prefix of every derived app name (naming rule: PREFIX-md5(user-project)[..8]).
    #[arg(long, env = "APP_PREFIX", default_value = naming::DEFAULT_PREFIX)]
    pub app_prefix: String,
    /// Hosts repo URLs may point to (comma separated).
    #[arg(long, env = "ALLOWED_REPO_HOSTS", value_delimiter = ',', default_value = "github.com")]
    pub allowed_repo_hosts: Vec<String>,
    /// Reconciles running at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub concurrency: u16,
    /// Backstop poll for due rows. The loop wakes on NOTIFY, on finished passes and at the
    /// earliest due row's time anyway; this only bounds what a lost notification can delay.
    #[arg(long, env = "POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    pub poll_interval: Duration,
    /// How long after creating, updating or starting a machine the row is looked at again
    /// (no worker waits while Fly boots it).
    #[arg(long, env = "BOOT_ESTIMATE", value_parser = humantime::parse_duration, default_value = "3s")]
    pub boot_estimate: Duration,
    /// Previews one user may have wanting to run at once; more get status `error`, reason
    /// `QuotaExceeded`, and deploy by themselves when the user stops or deletes one (0 = no limit).
    #[arg(long, env = "MAX_PREVIEWS_PER_USER", default_value_t = 10)]
    pub max_previews_per_user: u32,
    /// Changes (deploy, redeploy, teardown) applied to one row per REDEPLOY_WINDOW; more
    /// requests coalesce into the latest, applied when the window ends (0 = no limit).
    #[arg(long, env = "REDEPLOY_BUDGET", default_value_t = 20)]
    pub redeploy_budget: u32,
    #[arg(long, env = "REDEPLOY_WINDOW", value_parser = humantime::parse_duration, default_value = "10m")]
    pub redeploy_window: Duration,
    /// A running preview nobody opened (`opened_at`, else its last deploy) for this long is
    /// torn down (its Fly app deleted; status `stopped`, reason `Expired`); opening it deploys
    /// it again. `0` = never.
    #[arg(long, env = "PREVIEW_IDLE_TTL", value_parser = crate::preview::expiry::parse_ttl, default_value = "7d")]
    pub preview_idle_ttl: Duration,
    /// Lease on a claimed row; renewed every third of it while working. Short, so a crashed
    /// replica's rows are worked again within 1.5 leases.
    #[arg(long, env = "LEASE_DURATION", value_parser = humantime::parse_duration, default_value = "8s")]
    pub lease_duration: Duration,
    /// First retry delay after a transient failure (doubles per attempt, full jitter).
    #[arg(long, env = "BACKOFF_BASE", value_parser = humantime::parse_duration, default_value = "1s")]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[arg(long, env = "BACKOFF_CAP", value_parser = humantime::parse_duration, default_value = "5m")]
    pub backoff_cap: Duration,
    /// A machine not healthy this long after a deploy request turns the row into `error`.
    #[arg(long, env = "INIT_DEADLINE", value_parser = humantime::parse_duration, default_value = "10m")]
    pub init_deadline: Duration,
    /// How often the org-wide machines listing is checked for drift.
    #[arg(long, env = "DRIFT_INTERVAL", value_parser = humantime::parse_duration, default_value = "15s")]
    pub drift_interval: Duration,
    /// How long the leader row names the leader (drift checks, full verification, orphan
    /// sweep) without renewal; the leader checks its lock connection and renews the row every
    /// third of it. Leadership itself is an advisory lock that moves when its holder's
    /// connection dies, without waiting for this.
    #[arg(long, env = "LEADER_TTL", value_parser = humantime::parse_duration, default_value = "60s")]
    pub leader_ttl: Duration,
    /// How often every app is verified against Fly, and the orphan sweep runs.
    #[arg(long, env = "FULL_RESYNC_INTERVAL", value_parser = humantime::parse_duration, default_value = "10m")]
    pub full_resync_interval: Duration,
    /// Orphaned apps younger than this are left alone by the sweep.
    #[arg(long, env = "ORPHAN_GRACE", value_parser = humantime::parse_duration, default_value = "10m")]
    pub orphan_grace: Duration,
    /// Log what the orphan sweep would destroy, destroy nothing.
    #[arg(long, env = "SWEEP_DRY_RUN")]
    pub sweep_dry_run: bool,
    /// How long in-flight work may take to finish after the first SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
    /// Runner image for preview machines.
    #[arg(long, env = "RUNNER_IMAGE", default_value = "ghcr.io/roseram/fly-preview-runner:latest")]
    pub runner_image: String,
    /// Port the dev server listens on inside the machine.
    #[arg(long, env = "RUNNER_PORT", default_value_t = 3000)]
    pub runner_port: u16,
    #[command(flatten)]
    pub size: super::size::SizeArgs,
    /// Longest a preview's dependency install may run (1s–1h); the runner then exits and the
    /// row gets an `error` naming this setting.
    #[arg(long, env = "INSTALL_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5m")]
    pub install_timeout: Duration,
    /// How long a preview whose dev server failed for good keeps showing its status page
    /// before the runner exits (0s–10m); the row turns `error` after the exit.
    #[arg(long, env = "FAILURE_LINGER", value_parser = humantime::parse_duration, default_value = "20s")]
    pub failure_linger: Duration,
    /// Identity of this replica in leases (default: host-pid-random).
    #[arg(long, env = "CONTROLLER_ID")]
    pub controller_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub fly: FlyArgs,
    #[command(flatten)]
    pub ctl: ControllerArgs,
    /// Admin HTTP address (/healthz, /readyz, /metrics).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the pending migrations and the tables they change; read only, takes no lock.
    #[arg(long, conflicts_with = "rehearse")]
    pub dry_run: bool,
    /// Print the exact schema difference and the backfilled rows, by applying the pending
    /// migrations in a transaction and rolling back (takes their locks, at most 100 ms each).
    #[arg(long)]
    pub rehearse: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Local Postgres server; the demo creates and uses its own database on it.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Admin HTTP address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    /// Exit once every sample preview has converged instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_when_converged: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Print this preview's timeline (its app name) instead of the table of previews.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The users with the most previews and the highest estimated cost, instead of rows.
    #[arg(long)]
    pub by_user: bool,
    /// How many users `--by-user` lists.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    #[command(flatten)]
    pub size: super::size::SizeArgs,
}

#[derive(Debug, Args)]
pub struct AppNameArgs {
    #[arg(long, env = "PREVIEW_USER_ID")]
    pub user_id: String,
    #[arg(long, env = "PREVIEW_PROJECT_ID")]
    pub project_id: String,
    #[arg(long, env = "APP_PREFIX", default_value = naming::DEFAULT_PREFIX)]
    pub app_prefix: String,
}

/// A configuration problem: which setting, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {setting} {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self { setting, problem: problem.into() }
    }
}

impl FlyArgs {
    /// The token, from the flag/FLY_API_TOKEN or else FLY_IO_API_TOKEN.
    pub fn require_token(&self) -> Result<Secret, ConfigError> {
        let token = self.token.clone().or_else(|| std::env::var("FLY_IO_API_TOKEN").ok());
        match token.filter(|t| !t.trim().is_empty()) {
            Some(t) => Ok(Secret::new(t)),
            None => Err(ConfigError::new("FLY_API_TOKEN", "is not set (nor FLY_IO_API_TOKEN)")),
        }
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let u = url::Url::parse(&self.api_url)
            .map_err(|e| ConfigError::new("FLY_API_URL", format!("is not a valid URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(ConfigError::new("FLY_API_URL", "must be an http(s) URL with a host"));
        }
        if self.org.trim().is_empty() {
            return Err(ConfigError::new("FLY_ORG", "must not be empty"));
        }
        Ok(())
    }
}

impl ControllerArgs {
    pub fn check(&self) -> Result<(), ConfigError> {
        naming::validate_prefix(&self.app_prefix)
            .map_err(|e| ConfigError::new("APP_PREFIX", e.to_string()))?;
        if self.allowed_repo_hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(ConfigError::new("ALLOWED_REPO_HOSTS", "must not contain an empty host"));
        }
        if self.backoff_base.is_zero() || self.backoff_cap < self.backoff_base {
            return Err(ConfigError::new(
                "BACKOFF_CAP",
                "must be at least BACKOFF_BASE, which must be > 0",
            ));
        }
        if self.lease_duration < Duration::from_secs(3) {
            return Err(ConfigError::new("LEASE_DURATION", "must be at least 3s"));
        }
        if self.leader_ttl < Duration::from_secs(3) {
            return Err(ConfigError::new("LEADER_TTL", "must be at least 3s"));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::new("POLL_INTERVAL", "must be > 0"));
        }
        if self.install_timeout < Duration::from_secs(1)
            || self.install_timeout > Duration::from_secs(3600)
        {
            return Err(ConfigError::new("INSTALL_TIMEOUT", "must be between 1s and 1h"));
        }
        if self.failure_linger > Duration::from_secs(600) {
            return Err(ConfigError::new("FAILURE_LINGER", "must be at most 10m"));
        }
        if self.redeploy_window.is_zero() {
            return Err(ConfigError::new("REDEPLOY_WINDOW", "must be > 0"));
        }
        Ok(())
    }
}

/// The controller's settings from validated flags.
pub fn settings(fly: &FlyArgs, c: &ControllerArgs) -> Result<Settings, ConfigError> {
    fly.check()?;
    c.check()?;
    Ok(Settings {
        org: fly.org.clone(),
        region: fly.region.clone(),
        rules: Rules {
            prefix: c.app_prefix.clone(),
            // Hosts compare case-insensitively; stray spaces around commas are not part of them.
            allowed_hosts: c
                .allowed_repo_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        },
        runner: RunnerSettings {
            image: c.runner_image.clone(),
            port: c.runner_port,
            cpu_kind: c.size.runner_cpu_kind.clone(),
            cpus: c.size.runner_cpus,
            memory_mb: c.size.runner_memory_mb,
            install_timeout: machine_config::runner_duration(c.install_timeout),
            failure_linger: machine_config::runner_duration(c.failure_linger),
            ..RunnerSettings::default()
        },
        backoff: Backoff { base: c.backoff_base, cap: c.backoff_cap },
        concurrency: usize::from(c.concurrency),
        poll_interval: c.poll_interval,
        lease: c.lease_duration,
        init_deadline: c.init_deadline,
        wait_slice: Duration::from_secs(2),
        health_poll: Duration::from_secs(1),
        boot_estimate: c.boot_estimate,
        max_previews_per_user: c.max_previews_per_user,
        redeploy_budget: c.redeploy_budget,
        redeploy_window: c.redeploy_window,
        drift_interval: c.drift_interval,
        full_resync_interval: c.full_resync_interval,
        orphan_grace: c.orphan_grace,
        sweep_dry_run: c.sweep_dry_run,
        shutdown_timeout: c.shutdown_timeout,
        stats_interval: Duration::from_secs(30),
        leader_ttl: c.leader_ttl,
        prices: c.size.price_table,
        idle_ttl: c.preview_idle_ttl,
        sync: crate::preview::sync::SyncSettings::default(),
    })
}
