//! Idle expiry and wake on open, end to end (daemon + Postgres + simulator), as named
//! scenarios: a preview nobody opens is torn down when its TTL ends and gives its quota slot
//! back; opening it deploys it again; opening a running preview whose machine autostop put to
//! sleep starts it with one Fly call and no redeploy.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";

fn settings(ttl: Duration, quota: u32) -> Settings {
    Settings { idle_ttl: ttl, max_previews_per_user: quota, ..Settings::for_tests("personal") }
}

/// Without drift's repair, which starts a running preview's stopped machine by itself.
fn without_drift(ttl: Duration) -> Settings {
    let hour = Duration::from_secs(3600);
    Settings { drift_interval: hour, full_resync_interval: hour, ..settings(ttl, 0) }
}

fn expired(r: &PreviewRow) -> bool {
    r.status == Status::Stopped && r.status_reason == Some(Reason::Expired)
}

/// The preview's timeline: (kind, reason, message), oldest first.
async fn events(pool: &PgPool, id: Uuid) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT kind, reason, message FROM public.fly_preview_events \
         WHERE preview_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Calls of `action` the simulator logged for `app` after the `from`-th logged request.
fn calls(h: &Harness, app: &str, from: usize) -> Vec<String> {
    h.sim.request_log()[from..]
        .iter()
        .filter(|r| r.path.contains(app))
        .map(|r| format!("{} {}", r.action, r.status))
        .collect()
}

/// Waits until the preview runs with its machine started: the row, its app and machine id.
async fn ready(h: &Harness, id: Uuid) -> (PreviewRow, String, String) {
    let row = h
        .wait_row(id, "running and ready", |r| {
            is_running(r) && r.machine_state == Some(MachineState::Started)
        })
        .await;
    let (app, machine) = (row.fly_app_name.clone(), row.fly_machine_id.clone().unwrap());
    (row, app, machine)
}

/// Waits until one of two rows of a user at a quota of 1 runs and the other is refused.
async fn one_runs_one_waits(h: &Harness, ids: [Uuid; 2]) -> (PreviewRow, Uuid) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (h.row(ids[0]).await, h.row(ids[1]).await);
        let refused = |r: &PreviewRow| r.status_reason == Some(Reason::QuotaExceeded);
        match (is_running(&a), is_running(&b)) {
            (true, false) if refused(&b) => return (a, b.id),
            (false, true) if refused(&a) => return (b, a.id),
            _ => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "{a:#?} {b:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn an_unused_preview_expires_and_frees_its_quota_slot(pool: PgPool) {
    let ttl = Duration::from_secs(2);
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings(ttl, 1)).await;
    let old = insert_row(&pool, USER_A, "old", Some(REPO), "main").await;
    let new = insert_row(&pool, USER_A, "new", Some(REPO), "main").await;
    let r = h.start("a");
    let (row, waiting) = one_runs_one_waits(&h, [old, new]).await;
    let first = row.id;
    assert_eq!(row.opened_at, None);
    let due = row.requested_at + chrono::Duration::seconds(2);
    assert_eq!(row.next_attempt_at, Some(due), "never opened: due 2s after its last deploy");

    let row = h.wait_row(first, "expired", expired).await;
    let msg = "stopped after 2 seconds unused; opening the project starts it again";
    assert_eq!(row.error_message.as_deref(), Some(msg));
    assert_eq!((row.fly_machine_id.as_deref(), row.next_attempt_at), (None, None));
    assert!(!h.sim.app_names().contains(&row.fly_app_name), "its Fly app is deleted");
    let stopped = (String::from("stopped"), Some("Expired".into()), Some(msg.into()));
    assert!(events(&pool, first).await.contains(&stopped), "the timeline says why");
    assert_eq!(r.metrics.expired.get(), 1);

    // The slot it held went to the refused row (which may expire in turn by now).
    let deployed = || {
        let pool = pool.clone();
        async move { events(&pool, waiting).await.iter().any(|e| e.0 == "running") }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !deployed().await {
        assert!(tokio::time::Instant::now() < deadline, "the refused row never deployed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.stop().await;
}

#[sqlx::test]
async fn opening_an_expired_preview_deploys_it_again(pool: PgPool) {
    let h = Harness::with_settings(
        pool.clone(),
        SimConfig::default(),
        settings(Duration::from_secs(2), 0),
    )
    .await;
    let id = insert_row(&pool, USER_A, "site", Some(REPO), "main").await;
    let r = h.start("a");
    let before = h.wait_row(id, "expired", expired).await;
    r.stop().await;
    // Reopened under a TTL that cannot end during the test.
    let r = h.start_with("b", settings(Duration::from_secs(3600), 0).into());
    open_project(&pool, id).await;
    let row = h.wait_row(id, "running again", is_running).await;
    assert_eq!(row.generation, before.generation + 1, "a deploy like status = 'pending'");
    assert_eq!(row.error_message, None);
    assert!(h.sim.app_names().contains(&row.fly_app_name), "a new app");
    let due = row.opened_at.unwrap().max(row.requested_at) + chrono::Duration::seconds(3600);
    assert_eq!(row.next_attempt_at, Some(due), "due when it expires again");
    r.stop().await;
}

#[sqlx::test]
async fn opening_a_preview_asleep_by_autostop_starts_it_with_one_call(pool: PgPool) {
    let s = without_drift(Duration::from_secs(3600));
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "site", Some(REPO), "main").await;
    let r = h.start("a");
    for (round, suspend) in [(1, true), (2, false)] {
        let (before, app, machine) = ready(&h, id).await;
        assert!(h.sim.idle_stop(&app, &machine, suspend), "autostop put it to sleep");
        let from = h.sim.request_log().len();
        open_project(&pool, id).await;
        let row = h
            .wait_row(id, "woken", |r| {
                r.status_reason == Some(Reason::Ready)
                    && r.opened_at.is_some()
                    && r.updated_at > before.updated_at
            })
            .await;
        let state = &h.sim.machines(&app)[0]["state"];
        assert_eq!(state, "started", "round {round}");
        let made = calls(&h, &app, from);
        let starts = made.iter().filter(|c| c.starts_with("start_machine")).count();
        assert_eq!(starts, 1, "one start, round {round}: {made:?}");
        assert!(
            made.iter().all(|c| !c.starts_with("create") && !c.starts_with("update")),
            "no redeploy: {made:?}"
        );
        assert_eq!(
            (row.generation, row.fly_machine_id.as_deref()),
            (before.generation, Some(&*machine))
        );
        assert_eq!(r.metrics.wakes.get(), round);
        let woke = events(&pool, id).await.into_iter().rev().find(|e| e.0 == "machine_started");
        assert_eq!(woke.and_then(|e| e.1).as_deref(), Some("WakeRequested"));
    }
    // Opened while awake: nothing to start.
    let from = h.sim.request_log().len();
    let before = h.row(id).await;
    open_project(&pool, id).await;
    h.wait_row(id, "looked at", |r| {
        r.updated_at > before.updated_at && r.status_reason == Some(Reason::Ready)
    })
    .await;
    let made = calls(&h, &h.row(id).await.fly_app_name, from);
    assert!(made.iter().all(|c| !c.starts_with("start_machine")), "{made:?}");
    assert_eq!(r.metrics.wakes.get(), 2);
    r.stop().await;
}

/// Scenario "Fly fails the wake's start once": the retry (with the failure's reason in place
/// of `WakeRequested`) still starts the machine; nothing is redeployed.
#[sqlx::test]
async fn a_wake_whose_start_fails_once_is_retried_until_the_machine_runs(pool: PgPool) {
    let s = without_drift(Duration::from_secs(3600));
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "site", Some(REPO), "main").await;
    let r = h.start("a");
    let (before, app, machine) = ready(&h, id).await;
    assert!(h.sim.idle_stop(&app, &machine, true), "autostop suspended it");
    h.sim.add_fault("start_machine:503:first=1".parse().unwrap());
    let from = h.sim.request_log().len();
    open_project(&pool, id).await;
    h.wait_row(id, "woken after a retry", |r| {
        r.status_reason == Some(Reason::Ready)
            && r.updated_at > before.updated_at
            && r.attempts == 0
    })
    .await;
    assert_eq!(h.sim.machines(&app)[0]["state"], "started");
    let made = calls(&h, &app, from);
    let starts = made.iter().filter(|c| c.starts_with("start_machine")).count();
    assert_eq!(starts, 2, "the failed start and its retry: {made:?}");
    assert!(made.iter().all(|c| !c.starts_with("create")), "no redeploy: {made:?}");
    assert_eq!(h.row(id).await.generation, before.generation);
    r.stop().await;
}

