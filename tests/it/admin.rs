//! The admin endpoints of a replica against real Postgres and the simulator:
//! - `/readyz` is 503 until the first sync with the database, 200 after; 503 while the
//!   database is unreachable (and back to 200 when it returns) and while draining;
//! - `/healthz` stays 200 through a database outage and a drain (liveness must not turn an
//!   outage into a restart storm).
//!
//! A database outage is made for one replica only: the replica gets its own pool (with its
//! own `application_name`) on the test database; the outage forbids new connections to that
//! database (`ALTER DATABASE … ALLOW_CONNECTIONS false`, from a connection to another
//! database) and terminates the replica's backends. The shared cluster keeps running.
//!
//! The secrets checks (a `fly-preview-controller run` child process) are in
//! `tests/it/admin_secrets.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::admin_http::{DEADLINE, REPO, get, wait_http};
use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::ops::admin;
use fly_preview_controller::ops::health::Health;
use fly_preview_controller::ops::metrics::Metrics;
use fly_preview_controller::ops::shutdown::Shutdown;
use fly_preview_controller::preview::daemon::{self, Parts};
use fly_sim::SimConfig;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;

// ---- a replica on its own pool, and database outages ----------------------------------------

/// A pool on the test database whose connections carry `app` as `application_name`, so an
/// outage can terminate exactly them. Lazy: it connects on first use.
fn own_pool(pool: &PgPool, app: &str) -> PgPool {
    let opts = (*pool.connect_options()).clone().application_name(app);
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(opts)
}

struct Running {
    shutdown: Shutdown,
    join: JoinHandle<()>,
    admin: SocketAddr,
    admin_task: JoinHandle<()>,
    metrics: Metrics,
}

/// Serves the admin endpoints for a fresh `Health` first (nothing has run yet), then
/// starts a replica with `pool` on the harness' simulator.
async fn start_on(h: &Harness, pool: PgPool, owner: &str) -> Running {
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    let (admin, admin_task) =
        admin::serve("127.0.0.1:0".parse().unwrap(), health.clone(), metrics.clone())
            .await
            .unwrap();
    let (status, body) = get(admin, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "not ready: first sync not done\n"));
    let parts = Parts {
        pool,
        fly: h.fly(&metrics),
        settings: h.settings.clone(),
        owner: owner.into(),
        metrics: metrics.clone(),
        health,
    };
    let shutdown = Shutdown::new();
    let s2 = shutdown.clone();
    let join = tokio::spawn(async move { daemon::run(parts, &s2).await });
    Running { shutdown, join, admin, admin_task, metrics }
}

impl Running {
    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(DEADLINE, self.join).await.expect("replica did not stop").unwrap();
        self.admin_task.abort();
    }
}

/// Cuts one application's connections to the test database off, and lets them back.
struct Outage {
    admin: PgConnection,
    master: PgConnectOptions,
    db: String,
    app: String,
    active: bool,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn allow_connections(conn: &mut PgConnection, db: &str, allow: bool) {
    let sql = format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}", quote_ident(db));
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(conn).await.unwrap();
}

impl Outage {
    async fn new(pool: &PgPool, app: &str) -> Self {
        let opts = (*pool.connect_options()).clone();
        let db = opts.get_database().expect("the test pool names its database").to_owned();
        let master = opts.database("postgres").application_name("fpc-admin-test-outage");
        let admin = PgConnection::connect_with(&master).await.unwrap();
        Self { admin, master, db, app: app.into(), active: false }
    }

    /// No new connections to the test database; the app's existing backends are terminated.
    async fn begin(&mut self) {
        allow_connections(&mut self.admin, &self.db, false).await;
        self.active = true;
        // Twice: a backend that was starting up while the database closed is caught too.
        for _ in 0..2 {
            let killed: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            )
            .bind(&self.db)
            .bind(&self.app)
            .fetch_all(&mut self.admin)
            .await
            .unwrap();
            println!("outage: terminated {} backend(s) of {}", killed.len(), self.app);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn end(&mut self) {
        allow_connections(&mut self.admin, &self.db, true).await;
        self.active = false;
    }
}

impl Drop for Outage {
    /// A failing test must not leave its database closed (sqlx keeps failed test databases
    /// for inspection).
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let (master, db) = (self.master.clone(), self.db.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect_with(&master).await {
                    allow_connections(&mut c, &db, true).await;
                }
            });
        })
        .join();
    }
}

// ---- readiness and liveness -----------------------------------------------------------------

