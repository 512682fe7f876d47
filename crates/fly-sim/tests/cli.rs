//! The `fly-sim` binary: serves the Machines API, answers 401 without a token, stops on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `fly-sim` child; killed on drop if still running.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `fly-sim` on a free port and waits until it answers; retries if the port was
/// taken in between.
async fn start_simulator(client: &reqwest::Client) -> (Sim, String) {
    for _attempt in 0..3 {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_fly-sim"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut sim = Sim(child);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && sim.0.try_wait().unwrap().is_none() {
            if client.get(format!("{base}/v1/apps?org_slug=personal")).send().await.is_ok() {
                return (sim, base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("fly-sim did not start");
}

#[tokio::test]
async fn simulate_serves_the_machines_api() {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let (mut sim, base) = start_simulator(&client).await;
    let body = serde_json::json!({"app_name": "cli-smoke", "org_slug": "personal"});

    let created = client
        .post(format!("{base}/v1/apps"))
        .bearer_auth("fo1_any_token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let app: serde_json::Value = created.json().await.unwrap();
    assert_eq!(app["name"], "cli-smoke", "{app}");

    let denied = client.post(format!("{base}/v1/apps")).json(&body).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    let content_type = denied.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let err: serde_json::Value = denied.json().await.unwrap();
    assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()), "a JSON error: {err}");

    // SIGTERM: a clean stop.
    let pid = sim.0.id().to_string();
    let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sim.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "fly-sim ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "fly-sim exits 0 on SIGTERM, got {status}");
}
