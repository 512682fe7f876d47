//! fly-preview-controller: reconciles rows of `public.fly_preview_apps` into Fly.io preview apps.
#![forbid(unsafe_code)]

pub mod admin;
pub mod background;
pub mod backoff;
pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod drift;
pub mod finish;
pub mod fly;
pub mod health;
pub mod machine_config;
pub mod metrics;
pub mod naming;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod scheduler;
pub mod settings;
pub mod shutdown;
pub mod sim;
pub mod sim_cmd;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod validate;
