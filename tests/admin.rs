#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The admin endpoints of a replica against real Postgres and the simulator:
//! - `/readyz` is 503 until the first sync with the database, 200 after; 503 while the
//!   database is unreachable (and back to 200 when it returns) and while draining;
//! - `/healthz` stays 200 through a database outage and a drain (liveness must not turn an
//!   outage into a restart storm);
//! - the Fly token and the database password never appear in logs (`RUST_LOG=debug`, text
//!   and JSON), error lines, `/metrics` or the other endpoints, whether everything works,
//!   Fly is unreachable, or the database is.
//!
//! A database outage is made for one replica only: the replica gets its own pool (with its
//! own `application_name`) on the test database; the outage forbids new connections to that
//! database (`ALTER DATABASE … ALLOW_CONNECTIONS false`, from a connection to another
//! database) and terminates the replica's backends. The shared cluster keeps running.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::harness::{Harness, is_running};
use common::*;
use fly_preview_controller::admin;
use fly_preview_controller::daemon::{self, Parts};
use fly_preview_controller::health::Health;
use fly_preview_controller::metrics::Metrics;
use fly_preview_controller::shutdown::Shutdown;
use fly_preview_controller::sim::{SimConfig, Simulator};
use fly_preview_controller::store::Store;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;

const REPO: &str = "https://github.com/acme/site";
const DEADLINE: Duration = Duration::from_secs(30);

