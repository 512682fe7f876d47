//! Sync on save: `revision` written by the web app → the running machine is asked
//! to fetch now (exec of the runner's `sync`) → `served_revision`. Against real Postgres and
//! the simulator; the Fly client's exec call against the scripted mock; the contract call.

use std::time::Duration;

use crate::support::fly_mock::{self, Mock, err, reply};
use crate::support::harness::{Harness, Replica, is_running};
use crate::support::*;
use fly_preview_controller::fly::{FlyClient, FlyError};
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::preview::sync::SyncSettings;
use fly_sim::{SimConfig, SyncFault};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

/// The sync columns of a row.
#[derive(Debug, sqlx::FromRow)]
pub struct SyncCols {
    pub revision: Option<String>,
    pub served_revision: Option<String>,
    pub served_revision_at: Option<chrono::DateTime<chrono::Utc>>,
    pub status: Status,
    pub status_reason: Option<Reason>,
    pub error_message: Option<String>,
    pub generation: i64,
}

pub async fn cols(pool: &PgPool, id: Uuid) -> SyncCols {
    sqlx::query_as("SELECT revision, served_revision, served_revision_at, status, status_reason, error_message, generation FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The web app after a push: writes `revision` (a plain, non-controller write).
pub async fn save(pool: &PgPool, id: Uuid, sha: &str) {
    sqlx::query("UPDATE public.fly_preview_apps SET revision = $2 WHERE id = $1")
        .bind(id)
        .bind(sha)
        .execute(pool)
        .await
        .unwrap();
}

pub async fn wait_cols(
    pool: &PgPool,
    id: Uuid,
    what: &str,
    f: impl Fn(&SyncCols) -> bool,
) -> SyncCols {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = cols(pool, id).await;
        if f(&c) {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {c:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings(sync: SyncSettings) -> Settings {
    Settings { sync, ..Settings::for_tests("personal") }
}

/// A running preview: (harness, replica, row id, app, machine id).
async fn running(pool: &PgPool, sync: SyncSettings) -> (Harness, Replica, Uuid, String, String) {
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings(sync)).await;
    let id = insert_row(pool, USER_A, "sync-1", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let machine = row.fly_machine_id.clone().unwrap();
    (h, r, id, row.fly_app_name, machine)
}

fn execs(h: &Harness, app: &str) -> usize {
    h.sim
        .request_log()
        .iter()
        .filter(|r| r.action == "exec_machine" && r.path.contains(app))
        .count()
}

#[sqlx::test]
async fn revision_written_sets_served_revision_with_one_exec(pool: PgPool) {
    // No sweep during the test: only the NOTIFY can wake the lane.
    let quiet = SyncSettings {
        sweep_interval: Duration::from_secs(3600),
        idle_sweep_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let (h, r, id, app, machine) = running(&pool, quiet).await;
    let before = h.sim.machines(&app)[0].clone();
    let calls_before = h.sim.request_log().len();
    h.sim.push_revision(&app, SHA1);
    let t0 = tokio::time::Instant::now();
    save(&pool, id, SHA1).await;
    let c = wait_cols(&pool, id, "served", |c| c.served_revision.as_deref() == Some(SHA1)).await;
    // With no sweep for an hour only the notification explains it (bench: the latency).
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
    assert!(c.served_revision_at.is_some());
    assert_eq!(c.revision, c.served_revision, "served_revision is revision, verbatim");
    assert_eq!(
        (c.status, c.generation),
        (Status::Running, 1),
        "no status flip, no generation bump"
    );
    assert_eq!(execs(&h, &app), 1);
    assert_eq!(h.sim.served_revision(&app, &machine), SHA1);
    let after = h.sim.machines(&app)[0].clone();
    assert_eq!(before["config"], after["config"], "the machine config is not touched");
    assert_eq!(before["instance_id"], after["instance_id"]);
    // (The drift loop keeps listing the org's machines meanwhile: reads are not counted.)
    let log = h.sim.request_log().into_iter().skip(calls_before);
    let new: Vec<_> = log.filter(|r| r.method != "GET").map(|r| r.action).collect();
    assert_eq!(new, ["exec_machine"], "one Fly call per save");
    // The duration is observed just after the row write that `wait_cols` saw.
    let observed = || r.metrics.sync_duration.get_sample_count() >= 1;
    h.eventually("the sync's duration observed", observed).await;
    assert_eq!(r.metrics.sync_duration.get_sample_count(), 1);
    let row = h.row(id).await;
    assert_eq!((row.observed_generation, row.lease_owner), (1, None));
    r.stop().await;
}

#[sqlx::test]
async fn rapid_saves_coalesce_into_the_latest(pool: PgPool) {
    let (h, r, id, app, _) = running(&pool, SyncSettings::default()).await;
    h.sim.set_sync_time(Duration::from_millis(300));
    let shas: Vec<String> = (1..=6).map(|i| format!("{i:x}").repeat(40)).collect();
    for sha in &shas {
        h.sim.push_revision(&app, sha);
        save(&pool, id, sha).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let last = shas.last().unwrap().clone();
    wait_cols(&pool, id, "latest served", |c| c.served_revision.as_deref() == Some(&last)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let n = execs(&h, &app);
    assert!((1..=2).contains(&n), "6 saves, {n} execs");
    r.stop().await;
}

#[sqlx::test]
async fn two_replicas_sync_a_save_once(pool: PgPool) {
    let (h, a, id, app, _) = running(&pool, SyncSettings::default()).await;
    let b = h.start("b");
    for sha in [SHA1, SHA2] {
        h.sim.push_revision(&app, sha);
        save(&pool, id, sha).await;
        wait_cols(&pool, id, "served", |c| c.served_revision.as_deref() == Some(sha)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(execs(&h, &app), 2, "one exec per save across replicas (the row lease)");
    assert_eq!(h.row(id).await.lease_owner, None);
    a.stop().await;
    b.stop().await;
}

#[sqlx::test]
async fn suspended_machine_is_not_woken(pool: PgPool) {
    let s = SyncSettings { idle_retry: Duration::from_millis(500), ..Default::default() };
    let (h, r, id, app, machine) = running(&pool, s).await;
    assert!(h.sim.idle_stop(&app, &machine, true));
    h.sim.push_revision(&app, SHA1);
    save(&pool, id, SHA1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.sim.machines(&app)[0]["state"], "suspended", "exec never wakes a machine");
    let c = cols(&pool, id).await;
    assert_eq!((c.served_revision, c.status), (None, Status::Running));
    // Ready, or Idle once drift has recorded the autostop: either way not a sync failure.
    let reason = c.status_reason;
    assert!(matches!(reason, Some(Reason::Ready | Reason::Idle)), "not a sync failure: {reason:?}");
    // A request through the proxy wakes it; the next try confirms the revision.
    let client = h.fly(&r.metrics);
    client.start_machine(&app, &machine).await.unwrap();
    wait_cols(&pool, id, "served after resume", |c| c.served_revision.as_deref() == Some(SHA1))
        .await;
    r.stop().await;
}

#[sqlx::test]
async fn sync_failure_keeps_the_preview_running_with_a_reason(pool: PgPool) {
    let s = SyncSettings { retry_base: Duration::from_millis(300), ..Default::default() };
    let (h, r, id, app, _) = running(&pool, s).await;
    h.sim.set_sync_fault(&app, Some(SyncFault::FetchFailed));
    h.sim.push_revision(&app, SHA1);
    save(&pool, id, SHA1).await;
    let c =
        wait_cols(&pool, id, "SyncFailed", |c| c.status_reason == Some(Reason::SyncFailed)).await;
    assert_eq!((c.status, c.served_revision.as_deref()), (Status::Running, None));
    let msg = c.error_message.as_deref().unwrap();
    assert!(msg.contains("could not load your save") && !msg.contains("fetch_failed"), "{c:?}");
    let detail: Option<String> =
        sqlx::query_scalar("SELECT status_detail FROM public.fly_preview_apps WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(detail.is_some_and(|d| d.contains("fetch_failed")), "the runner's words for operators");
    assert!(r.metrics.sync_failures.with_label_values(&["sync_failed"]).get() >= 1);
    // Recovery: the retry confirms it and the reason goes back to Ready.
    h.sim.set_sync_fault(&app, None);
    let c = wait_cols(&pool, id, "served", |c| c.served_revision.as_deref() == Some(SHA1)).await;
    assert_eq!((c.status_reason, c.error_message), (Some(Reason::Ready), None));
    r.stop().await;
}

#[sqlx::test]
async fn timeouts_and_missing_commits_have_their_own_reasons(pool: PgPool) {
    let s = SyncSettings {
        runner_timeout: Duration::from_secs(1),
        exec_timeout: Duration::from_secs(2),
        retry_base: Duration::from_secs(30),
        timeout_retry_base: Duration::from_millis(300),
        ..Default::default()
    };
    let (h, r, id, app, _) = running(&pool, s).await;
    h.sim.set_sync_fault(&app, Some(SyncFault::Hang));
    save(&pool, id, SHA1).await;
    let c =
        wait_cols(&pool, id, "timeout", |c| c.status_reason == Some(Reason::SyncTimedOut)).await;
    assert_eq!(c.status, Status::Running);
    // The commit never reaches the branch: the runner keeps answering the old one.
    h.sim.set_sync_fault(&app, Some(SyncFault::Stale));
    save(&pool, id, SHA2).await;
    let c =
        wait_cols(&pool, id, "not found", |c| c.status_reason == Some(Reason::SyncCommitNotFound))
            .await;
    assert_eq!((c.status, c.served_revision), (Status::Running, None));
    assert!(c.error_message.unwrap().contains(SHA2));
    // A dependency change: the runner installs it beside the running server first.
    h.sim.set_sync_fault(&app, Some(SyncFault::Installing));
    h.sim.push_revision(&app, SHA1);
    save(&pool, id, SHA1).await;
    let c = wait_cols(&pool, id, "installing", |c| c.status_reason == Some(Reason::SyncInstalling))
        .await;
    assert_eq!((c.status, c.served_revision.as_deref()), (Status::Running, None));
    r.stop().await;
}

#[sqlx::test]
async fn revision_is_a_steering_column_but_not_a_spec_change(pool: PgPool) {
    let id = insert_row(&pool, USER_A, "p", Some(REPO), "main").await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await.unwrap();
    listener.listen("fly_preview_apps").await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    sqlx::query("UPDATE public.fly_preview_apps SET revision = $2 WHERE id = $1")
        .bind(id)
        .bind(SHA1)
        .execute(&mut *tx)
        .await
        .unwrap();
    let e = sqlx::query("UPDATE public.fly_preview_apps SET served_revision = 'x' WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "served_revision is the controller's");
    drop(tx);
    save(&pool, id, SHA1).await;
    let n = listener.recv().await.unwrap();
    let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!(payload, json!({"op": "revision", "id": id}));
    let c = cols(&pool, id).await;
    assert_eq!((c.generation, c.status), (1, Status::Pending));
    let e = sqlx::query("UPDATE public.fly_preview_apps SET revision = 'main; rm' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514", "revision must be a commit sha");
}

// ---------------------------------------------------------------- the Fly client's exec

#[tokio::test]
async fn exec_machine_request_shape_and_errors() {
    let out = json!({"exit_code": 0, "stdout": "{\"ok\":true}\n", "stderr": ""});
    let m =
        Mock::start([reply(200, out), err(408, "deadline_exceeded: exec"), err(503, "busy")]).await;
    let c = fly_mock::client(&m);
    let cmd = ["node", "/e.mjs", "sync"];
    let r = c.exec_machine("a", "m1", &cmd, Duration::from_millis(2500)).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (Some(0), "{\"ok\":true}\n"));
    let s = m.last();
    assert_eq!(s.path, "/v1/apps/a/machines/m1/exec");
    assert_eq!(s.body, json!({"command": ["node", "/e.mjs", "sync"], "timeout": 3}));
    let e = c.exec_machine("a", "m1", &cmd, Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(e, FlyError::Timeout(_)), "{e:?}");
    let e = c.exec_machine("a", "m1", &cmd, Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "{e:?}");
    assert_eq!(m.count(), 3, "exec is sent exactly once");
}

/// Part of `fly_client::contract_through_prism`: exec of the runner's `sync` on a started
/// machine of the simulator, through Prism.
pub async fn contract_exec(c: &FlyClient, app: &str, id: &str) {
    let cmd = SyncSettings::default().command();
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let r = c.exec_machine(app, id, &argv, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(r.stdout.contains("\"ok\":true"), "{r:?}");
}
