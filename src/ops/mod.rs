//! Process plumbing shared by every command: metrics, health, logs, shutdown phases and the
//! admin HTTP server (`/healthz`, `/readyz`, `/metrics`).

pub mod admin;
pub mod admin_server;
pub mod db_statements;
pub mod fleet_metrics;
pub mod health;
pub mod metrics;
mod prom;
pub mod shutdown;
pub mod telemetry;