#[sqlx::test]
async fn readyz_is_false_until_the_first_sync(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let app = "fpc-admin-first-sync";
    let mut outage = Outage::new(&pool, app).await;
    // The database is unreachable from the start: the replica can never complete its first
    // sync, so it must stay unready for as long as that lasts.
    outage.begin().await;
    let r = start_on(&h, own_pool(&pool, app), "first-sync").await;
    wait_http(r.admin, "/healthz", "liveness (the main loop beats)", |s, _| s == 200).await;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let (status, body) = get(r.admin, "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: first sync not done\n"));
        let (status, _) = get(r.admin, "/healthz").await;
        assert_eq!(status, 200, "liveness must not depend on the database");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(r.metrics.db_errors.get() > 0, "the failed claims are counted");
    assert_eq!(r.metrics.last_sync.get(), 0.0, "no sync happened");

    outage.end().await;
    let (_, body) = wait_http(r.admin, "/readyz", "readiness", |s, _| s == 200).await;
    assert_eq!(body, "ready\n");
    assert!(r.metrics.last_sync.get() > 0.0);
    let id = insert_row(&pool, USER_A, "first-sync", Some(REPO), "main").await;
    h.wait_row(id, "running", is_running).await;
    r.stop().await;
}

#[sqlx::test]
async fn a_database_outage_makes_the_replica_unready_but_not_dead(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let app = "fpc-admin-outage";
    let mut outage = Outage::new(&pool, app).await;
    let replica_pool = own_pool(&pool, app);
    let r = start_on(&h, replica_pool.clone(), "outage").await;
    let id = insert_row(&pool, USER_A, "before", Some(REPO), "main").await;
    h.wait_row(id, "running", is_running).await;
    wait_http(r.admin, "/readyz", "readiness", |s, _| s == 200).await;
    let errors_before = r.metrics.db_errors.get();

    outage.begin().await;
    let (_, why) =
        wait_http(r.admin, "/readyz", "unreadiness during the outage", |s, _| s == 503).await;
    assert!(
        why == "not ready: database unreachable\n"
            || why == "not ready: notification listener down\n",
        "{why:?}"
    );
    // For as long as the outage lasts: unready, yet alive, on every probe.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (status, body) = get(r.admin, "/readyz").await;
        assert_eq!(status, 503, "readiness flapped during the outage: {body:?}");
        let (status, body) = get(r.admin, "/healthz").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "ok\n"),
            "liveness must survive a database outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(r.admin, "/readyz").await.1, "not ready: database unreachable\n");
    assert!(r.metrics.db_errors.get() > errors_before, "database errors are counted");
    let (status, metrics) = get(r.admin, "/metrics").await;
    assert_eq!(status, 200, "/metrics answers during the outage");
    assert!(metrics.contains("fly_preview_db_errors_total"), "{metrics}");

    outage.end().await;
    let (_, body) =
        wait_http(r.admin, "/readyz", "readiness after the outage", |s, _| s == 200).await;
    assert_eq!(body, "ready\n");
    // ...and it works again: a new row converges.
    let id = insert_row(&pool, USER_A, "after", Some(REPO), "main").await;
    h.wait_row(id, "running after the outage", is_running).await;
    r.stop().await;
    replica_pool.close().await;
}

#[sqlx::test]
async fn readyz_is_false_while_draining(pool: PgPool) {
    // Slow Fly answers keep a reconcile in flight when the shutdown starts.
    let sim = SimConfig { api_latency: Duration::from_millis(700), ..SimConfig::default() };
    let h = Harness::new(pool.clone(), sim).await;
    let r = h.start("drain");
    let (addr, admin_task) =
        admin::serve("127.0.0.1:0".parse().unwrap(), r.health.clone(), r.metrics.clone())
            .await
            .unwrap();
    wait_http(addr, "/readyz", "readiness", |s, _| s == 200).await;
    let id = insert_row(&pool, USER_A, "drain", Some(REPO), "main").await;
    h.eventually("a reconcile in flight", || r.metrics.inflight.get() > 0).await;

    r.shutdown.trigger();
    let (_, body) = wait_http(addr, "/readyz", "unreadiness while draining", |s, _| s == 503).await;
    assert_eq!(body, "not ready: shutting down\n");
    assert!(!r.join.is_finished(), "still draining when readiness dropped");
    let (status, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200, "a draining replica is alive");

    tokio::time::timeout(DEADLINE, r.join).await.expect("replica did not stop").unwrap();
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: shutting down\n"),
        "stays unready once stopped"
    );
    let row = h.row(id).await;
    assert!(row.lease_owner.is_none(), "leases released on shutdown: {row:#?}");
    admin_task.abort();
}
