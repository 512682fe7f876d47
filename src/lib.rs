//! fly-preview-controller: reconciles rows of `public.fly_preview_apps` into Fly.io preview apps.
//!
//! # Module map
//!
//! Read top to bottom: each group only uses the groups above it (`cli` uses everything).
//!
//! | module | concern |
//! |---|---|
//! | [`model`] | the row's vocabulary, pure: typed states ([`model::state`]), app naming, input validation |
//! | [`ops`] | process plumbing: metrics, health, telemetry (logs), shutdown phases, the admin HTTP server |
//! | [`fly`] | the Fly Machines API client: typed requests, typed errors, rate limits, retries, the breaker |
//! | [`runtime`] | the generic row-queue runtime: the `reconcile → Action` / `error_policy → Action` contract, claims, leases, due-time sleeps, drain, backoff; knows nothing about Fly or previews |
//! | [`store`] | Postgres: migrations (bookkeeping in schema `fly_preview_controller`), start-up checks (transaction pooler, row access of the role), the queue's statements (claims, leases, fenced writes), LISTEN/NOTIFY, leader election |
//! | [`preview`] | the preview domain: `observe` → pure `plan` → `reconcile` (execute) → pure `outcome`; one error classifier (`error`); `drift` (leader-only org listing and orphan sweep); `sync` (sync on save); `gate` (Fly outages and misconfiguration: what may run now); `limits`; `machine_config`; `daemon` wiring of one replica |
//! | [`cli`] | the command line: configuration (env + flags), the commands (`run`, `migrate`, `status`, `app-name`, `demo`) and their exit codes |
//!
//! The Fly Machines API simulator (crate `fly-sim`) and the benchmark (crate
//! `fly-preview-bench`) live in their own crates of this workspace; `demo` embeds the
//! simulator behind the default cargo feature `demo`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod fly;
pub mod model;
pub mod ops;
pub mod preview;
pub mod runtime;
pub mod store;
