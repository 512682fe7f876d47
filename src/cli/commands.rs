//! The commands other than `demo`: `run`, `migrate`, `status`, `app-name`.

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;

use crate::cli::config::{self, AppNameArgs, ConfigError, MigrateArgs, RunArgs, StatusArgs};
use crate::cli::error::CliError;
use crate::cli::status;
use crate::fly::{FlyClient, FlyClientConfig};
use crate::model::naming;
use crate::model::timeline::EVENTS_PER_PREVIEW;
use crate::ops::admin;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::Shutdown;
use crate::preview::cost;
use crate::preview::daemon::{self, Parts};
use crate::store;

pub fn app_name(a: &AppNameArgs) -> Result<(), CliError> {
    naming::validate_prefix(&a.app_prefix)
        .map_err(|e| ConfigError::new("APP_PREFIX", e.to_string()))?;
    println!("{}", naming::app_name(&a.app_prefix, &a.user_id, &a.project_id));
    Ok(())
}

pub async fn migrate(a: &MigrateArgs) -> Result<(), CliError> {
    let pool = store::connect(&a.db.require()?, 2).await?;
    if a.dry_run {
        print!("{}", store::migrate::dry_run(&pool).await?);
        return Ok(());
    }
    if a.rehearse {
        print!("{}", store::migrate::rehearse(&pool).await?);
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

pub async fn status(a: &StatusArgs) -> Result<(), CliError> {
    let pool = store::connect(&a.db.require()?, 2).await?;
    let store = store::Store::new(pool, "status");
    if a.by_user {
        return status_by_user(a, &store).await;
    }
    if let Some(app) = &a.app {
        let limit = i64::try_from(EVENTS_PER_PREVIEW).unwrap_or(i64::MAX);
        let events = store.timeline(app, limit).await?;
        if a.json {
            let json = serde_json::to_string_pretty(&events).map_err(anyhow::Error::from)?;
            println!("{json}");
        } else {
            print!("{}", status::timeline(app, &events));
        }
        return Ok(());
    }
    let rows = store.list_all().await?;
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

/// `status --by-user`: the top users by estimated cost and previews.
async fn status_by_user(a: &StatusArgs, store: &store::Store) -> Result<(), CliError> {
    let rows = store.previews_by_user().await?;
    let users = cost::by_user(&a.size.price_table, &a.size.size(), &rows, a.top);
    if a.json {
        let json = serde_json::to_string_pretty(&users).map_err(anyhow::Error::from)?;
        println!("{json}");
    } else {
        print!("{}", status::users_table(&users, &a.size.size()));
    }
    Ok(())
}

/// `run`: the daemon.
pub async fn run(a: RunArgs) -> Result<(), CliError> {
    let settings = config::settings(&a.fly, &a.ctl)?;
    let token = a.fly.require_token()?;
    let db_url = a.db.require()?;
    let metrics = Metrics::new();
    let fly_cfg = FlyClientConfig {
        base_url: a.fly.api_url.clone(),
        token,
        request_timeout: a.fly.fly_request_timeout,
        rate_limit: true,
    };
    let fly =
        FlyClient::new(fly_cfg, Some(metrics.clone())).context("building the Fly API client")?;
    let pool_size = (settings.concurrency as u32 / 2).clamp(4, 32);
    let pool = store::connect(&db_url, pool_size).await?;
    // before /readyz exists: a role that cannot see every row never reports ready
    store::check_row_access(&pool).await?;
    check_migrated(&pool).await?;
    check_prefix(&pool, &settings.rules.prefix).await?;
    let health = Arc::new(Health::default());
    health.beat();
    if let Some(warning) = store::privileged_role(&pool).await? {
        tracing::warn!("{warning}");
        health.set_warning(Some(warning));
    }
    let (addr, _admin) =
        admin::serve(a.listen_addr, health.clone(), metrics.clone()).await.map_err(|e| {
            ConfigError::new("LISTEN_ADDR", format!("cannot listen on {}: {e}", a.listen_addr))
        })?;
    tracing::info!(admin = %addr, org = %settings.org, "fly-preview-controller running");
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    let owner = a.ctl.controller_id.clone().unwrap_or_else(daemon::default_owner);
    daemon::run(
        Parts { pool, fly, settings: Arc::new(settings), owner, metrics, health },
        &shutdown,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// Refuses an `APP_PREFIX` other than the one the database derives names with.
async fn check_prefix(pool: &PgPool, prefix: &str) -> Result<(), CliError> {
    match store::database_app_prefix(pool).await? {
        Some(db) if db != prefix => Err(ConfigError::new(
            "APP_PREFIX",
            format!(
                "is '{prefix}' but the database derives app names with '{db}'; set APP_PREFIX={db}, or change the database's: update fly_preview_controller.settings set app_prefix = '{prefix}';"
            ),
        )
        .into()),
        _ => Ok(()),
    }
}

/// Refuses to start on a database that has not been migrated (clear message, no guessing).
pub async fn check_migrated(pool: &PgPool) -> Result<(), CliError> {
    if !store::migrate::pending(pool).await?.is_empty() {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "the database schema is not up to date; run `fly-preview-controller migrate` first"
        )));
    }
    Ok(())
}
