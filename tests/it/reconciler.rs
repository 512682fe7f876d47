//! Each transition of the reconciler, against real Postgres and the in-process simulator.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::history;
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";

#[sqlx::test]
async fn pending_row_becomes_running_with_a_preview_url(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id = insert_row(&pool, USER_A, "abc-123-def", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    assert_eq!(row.fly_app_name, "roseram-5aacab32");
    assert_eq!(row.preview_url.as_deref(), Some("https://roseram-5aacab32.fly.dev"));
    assert_eq!(
        (row.status_reason, row.machine_state),
        (Some(Reason::Ready), Some(MachineState::Started))
    );
    assert_eq!((row.attempts, row.error_message.as_deref()), (0, None));
    let machines = h.sim.machines(&row.fly_app_name);
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["id"].as_str(), row.fly_machine_id.as_deref());
    assert_eq!(machines[0]["config"]["env"]["REPO_BRANCH"], "main");
    let s = h.sim.stats();
    assert_eq!((s.apps_alive, s.machines_alive, s.apps_with_multiple_machines), (1, 1, 0));
    let calls = h.calls_for(&row.fly_app_name);
    assert!(calls.iter().any(|c| c.contains("ip_assignments")), "{calls:?}");
    r.stop().await;
    assert!(h.row(id).await.lease_owner.is_none(), "leases are released on shutdown");
}