/// Scenario "autostop suspends a running preview, then Fly's proxy resumes it": drift records
/// both on the row (machine state, `Idle` then `Ready`; what the cost gauges read) without a
/// single Fly call of its own to the app and without a new generation.
#[sqlx::test]
async fn drift_records_an_autostop_and_a_resume_on_the_row(pool: PgPool) {
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings(Duration::ZERO, 0))
        .await;
    let id = insert_row(&pool, USER_A, "site", Some(REPO), "main").await;
    let r = h.start("a");
    let (before, app, machine) = ready(&h, id).await;
    let from = h.sim.request_log().len();
    assert!(h.sim.idle_stop(&app, &machine, true), "autostop suspended it");
    let slept = h
        .wait_row(id, "recorded suspended", |r| r.machine_state == Some(MachineState::Suspended))
        .await;
    assert_eq!(slept.status_reason, Some(Reason::Idle));
    assert_eq!((slept.status, slept.generation), (Status::Running, before.generation));
    assert!(h.sim.start_machine_behind_back(&app, &machine), "the proxy resumed it");
    let woke = h
        .wait_row(id, "recorded started", |r| r.machine_state == Some(MachineState::Started))
        .await;
    assert_eq!(woke.status_reason, Some(Reason::Ready));
    let made = calls(&h, &app, from);
    assert!(made.is_empty(), "drift's listings only, nothing sent to the app: {made:?}");
    r.stop().await;
}

#[sqlx::test]
async fn a_zero_ttl_never_schedules_an_expiry(pool: PgPool) {
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings(Duration::ZERO, 0))
        .await;
    let id = insert_row(&pool, USER_A, "site", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    assert_eq!(row.next_attempt_at, None, "converged: nothing will ever be due");
    // Long unused, then looked at (an open): still running, still never due.
    sqlx::query(
        "UPDATE public.fly_preview_apps SET requested_at = now() - interval '1 year' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    open_project(&pool, id).await;
    let row = h.wait_row(id, "looked at", |r| r.status_reason == Some(Reason::Ready)).await;
    assert_eq!((row.status, row.next_attempt_at), (Status::Running, None));
    assert_eq!(r.metrics.expired.get(), 0);
    r.stop().await;
}
