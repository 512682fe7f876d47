//! HTTP helpers for the admin endpoint tests (`admin*` test modules).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const REPO: &str = "https://github.com/acme/site";
pub const DEADLINE: Duration = Duration::from_secs(30);

// ---- HTTP -----------------------------------------------------------------------------------

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
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
pub async fn wait_http(
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
