//! Runner exits as the controller reports them: each simulated exit (deploy/runner exit codes,
//! Fly's out-of-memory kill) ends in `error` with a message naming the cause and the setting to
//! change, and the machine gets INSTALL_TIMEOUT and the memory it is configured with.

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::model::state::Status;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";

#[sqlx::test]
async fn each_runner_exit_names_its_cause_and_setting(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let cases: [(&str, &str, &[&str]); 5] = [
        ("sim-clone-failed", "x1", &["exited with code 3", "github_repo_url", "github_branch"]),
        (
            "sim-no-dev-script",
            "x2",
            &["exited with code 4", "package.json", "\"dev\" or \"start\""],
        ),
        ("sim-dev-crashloop", "x3", &["exited with code 5", "dev script"]),
        ("sim-install-timeout", "x4", &["exited with code 6", "INSTALL_TIMEOUT"]),
        ("sim-oom", "x5", &["out of memory", "RUNNER_MEMORY_MB"]),
    ];
    let mut ids = Vec::new();
    for (branch, project, _) in &cases {
        ids.push(insert_row(&pool, USER_A, project, Some(REPO), branch).await);
    }
    let r = h.start("a");
    for ((branch, _, wants), id) in cases.iter().zip(ids) {
        let row = h.wait_row(id, branch, |r| r.status == Status::Error).await;
        assert_eq!(row.status_reason, Some(Reason::MachineExited), "{branch}: {row:?}");
        let msg = row.error_message.as_deref().unwrap_or_default();
        for want in *wants {
            assert!(msg.contains(want), "{branch}: {want:?} not in {msg}");
        }
        assert!(msg.contains(&format!("fly logs -a {}", row.fly_app_name)), "{msg}");
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
    assert_eq!(machines[0]["config"]["guest"]["memory_mb"], 2048);
    r.stop().await;
}
