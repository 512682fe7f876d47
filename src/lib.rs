//! fly-preview-controller: reconciles rows of `public.fly_preview_apps` into Fly.io preview apps.
//!
//! # Module map
//!
//! Read top to bottom: each group only uses the groups above it (`cli` uses everything).
//!
//! | module | concern |
//! |---|---|
//! | [`model`] | the row's vocabulary, pure: typed states ([`model::state`]), app naming, input validation |
//! | [`runtime`] | process plumbing: metrics, health, telemetry (logs), shutdown phases, the admin HTTP server |
//! | [`fly`] | the Fly Machines API client: typed requests, error classification, rate limits, retries |
//! | [`store`] | Postgres: migrations (bookkeeping in schema `fly_preview_controller`), start-up checks (transaction pooler, row access of the role), the work queue (claims, leases, fenced writes), LISTEN/NOTIFY, leader election |
//! | [`controller`] | the reconciler: `observe` → pure `plan` → `reconcile` (execute) → pure `outcome`; the `scheduler` that claims due rows; `drift` (leader-only org listing and orphan sweep); `sync` (sync on save: exec of the runner's `sync` when `revision` changes); `background` loops; `gate` + `fly_health` (Fly outages and misconfiguration: what may run now) and `local_lane` (verdicts that need no Fly call); `machine_config` (what a row asks Fly to run); `daemon` wiring of one replica |
//! | [`cli`] | the command line: configuration (env + flags), the commands (`run`, `migrate`, `status`, `app-name`, `demo`) and their exit codes |
//!
//! The Fly Machines API simulator (crate `fly-sim`) and the benchmark (crate
//! `fly-preview-bench`) live in their own crates of this workspace; `demo` embeds the
//! simulator behind the default cargo feature `demo`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod controller;
pub mod fly;
pub mod model;
pub mod runtime;
pub mod store;
