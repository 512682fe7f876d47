//! Runner exits as the controller reports them: each simulated exit (deploy/runner exit codes,
//! Fly's out-of-memory kill) ends in `error` with its reason, one sentence the builder's user
//! can act on, and the runner's report (the `dev` check's output) plus the setting to change
//! in `status_detail`; the machine gets INSTALL_TIMEOUT, FAILURE_LINGER and its memory.

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::model::state::Status;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";

/// (branch, project, reason, words in `error_message`, words in `status_detail`).
type Case = (&'static str, &'static str, Reason, &'static [&'static str], &'static [&'static str]);

const CASES: [Case; 6] = [
    (
        "sim-clone-failed",
        "x1",
        Reason::CloneFailed,
        &["could not be cloned", "git could not clone branch sim-clone-failed"],
        &["exit code 3", "fatal: Remote branch"],
    ),
    (
        "sim-no-dev-script",
        "x2",
        Reason::NoDevScript,
        &["nothing to run", "\"dev\" or \"start\" script"],
        &["exit code 4", "no_script: "],
    ),
    (
        "sim-install-private",
        "x3",
        Reason::InstallFailed,
        &["dependencies failed: the package @acme/private is private and needs NPM_TOKEN"],
        &["exit code 4", "npm ERR! 404 Not Found"],
    ),
    (
        "sim-dev-crashloop",
        "x4",
        Reason::DevServerNeverServed,
        &["never answered at start"],
        &["exit code 5", "Cannot find module"],
    ),
    ("sim-install-timeout", "x5", Reason::InstallFailed, &["dependencies"], &["INSTALL_TIMEOUT"]),
    ("sim-oom", "x6", Reason::OutOfMemory, &["out of memory"], &["RUNNER_MEMORY_MB", "137"]),
];

#[sqlx::test]
async fn each_runner_exit_names_its_cause_where_the_user_looks(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let mut ids = Vec::new();
    for (branch, project, ..) in &CASES {
        ids.push(insert_row(&pool, USER_A, project, Some(REPO), branch).await);
    }
    let r = h.start("a");
    for ((branch, _, reason, says, details), id) in CASES.iter().zip(ids) {
        let row = h.wait_row(id, branch, |r| r.status == Status::Error).await;
        assert_eq!(row.status_reason, Some(*reason), "{branch}: {row:?}");
        let msg = row.error_message.as_deref().unwrap_or_default();
        let detail = row.status_detail.as_deref().unwrap_or_default();
        for want in *says {
            assert!(msg.contains(want), "{branch}: {want:?} not in {msg}");
        }
        for want in *details {
            assert!(detail.contains(want), "{branch}: {want:?} not in {detail}");
        }
        for never in ["fly logs", "'pending'", "RUNNER_MEMORY_MB", "INSTALL_TIMEOUT"] {
            assert!(!msg.contains(never), "{branch}: {never:?} in {msg}");
        }
    }
    r.stop().await;
}

#[sqlx::test]
async fn the_machine_gets_install_timeout_and_memory(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.runner.install_timeout = "90s".to_owned();
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "x6", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let machines = h.sim.machines(&row.fly_app_name);
    assert_eq!(machines[0]["config"]["env"]["INSTALL_TIMEOUT"], "90s");
    assert_eq!(machines[0]["config"]["env"]["FAILURE_LINGER"], "20s");
    assert_eq!(machines[0]["config"]["restart"]["policy"], "no");
    assert_eq!(machines[0]["config"]["checks"]["dev"]["path"], "/__preview/ready");
    assert_eq!(machines[0]["config"]["guest"]["memory_mb"], 2048);
    r.stop().await;
}
