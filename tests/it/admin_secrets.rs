//! Secrets never leak from a `fly-preview-controller run` child process: the Fly token and the
//! database password never appear in logs (`RUST_LOG=debug`, text and JSON), error lines,
//! `/metrics` or the other admin endpoints, whether everything works, Fly is unreachable, or
//! the database is. (Readiness and liveness are in `tests/it/admin.rs`.)

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::admin_http::{DEADLINE, REPO, get, wait_http};
use crate::support::harness::is_running;
use crate::support::*;
use fly_preview_controller::store::Store;
use fly_sim::{SimConfig, Simulator};
use sqlx::PgPool;

// ---- secrets never leak ---------------------------------------------------------------------

/// Distinctive, with a core that must not appear anywhere, even truncated.
const TOKEN_CANARY: &str = "TOKCANARY7f3a9c1e";
const PASSWORD_CANARY: &str = "PWCANARY9d2b4e6f";
/// A user's secret preview variable (`fly_preview_env`, delivered as a Fly app secret).
const ENV_CANARY: &str = "ENVCANARY3b8d0a2c";

fn fly_token() -> String {
    format!("fo1_{TOKEN_CANARY}_0123456789abcdef")
}

fn db_password() -> String {
    format!("pw{PASSWORD_CANARY}x")
}

fn assert_no_secret(what: &str, text: &str) {
    for canary in [TOKEN_CANARY, PASSWORD_CANARY, ENV_CANARY, &fly_token(), &db_password()] {
        assert!(!text.contains(canary), "{what} leaks a secret ({canary}):\n{text}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn capture(stream: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    });
    (buf, reader)
}

/// A `fly-preview-controller` child with captured output; killed on drop if still running.
struct Daemon {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads that copy stdout and stderr; they end at end-of-file.
    readers: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// `run` with a clean environment plus `env` and `RUST_LOG=trace` (every crate's every line).
    fn run(env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"));
        cmd.arg("run").env_clear().env("RUST_LOG", "trace").env("RUST_BACKTRACE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (stdout, out_reader) = capture(child.stdout.take().unwrap());
        let (stderr, err_reader) = capture(child.stderr.take().unwrap());
        Self { child, stdout, stderr, readers: vec![out_reader, err_reader] }
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
                // Every byte the daemon wrote is captured once both readers reach end-of-file.
                for reader in self.readers.drain(..) {
                    tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
                }
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
    sqlx::query(
        "INSERT INTO public.fly_preview_env (user_id, project_id, name, value) \
         VALUES ($1::uuid, 'leak-ok', 'GIT_TOKEN', $2)",
    )
    .bind(USER_A)
    .bind(format!("ghp_{ENV_CANARY}"))
    .execute(&pool)
    .await
    .unwrap();
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
    // the variable was delivered, as a Fly app secret only: not in the machine config or the row
    let app = store.get(id).await.unwrap().unwrap().fly_app_name;
    let machines = sim.machines(&app);
    let booted = sim.machine_secrets(&app, machines[0]["id"].as_str().unwrap());
    assert!(booted.get("GIT_TOKEN").is_some_and(|v| v.contains(ENV_CANARY)), "not delivered");
    assert_no_secret("the machine", &serde_json::to_string(&machines).unwrap());
    let row: String = sqlx::query_scalar("SELECT row_to_json(a)::text FROM fly_preview_apps a")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_no_secret("the row", &row);
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