#[sqlx::test]
async fn branch_change_updates_the_same_machine(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id = insert_row(&pool, USER_A, "p1", Some(REPO), "main").await;
    let r = h.start("a");
    let first = h.wait_row(id, "running", is_running).await;
    sqlx::query("UPDATE public.fly_preview_apps SET github_branch = 'feature/x' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let second = h.wait_row(id, "running gen 2", |r| is_running(r) && r.generation == 2).await;
    assert_eq!(second.fly_machine_id, first.fly_machine_id, "updated in place");
    let m = &h.sim.machines(&second.fly_app_name)[0];
    assert_eq!(m["config"]["env"]["REPO_BRANCH"], "feature/x");
    assert_eq!(m["config"]["metadata"]["generation"], "2");
    assert_eq!(h.sim.stats().machines_created_total, 1);
    r.stop().await;
}

#[sqlx::test]
async fn teardown_by_desired_state_and_by_legacy_status(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let a = insert_row(&pool, USER_A, "t1", Some(REPO), "main").await;
    let b = insert_row(&pool, USER_A, "t2", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(a, "running", is_running).await;
    h.wait_row(b, "running", is_running).await;
    sqlx::query("UPDATE public.fly_preview_apps SET desired_state = 'stopped' WHERE id = $1")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(b)
        .execute(&pool)
        .await
        .unwrap();
    for id in [a, b] {
        let row = h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
        assert!(h.sim.machines(&row.fly_app_name).is_empty(), "nothing runs");
        assert!(h.sim.app_names().contains(&row.fly_app_name), "the empty app is kept");
        assert_eq!(row.fly_machine_id, None);
    }
    let stats = h.sim.stats();
    assert_eq!((stats.machines_alive, stats.apps_alive), (0, 2));
    let log = h.sim.request_log();
    assert!(log.iter().all(|c| c.action != "delete_app"), "a stop spends no app-delete budget");
    // and back: 'pending' redeploys into the kept app (no app create)
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'pending' WHERE id = $1")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    h.wait_row(a, "running again", is_running).await;
    assert_eq!(h.sim.stats().apps_created_total, 2, "the kept app is reused");
    r.stop().await;
}

#[sqlx::test]
async fn deleting_the_row_destroys_the_app_promptly(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.full_resync_interval = Duration::from_secs(3600); // prove the NOTIFY path, not the sweep
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "d1", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    h.eventually("app destroyed", || !h.sim.app_names().contains(&row.fly_app_name)).await;
    r.stop().await;
}

#[sqlx::test]
async fn orphan_sweep_destroys_only_our_orphans(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id = insert_row(&pool, USER_A, "o1", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    r.crash().await;
    // TRUNCATE fires no row trigger: no tombstone, so only the sweep can find the app.
    sqlx::query("TRUNCATE public.fly_preview_apps").execute(&pool).await.unwrap();
    h.sim.create_app_direct("roseram-0badc0de", true); // our prefix, machine without our metadata
    h.sim.create_app_direct("roseram-00000001", false); // our prefix, no machines
    h.sim.create_app_direct("someone-else-app", true); // outside our prefix
    let r = h.start("b");
    h.eventually("orphan destroyed", || !h.sim.app_names().contains(&row.fly_app_name)).await;
    let sweeps = || r.metrics.resyncs.with_label_values(&["periodic"]).get();
    let seen = sweeps();
    h.eventually("two more full sweeps", || sweeps() >= seen + 2).await;
    let apps = h.sim.app_names();
    for kept in ["roseram-0badc0de", "roseram-00000001", "someone-else-app"] {
        assert!(apps.contains(&kept.to_string()), "{kept} must not be touched: {apps:?}");
    }
    assert!(r.metrics.encode().contains("fly_preview_orphans_destroyed_total 1"));
    r.stop().await;
}

#[sqlx::test]
async fn sweep_dry_run_destroys_nothing(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.sweep_dry_run = true;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "o2", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    r.crash().await;
    // TRUNCATE fires no row trigger: no tombstone, so only the sweep can find the app.
    sqlx::query("TRUNCATE public.fly_preview_apps").execute(&pool).await.unwrap();
    let r = h.start("b");
    let sweeps = || r.metrics.resyncs.with_label_values(&["periodic"]).get();
    h.eventually("two full sweeps by the new leader", || sweeps() >= 2).await;
    assert!(h.sim.app_names().contains(&row.fly_app_name));
    r.stop().await;
}

#[sqlx::test]
async fn a_name_owned_by_another_org_is_a_permanent_error(pool: PgPool) {
    let sim =
        SimConfig { foreign_app_names: vec!["roseram-5aacab32".into()], ..SimConfig::default() };
    let h = Harness::new(pool.clone(), sim).await;
    let id = insert_row(&pool, USER_A, "abc-123-def", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
    assert_eq!(row.status_reason, Some(Reason::NameOwnedElsewhere));
    assert!(row.error_message.unwrap().contains("taken by another Fly organization"));
    assert_eq!(row.next_attempt_at, None, "waits for the row to change");
    assert_eq!(h.sim.stats().machines_created_total, 0);
    r.stop().await;
}

#[sqlx::test]
async fn invalid_rows_fail_without_any_fly_call(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let bad_branch = insert_row(&pool, USER_A, "i1", Some(REPO), "main; touch /tmp/x").await;
    let no_repo = insert_row(&pool, USER_A, "i2", None, "main").await;
    let r = h.start("a");
    for (id, field) in [(bad_branch, "github_branch"), (no_repo, "github_repo_url")] {
        let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
        assert_eq!(row.status_reason, Some(Reason::InvalidSpec));
        assert!(row.error_message.as_deref().unwrap().contains(field), "{row:?}");
        assert_eq!(row.next_attempt_at, None);
        assert!(h.calls_for(&row.fly_app_name).is_empty(), "no Fly call for an invalid row");
    }
    r.stop().await;
}

#[sqlx::test]
async fn machine_exit_while_initializing_fails_fast(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id =
        insert_row(&pool, USER_A, "f1", Some("https://github.com/acme/does-not-exist"), "main")
            .await;
    let r = h.start("a");
    let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
    assert_eq!(row.status_reason, Some(Reason::MachineExited));
    assert!(row.error_message.as_deref().unwrap().contains("exit code 128"), "{row:?}");
    r.stop().await;
}

#[sqlx::test]
async fn health_deadline_fails_with_the_last_check_output(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.init_deadline = Duration::from_secs(2);
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "f2", Some(REPO), "sim-never-healthy").await;
    let r = h.start("a");
    let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
    assert_eq!(row.status_reason, Some(Reason::HealthDeadlineExceeded));
    let msg = row.error_message.as_deref().unwrap();
    assert!(msg.contains("did not start serving in time: waiting for the dev server"), "{msg}");
    let detail = row.status_detail.as_deref().unwrap_or_default();
    assert!(detail.contains("starting: waiting for the dev server to answer"), "{row:?}");
    r.stop().await;
}

#[sqlx::test]
async fn drift_is_repaired_and_idle_machines_are_left_alone(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let ids = [
        insert_row(&pool, USER_A, "r1", Some(REPO), "main").await,
        insert_row(&pool, USER_A, "r2", Some(REPO), "main").await,
        insert_row(&pool, USER_A, "r3", Some(REPO), "main").await,
        insert_row(&pool, USER_A, "r4", Some(REPO), "main").await,
    ];
    let r = h.start("a");
    let rows: Vec<_> =
        futures::future::join_all(ids.iter().map(|id| h.wait_row(*id, "running", is_running)))
            .await;
    let mid = |i: usize| rows[i].fly_machine_id.clone().unwrap();
    assert!(h.sim.destroy_machine_behind_back(&rows[0].fly_app_name, &mid(0)));
    assert!(h.sim.delete_app_behind_back(&rows[1].fly_app_name));
    assert!(h.sim.crash_machine(&rows[2].fly_app_name, &mid(2), 137));
    assert!(h.sim.idle_stop(&rows[3].fly_app_name, &mid(3), true));
    h.eventually("machine recreated", || h.sim.machines(&rows[0].fly_app_name).len() == 1).await;
    h.eventually("app recreated", || h.sim.machines(&rows[1].fly_app_name).len() == 1).await;
    h.eventually("crashed machine restarted", || {
        h.sim.machines(&rows[2].fly_app_name)[0]["state"] == "started"
    })
    .await;
    h.wait_all("all running", 60, is_running).await;
    assert_eq!(
        h.sim.machines(&rows[2].fly_app_name)[0]["id"].as_str(),
        Some(mid(2).as_str()),
        "restarted, not replaced"
    );
    let listings = || r.metrics.fly_requests.with_label_values(&["list_org_machines", "2xx"]).get();
    let seen = listings();
    h.eventually("several more drift checks", || listings() >= seen + 3).await;
    let idle = &h.sim.machines(&rows[3].fly_app_name)[0];
    assert_eq!(
        (idle["id"].as_str(), idle["state"].as_str()),
        (Some(mid(3).as_str()), Some("suspended")),
        "idle is healthy"
    );
    assert_eq!(h.sim.stats().apps_with_multiple_machines, 0);
    r.stop().await;
}

#[sqlx::test]
async fn transient_failures_back_off_and_recover(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    h.sim.add_fault("create_app:503:first=3".parse().unwrap());
    let id = insert_row(&pool, USER_A, "b1", Some(REPO), "main").await;
    // A retry may come 10 ms after a failure: the trigger sees every step a poll would miss.
    history::record(&pool).await;
    let r = h.start("a");
    let ok = h.wait_row(id, "running", is_running).await;
    assert_eq!((ok.attempts, ok.error_message), (0, None), "reset on success");
    let mut steps = history::steps(&pool, id).await;
    // Writes of other columns (the app-created flag, the timeline's) repeat a step: one per state.
    steps.dedup_by(|b, a| {
        (&a.status, &a.status_reason, a.attempts) == (&b.status, &b.status_reason, b.attempts)
    });
    let failures: Vec<_> =
        steps.iter().filter(|s| s.status_reason.as_deref() == Some("FlyApiError")).collect();
    let attempts: Vec<i32> = failures.iter().map(|s| s.attempts).collect();
    assert_eq!(attempts, [1, 2, 3], "one step per injected 503: {steps:#?}");
    assert!(failures.iter().all(|s| s.next_attempt_at.is_some()), "retries scheduled: {steps:#?}");
    assert!(
        failures.iter().all(|s| s.status == "initializing"),
        "Fly's trouble is never the row's error: {steps:#?}"
    );
    let last = steps.last().unwrap();
    assert_eq!((last.status.as_str(), last.attempts), ("running", 0), "{steps:#?}");
    r.stop().await;
}
