//! `demo`: everything local. Its own database on the local Postgres, the embedded Fly API
//! simulator, a handful of sample previews (one fails, one is torn down), the controller with
//! its admin server, and a live table until everything has converged.

use crate::model::state::Status;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection};

use crate::cli::CliError;
use crate::cli::config::DemoArgs;
use crate::cli::status::{self, StatusLine};
use crate::fly::{FlyClient, FlyClientConfig, Secret};
use crate::model::{MachineState, naming};
use crate::ops::admin;
use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::{self, Phase, Shutdown};
use crate::preview::daemon::{self, Parts};
use crate::preview::settings::Settings;
use crate::store::{self, Store};
use fly_sim::{SimConfig, Simulator};

const DEMO_DB: &str = "fly_preview_demo";
const TOKEN: &str = "demo-token";

/// A sample preview: who, which repo/branch, and where it should end up.
struct Sample {
    user: &'static str,
    project: &'static str,
    repo: &'static str,
    branch: &'static str,
    expect: Status,
    note: &'static str,
}

const SAMPLES: &[Sample] = &[
    Sample {
        user: "d20f481d-f7ac-4c72-8b42-c683320a6b6e",
        project: "abc-123-def",
        repo: "https://github.com/vercel/next-learn",
        branch: "main",
        expect: Status::Running,
        note: "a Next.js app",
    },
    Sample {
        user: "d20f481d-f7ac-4c72-8b42-c683320a6b6e",
        project: "dashboard",
        repo: "https://github.com/vitejs/vite-plugin-react",
        branch: "feature/hmr-demo",
        expect: Status::Running,
        note: "a Vite app on a feature branch",
    },
    Sample {
        user: "5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d",
        project: "portfolio",
        repo: "https://github.com/withastro/astro",
        branch: "main",
        expect: Status::Running,
        note: "an Astro site",
    },
    Sample {
        user: "5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d",
        project: "blog",
        repo: "https://github.com/sveltejs/kit",
        branch: "main",
        expect: Status::Stopped,
        note: "deployed, then stopped by the user (status='stopped')",
    },
    Sample {
        user: "5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d",
        project: "typo",
        repo: "https://github.com/acme/does-not-exist",
        branch: "main",
        expect: Status::Error,
        note: "a repository that does not exist: the machine exits",
    },
    Sample {
        user: "5b0c7f3e-2a41-4d8e-9c6b-0e1f2a3b4c5d",
        project: "hostile",
        repo: "https://github.com/acme/site",
        branch: "main; rm -rf /",
        expect: Status::Error,
        note: "a hostile branch name: refused before any Fly call",
    },
];

pub async fn run(a: DemoArgs) -> Result<(), CliError> {
    let server: PgConnectOptions = a
        .database_url
        .parse()
        .map_err(|_| crate::cli::config::ConfigError::new("DATABASE_URL", "could not be parsed"))?;
    println!("fly-preview-controller demo: everything runs locally; no Fly account is used.\n");
    let pool = fresh_database(&server).await?;
    println!(
        "1. database    {DEMO_DB} on {}:{} (created fresh; your other databases are untouched), migrated",
        server.get_host(),
        server.get_port()
    );
    let sim = Simulator::start(sim_config()).await.context("starting the simulator")?;
    println!(
        "2. Fly API     simulator at {}/v1 (machines boot in ~2s, health checks pass ~1s later)",
        sim.base_url()
    );
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    health.beat();
    let (addr, _admin) = match admin::serve(a.listen_addr, health.clone(), metrics.clone()).await {
        Ok(x) => x,
        Err(_) => admin::serve(
            "127.0.0.1:0".parse().map_err(anyhow::Error::from)?,
            health.clone(),
            metrics.clone(),
        )
        .await
        .context("starting the admin server")?,
    };
    println!("3. controller  admin server at http://{addr} (/healthz /readyz /metrics)");
    let fly = FlyClient::new(
        FlyClientConfig {
            base_url: sim.base_url(),
            token: Secret::new(TOKEN),
            request_timeout: Duration::from_secs(30),
            rate_limit: true,
        },
        Some(metrics.clone()),
    )
    .context("Fly client")?;
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    let parts = Parts {
        pool: pool.clone(),
        fly,
        settings: Arc::new(demo_settings()),
        owner: "demo".into(),
        metrics,
        health,
    };
    let sd = shutdown.clone();
    let controller = tokio::spawn(async move { daemon::run(parts, &sd).await });
    let ids = insert_samples(&pool).await?;
    let converged = watch(&pool, &ids, &shutdown).await?;
    if converged {
        explain(addr);
        if !a.exit_when_converged {
            shutdown::reached(&mut shutdown.subscribe(), Phase::Draining).await;
        }
    }
    if *shutdown.subscribe().borrow() == Phase::Running {
        shutdown.trigger();
    }
    let _ = controller.await;
    sim.shutdown().await;
    println!(
        "demo stopped; the database {DEMO_DB} is kept for inspection (`status` with DATABASE_URL pointing at it)."
    );
    Ok(())
}

fn sim_config() -> SimConfig {
    SimConfig {
        token: Some(TOKEN.into()),
        app_visibility_delay: Duration::from_millis(200),
        create_to_start: Duration::from_millis(300),
        boot_time: Duration::from_secs(2),
        check_delay: Duration::from_secs(1),
        api_latency: Duration::from_millis(20),
        ..SimConfig::default()
    }
}

