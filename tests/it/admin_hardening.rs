//! The admin server under hostile clients: 1,100 slow connections (half a
//! request head, never finished) do not keep `/healthz` from answering within a second, also
//! for the daemon binary under a 1,024 open-file limit; oversized requests are refused. The
//! daemon's text logs to a pipe carry no ANSI escapes.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fly_preview_controller::ops::admin;
use fly_preview_controller::ops::admin_server::MAX_CONNECTIONS;
use fly_preview_controller::ops::health::Health;
use fly_preview_controller::ops::metrics::Metrics;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SLOW: usize = 1_100;

/// Opens `n` connections that never finish a request (half of them send half a head).
async fn slow_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut slow = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        }
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    slow
}

/// The slowest of five `/healthz` answers (each must be 200).
async fn worst_healthz(addr: SocketAddr) -> Duration {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let resp = client.get(format!("http://{addr}/healthz")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        worst = worst.max(started.elapsed());
    }
    worst
}

#[tokio::test]
async fn healthz_answers_within_a_second_under_1100_slow_connections() {
    let health = Arc::new(Health::default());
    health.beat();
    let addr = "127.0.0.1:0".parse().unwrap();
    let (addr, task) = admin::serve(addr, health.clone(), Metrics::new()).await.unwrap();
    let slow = slow_connections(addr, SLOW).await;
    let worst = worst_healthz(addr).await;
    println!("{SLOW} slow connections (cap {MAX_CONNECTIONS}): worst /healthz answer {worst:?}");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    let client = reqwest::Client::new();
    let big = client.post(format!("http://{addr}/healthz")).body(vec![b'x'; 64 * 1024]);
    assert_eq!(big.send().await.unwrap().status().as_u16(), 413, "oversized body refused");
    let huge_header = "x".repeat(64 * 1024);
    let r = client.get(format!("http://{addr}/healthz")).header("x-big", huge_header).send().await;
    assert!(r.is_err() || r.unwrap().status().as_u16() >= 400, "oversized head refused");
    drop(slow);
    task.abort();
}

/// The release scenario: the daemon binary under a 1,024 open-file limit (set by the shell
/// before exec; no unsafe code here), Fly unreachable, 1,100 slow connections.
#[sqlx::test]
async fn the_daemon_under_a_1024_file_limit_survives_1100_slow_connections(pool: sqlx::PgPool) {
    let o = pool.connect_options();
    let db = format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let listen = addr.to_string();
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" run"])
        .arg(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .env_clear()
        .envs([
            ("DATABASE_URL", db.as_str()),
            ("FLY_API_TOKEN", "fo1_test_token_value_0123456789"),
            ("FLY_API_URL", "http://127.0.0.1:9"),
            ("LISTEN_ADDR", listen.as_str()),
            ("RUST_LOG", "info"),
            ("LOG_FORMAT", "text"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let drain = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut buf).await;
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the daemon never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slow = slow_connections(addr, SLOW).await;
    let worst = worst_healthz(addr).await;
    println!("daemon (ulimit -n 1024), {SLOW} slow connections: worst /healthz {worst:?}");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    drop(slow);
    child.kill().await.unwrap();
    let logs = drain.await.unwrap();
    let logs = String::from_utf8_lossy(&logs);
    assert!(logs.contains("INFO"), "the daemon logged: {logs}");
    assert!(!logs.contains('\u{1b}'), "no ANSI escapes when stderr is not a terminal: {logs}");
}
