//! `fly-preview-bench`: the controller against the Fly API simulator at fleet scale, next to the naive
//! baseline, printed as markdown (see BENCHMARKS.md for a run and what the figures mean).
//!
//! Per fleet size: a fresh database `fly_preview_bench` (dropped and recreated, migrated),
//! a fresh in-process simulator with realistic latencies and Fly's rate limits, and the
//! daemon as a child process (`fly-preview-controller run`), so its memory and CPU are its
//! own. N rows arrive in one `INSERT … SELECT generate_series`.

#![forbid(unsafe_code)]

mod abuse;
mod args;
mod at_rest;
mod baseline;
mod child;
mod churn;
mod controller;
mod db;
mod degrade;
mod drain;
mod failover;
mod fleet;
mod hanging;
mod ideal;
mod idle;
mod report;
mod report_sched;
mod saves;
mod scenario;
mod statements;
mod targets;
mod wake;
mod walk;

use anyhow::Context;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{BenchArgs, ConfigError};

/// Where and how the bench ran.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub postgres: String,
    pub date: String,
}

impl Environment {
    async fn read(admin: &sqlx::PgPool) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Environment {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: field(&cpuinfo, "model name"),
            memory: field(&meminfo, "MemTotal"),
            postgres: db::server_version(admin).await,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

fn check(a: &BenchArgs) -> Result<(), ConfigError> {
    if !db::valid_db_name(&a.db_name) {
        return Err(ConfigError::new("--db-name", "must be a lowercase identifier (a-z, 0-9, _)"));
    }
    if a.rows.is_empty() || a.rows.contains(&0) {
        return Err(ConfigError::new("--rows", "must be at least 1"));
    }
    if a.steady_window.is_zero() {
        return Err(ConfigError::new("--steady-window", "must be > 0"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match BenchArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    if let Err(e) = check(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(a: BenchArgs) -> anyhow::Result<()> {
    let admin = db::connect(&a.database_url, 2).await?;
    let env = Environment::read(&admin).await;
    if a.saves > 0 {
        return run_saves(&a, &admin, &env).await;
    }
    if let Some(kind) = a.scenario {
        return scenario::run(&a, &admin, &env, kind).await;
    }
    if a.at_rest.is_some() {
        return at_rest::main(&a, &admin, &env).await;
    }
    if a.walk_memory {
        return walk::main(&a, &admin, &env).await;
    }
    if let Some(kind) = a.churn {
        return run_churn(&a, &admin, &env, kind).await;
    }
    let result = run_all(&a, &admin).await;
    let dropped = db::drop_db(&admin, &a.db_name).await;
    let all = result?;
    dropped.context("dropping the bench database")?;
    print!("{}", report::render(&a, &env, &all, &controller::bench_process()));
    if a.fail_unconverged && all.runs.iter().any(|r| !r.conv.converged) {
        anyhow::bail!("bench: not every fleet converged within --converge-budget");
    }
    Ok(())
}

/// `--saves N`: the sync-on-save scenario only.
async fn run_saves(a: &BenchArgs, admin: &sqlx::PgPool, env: &Environment) -> anyhow::Result<()> {
    let result = saves::run(a, admin).await;
    let dropped = db::drop_db(admin, &a.db_name).await;
    let run = result?;
    dropped.context("dropping the bench database")?;
    println!(
        "## fly-preview-controller bench (sync on save), {}
",
        env.date
    );
    println!(
        "{} cores ({}), {}, PostgreSQL {}
",
        env.cores, env.cpu, env.memory, env.postgres
    );
    print!("{}", saves::render(&run, a));
    Ok(())
}

/// `--churn KIND`: one churn scenario only.
async fn run_churn(
    a: &BenchArgs,
    admin: &sqlx::PgPool,
    env: &Environment,
    kind: args::ChurnKind,
) -> anyhow::Result<()> {
    let result = churn::run(a, admin, kind).await;
    let dropped = db::drop_db(admin, &a.db_name).await;
    let run = result?;
    dropped.context("dropping the bench database")?;
    println!("## fly-preview-controller bench (churn), {}\n", env.date);
    println!("{} cores ({}), {}, PostgreSQL {}\n", env.cores, env.cpu, env.memory, env.postgres);
    print!("{}", churn::render(&run, a));
    Ok(())
}

/// Everything one invocation measured.
pub struct Results {
    pub runs: Vec<controller::ControllerRun>,
    pub baselines: Vec<baseline::BaselineRun>,
    pub ideals: Vec<ideal::IdealRun>,
    pub abuse: Option<abuse::AbuseRun>,
}

async fn run_all(a: &BenchArgs, admin: &sqlx::PgPool) -> anyhow::Result<Results> {
    let mut all =
        Results { runs: Vec::new(), baselines: Vec::new(), ideals: Vec::new(), abuse: None };
    for &n in &a.rows {
        eprintln!("bench: controller, {n} rows (concurrency {})", a.concurrency);
        let run = controller::run(a, admin, &a.database_url, n).await?;
        eprintln!("bench: {n} rows: {}", report::one_line(&run));
        all.runs.push(run);
        let cfg = controller::sim_config(a);
        if !a.no_ideal {
            eprintln!("bench: ideal driver, {n} rows");
            let i = ideal::run(admin, &a.database_url, &a.db_name, cfg.clone(), n).await?;
            eprintln!("bench: ideal driver, {n} rows: {:.1} s", i.wall.as_secs_f64());
            all.ideals.push(i);
        }
        if !a.no_baseline && n <= a.baseline_max_rows {
            eprintln!("bench: naive baseline, {n} rows (budget {:?})", a.baseline_budget);
            all.baselines.push(
                baseline::run(admin, &a.database_url, &a.db_name, cfg, n, a.baseline_budget)
                    .await?,
            );
        }
    }
    if !a.no_abuse {
        eprintln!("bench: abuse scenario");
        all.abuse = Some(abuse::run(a, admin).await?);
    }
    Ok(all)
}
