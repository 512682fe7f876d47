//! The integration tests: one crate, one shared `support` module.
//!
//! Tests that need an external tool (promtool, prometheus, yamllint, helm-python-sdk,
//! kubernetes-validate, node, the Supabase cluster, pgbouncer) are `#[ignore = "needs …"]`:
//! a plain `cargo test` lists them as ignored; `bash .ci/install-tools.sh` installs the tools
//! and `cargo test -- --include-ignored` runs everything (CI does, and fails if any skips).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod admin_hardening;
mod admin_secrets;
mod cli;
mod controller_role;
mod demo;
mod deploy_artifacts;
mod deploy_promql;
mod dev_server_recovery;
mod drift_walk;
mod env_delivery;
mod expiry;
mod expiry_failed;
mod failover;
mod fly_budget;
mod fly_client;
mod fly_client_machines;
mod fly_client_wait;
mod fly_outage;
mod gauges;
mod isolation;
mod leadership;
mod legacy_bounds;
mod limits;
mod measure_db;
mod measure_expiry;
mod measure_supabase;
mod messages;
mod migrate_locks;
mod misconfig;
mod no_app;
mod observability;
mod observability_promql;
mod quiet;
mod quota_bound;
mod reconciler;
mod resilience;
mod root_directory;
mod runner;
mod runner_exits;
mod runner_inputs;
mod scheduling;
mod security;
mod shared_inputs;
mod slow_fly;
mod stop;
mod store;
mod store_claim;
mod store_expiry;
mod store_failed_expiry;
mod store_fleet;
mod store_parked;
mod store_tombstones;
mod store_vocabulary;
mod supabase_abuse;
mod supabase_contract;
mod supabase_daemon;
mod supabase_env;
mod supabase_expiry;
mod supabase_pooler;
mod supabase_roles;
mod supabase_timeline;
mod support;
mod sync;
mod sync_isolation;
mod sync_runner;
mod teardown;
mod timeline;
mod upgrade;
mod validation;