fn demo_settings() -> Settings {
    let mut s = Settings::for_tests("personal");
    s.lease = Duration::from_secs(30);
    s.health_poll = Duration::from_millis(500);
    s.init_deadline = Duration::from_secs(60);
    s.drift_interval = Duration::from_secs(2);
    s.full_resync_interval = Duration::from_secs(30);
    s.orphan_grace = Duration::from_secs(60);
    s
}

/// Drops and recreates the demo database, then migrates it.
async fn fresh_database(server: &PgConnectOptions) -> Result<PgPool, CliError> {
    let mut admin = server.connect().await.map_err(|e| anyhow::anyhow!("cannot reach Postgres at {}:{}: {e}; start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`", server.get_host(), server.get_port()))?;
    sqlx::query(concat!("DROP DATABASE IF EXISTS ", "fly_preview_demo", " WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .map_err(anyhow::Error::from)?;
    sqlx::query(concat!("CREATE DATABASE ", "fly_preview_demo"))
        .execute(&mut admin)
        .await
        .map_err(anyhow::Error::from)?;
    admin.close().await.map_err(anyhow::Error::from)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(server.clone().database(DEMO_DB))
        .await
        .map_err(anyhow::Error::from)?;
    store::migrate::run(&pool).await?;
    Ok(pool)
}

/// Inserts the samples the way the web app does; returns id → sample index.
async fn insert_samples(pool: &PgPool) -> Result<BTreeMap<uuid::Uuid, usize>, CliError> {
    println!("4. rows        inserting {} sample previews as the web app would:", SAMPLES.len());
    let mut ids = BTreeMap::new();
    for (i, s) in SAMPLES.iter().enumerate() {
        let name = naming::app_name(naming::DEFAULT_PREFIX, s.user, s.project);
        let id: uuid::Uuid = sqlx::query_scalar("INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, status, github_repo_url, github_branch) VALUES ($1::uuid, $2, $3, $6, $4, $5) RETURNING id")
            .bind(s.user).bind(s.project).bind(&name).bind(s.repo).bind(s.branch).bind(Status::Pending)
            .fetch_one(pool).await.map_err(anyhow::Error::from)?;
        println!(
            "   {name}  {:<52} → expect {:<8} ({})",
            format!("{} @ {}", s.repo.trim_start_matches("https://"), s.branch),
            s.expect,
            s.note
        );
        ids.insert(id, i);
    }
    println!();
    Ok(ids)
}

/// Shows the table whenever it changes; stops the blog preview once it runs; returns true
/// when every sample reached its expected state (false on Ctrl-C or after 3 minutes).
async fn watch(
    pool: &PgPool,
    ids: &BTreeMap<uuid::Uuid, usize>,
    shutdown: &Shutdown,
) -> Result<bool, CliError> {
    let store = Store::new(pool.clone(), "demo-view");
    let (tty, mut last, mut stopped_blog) = (std::io::stdout().is_terminal(), String::new(), false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while *shutdown.subscribe().borrow() == Phase::Running && tokio::time::Instant::now() < deadline
    {
        let rows = store.list_all().await?;
        let now = chrono::Utc::now();
        let lines: Vec<StatusLine> = rows.iter().map(|r| StatusLine::from_row(r, now)).collect();
        let table = status::table(&lines, now);
        let shape: String = lines
            .iter()
            .map(|l| {
                format!(
                    "{}{}{:?}",
                    l.status,
                    l.machine_state.as_ref().map_or("", MachineState::as_str),
                    l.reason
                )
            })
            .collect();
        if shape != last {
            if tty {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "[{}] previews (live; the controller reconciles them against the simulator)\n{table}",
                now.format("%H:%M:%S")
            );
            last = shape;
        }
        for r in &rows {
            let Some(&i) = ids.get(&r.id) else { continue };
            if SAMPLES[i].expect == Status::Stopped && r.status == Status::Running && !stopped_blog
            {
                sqlx::query("UPDATE public.fly_preview_apps SET status = $2 WHERE id = $1")
                    .bind(r.id)
                    .bind(Status::Stopped)
                    .execute(pool)
                    .await
                    .map_err(anyhow::Error::from)?;
                println!(
                    "→ the user stops {} (UPDATE ... SET status = 'stopped'): the controller tears it down\n",
                    r.fly_app_name
                );
                stopped_blog = true;
            }
        }
        let done = rows.iter().all(|r| {
            ids.get(&r.id).is_some_and(|&i| {
                r.status == SAMPLES[i].expect && r.observed_generation == r.generation
            })
        });
        if done && stopped_blog {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(false)
}

fn explain(addr: std::net::SocketAddr) {
    println!("All sample previews converged:");
    println!("  running  → app + IPs + one healthy machine on (simulated) Fly; preview_url is set");
    println!(
        "  stopped  → the user asked to stop; its machine was destroyed (the empty app stays)"
    );
    println!(
        "  error    → error_message says why (a machine that exited, a refused branch name)\n"
    );
    println!("Admin:  http://{addr}/metrics   http://{addr}/readyz   http://{addr}/healthz");
    println!(
        "Try:    psql {DEMO_DB} -c \"update fly_preview_apps set github_branch = 'dev' where project_id = 'portfolio'\""
    );
    println!("Stop:   Ctrl-C (the controller drains in-flight work and releases its leases)");
}