// ---- HTTP -----------------------------------------------------------------------------------

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let resp = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Polls `path` until `pred(status, body)` holds; returns the last answer.
async fn wait_http(
    addr: SocketAddr,
    path: &str,
    what: &str,
    pred: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(addr, path).await;
        if pred(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {path} is {status} {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

// ---- secrets never leak ---------------------------------------------------------------------

/// Distinctive, with a core that must not appear anywhere, even truncated.
const TOKEN_CANARY: &str = "TOKCANARY7f3a9c1e";
const PASSWORD_CANARY: &str = "PWCANARY9d2b4e6f";

fn fly_token() -> String {
    format!("fo1_{TOKEN_CANARY}_0123456789abcdef")
}

fn db_password() -> String {
    format!("pw{PASSWORD_CANARY}x")
}

fn assert_no_secret(what: &str, text: &str) {
    for canary in [TOKEN_CANARY, PASSWORD_CANARY, &fly_token(), &db_password()] {
        assert!(!text.contains(canary), "{what} leaks a secret ({canary}):\n{text}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn capture(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    buf
}

/// A `fly-preview-controller` child with captured output; killed on drop if still running.
struct Daemon {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// `run` with a clean environment plus `env` and `RUST_LOG=debug`.
    fn run(env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"));
        cmd.arg("run").env_clear().env("RUST_LOG", "debug").env("RUST_BACKTRACE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        Self { child, stdout, stderr }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn wait_output(&mut self, what: &str, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.stderr().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("daemon exited ({status}) before {what}:\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} ({needle:?}) in the logs:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                tokio::time::sleep(Duration::from_millis(100)).await; // let the readers drain
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running after {within:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (graceful drain), then the exit status.
    async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
        self.wait_exit(DEADLINE).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `postgres://user:<password canary>@host:port/<test db>` for the test database (the local
/// server trusts the user, so the password is carried along but not checked).
fn db_url_with_password(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://{}:{}@{}:{}/{}",
        o.get_username(),
        db_password(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap()
    )
}

fn daemon_env(
    db_url: String,
    fly_url: String,
    admin: SocketAddr,
    format: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db_url),
        ("FLY_API_TOKEN", fly_token()),
        ("FLY_API_URL", fly_url),
        ("LISTEN_ADDR", admin.to_string()),
        ("LOG_FORMAT", format.to_owned()),
        ("POLL_INTERVAL", "200ms".to_owned()),
        ("DRIFT_INTERVAL", "1s".to_owned()),
        ("BACKOFF_BASE", "200ms".to_owned()),
        ("CONTROLLER_ID", "leak-test".to_owned()),
    ]
}

/// Every admin endpoint of a running daemon, checked for secrets; returns `/metrics`.
async fn admin_bodies_are_clean(admin: SocketAddr) -> String {
    let (_, metrics) = wait_http(admin, "/metrics", "/metrics", |s, _| s == 200).await;
    for path in ["/healthz", "/readyz", "/nope"] {
        let (_, body) = get(admin, path).await;
        assert_no_secret(path, &body);
    }
    assert_no_secret("/metrics", &metrics);
    metrics
}

#[sqlx::test]
async fn secrets_never_leak_from_a_working_daemon(pool: PgPool) {
    // The simulator accepts only the canary token, so a running preview proves it was used.
    let sim = Simulator::start(SimConfig { token: Some(fly_token()), ..SimConfig::default() })
        .await
        .unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut d =
        Daemon::run(&daemon_env(db_url_with_password(&pool), sim.base_url(), admin, "json"));
    let id = insert_row(&pool, USER_A, "leak-ok", Some(REPO), "main").await;
    let store = Store::new(pool.clone(), "observer");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let row = store.get(id).await.unwrap().unwrap();
        if is_running(&row) {
            break;
        }
        if let Some(status) = d.child.try_wait().unwrap() {
            panic!("daemon exited ({status}):\n{}", d.output());
        }
        assert!(Instant::now() < deadline, "row not running: {row:#?}\n{}", d.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = admin_bodies_are_clean(admin).await;
    assert!(metrics.contains(r#"action="create_machine",status_class="2xx""#), "{metrics}");
    let status = d.terminate().await;
    let out = d.output();
    assert!(status.success(), "graceful exit after SIGTERM, got {status}:\n{out}");
    assert!(out.contains("\"level\":\"DEBUG\""), "RUST_LOG=debug was not in effect:\n{out}");
    assert_no_secret("daemon output", &out);
    sim.shutdown().await;
}

#[sqlx::test]
async fn secrets_never_leak_when_fly_is_unreachable(pool: PgPool) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let nothing_there = format!("http://127.0.0.1:{}", free_port());
    let mut d = Daemon::run(&daemon_env(db_url_with_password(&pool), nothing_there, admin, "text"));
    insert_row(&pool, USER_A, "leak-fly", Some(REPO), "main").await;
    d.wait_output("a failed reconcile", "reconcile failed").await;
    let metrics = admin_bodies_are_clean(admin).await;
    assert!(metrics.contains(r#"status_class="transport""#), "{metrics}");
    let status = d.terminate().await;
    let out = d.output();
    assert!(status.success(), "graceful exit after SIGTERM, got {status}:\n{out}");
    assert!(out.contains("DEBUG"), "RUST_LOG=debug was not in effect:\n{out}");
    assert_no_secret("daemon output", &out);
}

#[tokio::test]
async fn secrets_never_leak_when_the_database_is_unreachable() {
    // Host and port of the local server, for the "wrong user" case.
    let local = std::env::var("DATABASE_URL")
        .ok()
        .and_then(|u| url::Url::parse(&u).ok())
        .map(|u| format!("{}:{}", u.host_str().unwrap_or("127.0.0.1"), u.port().unwrap_or(5432)))
        .unwrap_or_else(|| "127.0.0.1:5432".to_owned());
    let pw = db_password();
    // (what, DATABASE_URL, log format, accepted exit codes)
    let cases = [
        (
            "connection refused",
            format!("postgres://fpc_user:{pw}@127.0.0.1:{}/fpc", free_port()),
            "text",
            &[1][..],
        ),
        (
            "unknown role",
            format!("postgres://fpc_no_such_role:{pw}@{local}/postgres"),
            "json",
            &[1],
        ),
        (
            "unknown database",
            format!("postgres://postgres:{pw}@{local}/fpc_no_such_database"),
            "text",
            &[1],
        ),
        // a configuration error (2) once `DbArgs::require` parses the URL; 1 today
        (
            "unparsable URL",
            format!("postgres://fpc_user:{pw}@127.0.0.1:notaport/fpc"),
            "text",
            &[1, 2],
        ),
    ];
    let mut daemons: Vec<(&str, &[i32], Daemon)> = cases
        .iter()
        .map(|(what, url, format, codes)| {
            let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let env = daemon_env(url.clone(), "http://127.0.0.1:9".to_owned(), admin, format);
            (*what, *codes, Daemon::run(&env))
        })
        .collect();
    for (what, codes, d) in &mut daemons {
        let status = d.wait_exit(DEADLINE).await;
        let out = d.output();
        assert!(
            status.code().is_some_and(|c| codes.contains(&c)),
            "{what}: exit status {status}, want one of {codes:?}:\n{out}"
        );
        let stderr = d.stderr();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{what}: exactly one error line:\n{out}");
        assert!(
            errors[0].contains("database") || errors[0].contains("DATABASE_URL"),
            "{what}: {}",
            errors[0]
        );
        assert!(!out.contains("panicked"), "{what}: panic:\n{out}");
        assert_no_secret(what, &out);
    }
}
