//! Admin HTTP: `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus text).
//! The accept loop and its limits (timeouts, connection cap, request size) live in
//! [`admin_server`](super::admin_server).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::ops::health::Health;
use crate::ops::metrics::Metrics;

#[derive(Clone)]
struct AdminState {
    health: Arc<Health>,
    metrics: Metrics,
}

pub fn router(health: Arc<Health>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { health, metrics })
}

async fn healthz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.health.live() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "main loop stalled\n")
    }
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.health.ready() {
        Ok(()) => match s.health.warning() {
            Some(w) => (StatusCode::OK, format!("ready\nwarning: {w}\n")),
            None => (StatusCode::OK, "ready\n".to_string()),
        },
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], s.metrics.encode())
}

/// Binds the admin server; returns the bound address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Metrics,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(health, metrics);
    let task = tokio::spawn(super::admin_server::serve(listener, app));
    Ok((bound, task))
}
