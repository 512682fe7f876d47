//! fly-preview-controller: reconciles rows of `public.fly_preview_apps` into Fly.io preview apps.
#![forbid(unsafe_code)]

pub mod fly;
pub mod machine_config;
pub mod metrics;
pub mod sim;
pub mod config;
pub mod naming;
pub mod store;
pub mod validate;
pub mod bench;
pub mod cli;
pub mod daemon;
pub mod demo;
pub mod sim_cmd;
pub mod status;
pub mod telemetry;
