//! The open trigger and the expiry's quota wake (migration 20261208000100_idle_expiry.sql):
//! what a requester's write of `opened_at` means for each kind of row, and that an expired
//! preview gives its quota slot back.

use std::time::Duration;

use crate::support::*;
use fly_preview_controller::store::{ListenEvent, Listener, Op, PreviewRow, Store};
use sqlx::PgPool;
use uuid::Uuid;

/// A settled running preview (its machine recorded `machine_state`), not due.
async fn running(pool: &PgPool, id: Uuid, reason: &str, machine_state: &str) {
    let set = format!(
        "status = 'running', status_reason = '{reason}', observed_generation = generation, \
         fly_machine_id = 'm1', machine_state = '{machine_state}', fly_app_created = true, \
         next_attempt_at = 'infinity'"
    );
    as_controller(pool, id, &set).await;
}

/// The web app's write: the user opened the project.
async fn open(pool: &PgPool, id: Uuid) -> PreviewRow {
    sqlx::query("UPDATE public.fly_preview_apps SET opened_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    Store::new(pool.clone(), "x").get(id).await.unwrap().unwrap()
}

async fn next_notification(listener: &mut Listener) -> (Op, Uuid) {
    match tokio::time::timeout(Duration::from_secs(10), listener.next()).await.unwrap().unwrap() {
        ListenEvent::Notified(n) => (n.op, n.id),
        other => panic!("unexpected {other:?}"),
    }
}

#[sqlx::test]
async fn opening_a_running_preview_asks_for_a_wake_without_a_new_generation(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    running(&pool, id, "Idle", "suspended").await;
    let before = Store::new(pool.clone(), "x").get(id).await.unwrap().unwrap();
    let mut listener = Listener::connect(&pool).await.unwrap();
    let row = open(&pool, id).await;
    assert!(row.opened_at.is_some());
    assert_eq!(row.generation, before.generation, "not a spec change");
    assert_eq!(row.status, Status::Running);
    assert_eq!(row.status_reason, Some(Reason::WakeRequested));
    assert!(row.next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()), "due now");
    assert_eq!(next_notification(&mut listener).await, (Op::Update, id), "the daemon is told");
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.fly_preview_events WHERE preview_id = $1 AND kind = 'queued'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(queued, 1, "only the insert's: an open queues no deploy");
}

#[sqlx::test]
async fn opening_an_expired_preview_deploys_it_again(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    running(&pool, id, "Ready", "started").await;
    let expired = "status = 'stopped', status_reason = 'Expired', fly_machine_id = NULL, \
                   machine_state = NULL, error_message = 'stopped after 7 days unused'";
    as_controller(&pool, id, expired).await;
    let before = Store::new(pool.clone(), "x").get(id).await.unwrap().unwrap();
    let row = open(&pool, id).await;
    assert_eq!(row.generation, before.generation + 1, "a deploy request");
    assert_eq!(row.status, Status::Pending);
    assert_eq!(row.status_reason, Some(Reason::RedeployRequested));
    assert_eq!(row.error_message, None, "the expiry's message goes with it");
    assert_eq!(row.attempts, 0);
    assert!(row.next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()));
}

#[sqlx::test]
async fn opening_any_other_row_only_stores_the_time(pool: PgPool) {
    let ids = insert_rows(&pool, 3).await;
    // deploying, failed, and running but with a change pending
    as_controller(&pool, ids[0], "status = 'initializing', next_attempt_at = 'infinity'").await;
    let failed = "status = 'error', status_reason = 'MachineExited', \
                  observed_generation = generation, next_attempt_at = 'infinity'";
    as_controller(&pool, ids[1], failed).await;
    running(&pool, ids[2], "Ready", "started").await;
    as_controller(&pool, ids[2], "observed_generation = generation - 1").await;
    for id in ids {
        let before = Store::new(pool.clone(), "x").get(id).await.unwrap().unwrap();
        let row = open(&pool, id).await;
        assert!(row.opened_at.is_some());
        let kept = (before.generation, before.status, before.status_reason, before.next_attempt_at);
        assert_eq!((row.generation, row.status, row.status_reason, row.next_attempt_at), kept);
    }
}

#[sqlx::test]
async fn the_controller_writing_opened_at_is_not_an_open(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    running(&pool, id, "Ready", "started").await;
    as_controller(&pool, id, "opened_at = now()").await;
    let row = Store::new(pool.clone(), "x").get(id).await.unwrap().unwrap();
    assert_eq!(row.status_reason, Some(Reason::Ready));
    assert_eq!(row.next_attempt_at, None);
}

#[sqlx::test]
async fn an_expired_preview_gives_its_slot_to_the_oldest_refused_row(pool: PgPool) {
    let ids = insert_rows(&pool, 2).await;
    running(&pool, ids[0], "Ready", "started").await;
    let refused = "status = 'error', status_reason = 'QuotaExceeded', \
                   next_attempt_at = 'infinity', attempts = 1";
    as_controller(&pool, ids[1], refused).await;
    let mut listener = Listener::connect(&pool).await.unwrap();
    let expired = "status = 'stopped', status_reason = 'Expired', fly_machine_id = NULL, \
                   machine_state = NULL";
    as_controller(&pool, ids[0], expired).await;
    let woken = Store::new(pool.clone(), "x").get(ids[1]).await.unwrap().unwrap();
    assert!(woken.next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()), "{woken:#?}");
    assert_eq!(next_notification(&mut listener).await, (Op::Update, ids[1]));
    // the same row written expired again (a pass that changed nothing) frees nothing more
    as_controller(&pool, ids[1], refused).await;
    as_controller(&pool, ids[0], expired).await;
    let still = Store::new(pool.clone(), "x").get(ids[1]).await.unwrap().unwrap();
    assert_eq!(still.next_attempt_at, None);
}

#[sqlx::test(migrations = false)]
async fn previews_running_before_the_migration_get_the_default_expiry(pool: PgPool) {
    use fly_preview_controller::store;
    let before: Vec<_> =
        store::MIGRATOR.iter().filter(|m| m.version < 20261208000100).cloned().collect();
    sqlx::migrate::Migrator::with_migrations(before).run(&pool).await.unwrap();
    let ids = insert_rows(&pool, 2).await;
    running(&pool, ids[0], "Ready", "started").await;
    store::migrate::run(&pool).await.unwrap();
    let (settled, waiting): (PreviewRow, PreviewRow) = {
        let s = Store::new(pool.clone(), "x");
        (s.get(ids[0]).await.unwrap().unwrap(), s.get(ids[1]).await.unwrap().unwrap())
    };
    let week = settled.requested_at + chrono::Duration::days(7);
    assert_eq!(settled.next_attempt_at, Some(week), "7 days after its last deploy request");
    assert_eq!(settled.opened_at, None);
    assert!(
        waiting.next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()),
        "work is left as it was"
    );
}

/// `note_sleep`: drift's sighting of an autostop (suspended) or a resume (started) is recorded
/// on a settled running row only: machine state and Ready/Idle, nothing else; a row in any
/// other state, a leased row and another machine's sighting are left alone.
#[sqlx::test]
async fn an_autostop_or_a_resume_is_recorded_on_settled_running_rows_only(pool: PgPool) {
    use fly_preview_controller::store::Seen;
    const SUSPEND: &[MachineState] = &[MachineState::Suspended];
    let s = Store::new(pool.clone(), "a");
    let [settled, deploying, leased] = insert_rows(&pool, 3).await[..] else { unreachable!() };
    running(&pool, settled, "Ready", "started").await;
    running(&pool, leased, "Ready", "started").await;
    as_controller(
        &pool,
        leased,
        "lease_owner = 'b', lease_expires_at = now() + interval '1 minute'",
    )
    .await;
    let rows = [settled, deploying, leased];
    let mut names = Vec::new();
    for id in rows {
        names.push(s.get(id).await.unwrap().unwrap().fly_app_name);
    }
    let sighting = |app: &str, m: &str, st| Seen { app: app.into(), machine: Some((m.into(), st)) };
    let seen: Vec<Seen> = names
        .iter()
        .flat_map(|n| {
            [sighting(n, "m1", MachineState::Suspended), sighting(n, "m2", MachineState::Started)]
        })
        .collect();
    assert_eq!(s.note_sleep(&seen, SUSPEND).await.unwrap(), 1, "only the settled row");
    let row = s.get(settled).await.unwrap().unwrap();
    assert_eq!(row.machine_state, Some(MachineState::Suspended));
    assert_eq!(row.status_reason, Some(Reason::Idle));
    assert_eq!(s.get(deploying).await.unwrap().unwrap().machine_state, None);
    assert_eq!(
        s.get(leased).await.unwrap().unwrap().machine_state,
        Some(MachineState::Started),
        "the pass holding the lease decides"
    );
    let resumed = [sighting(&names[0], "m1", MachineState::Started)];
    assert_eq!(s.note_sleep(&resumed, SUSPEND).await.unwrap(), 1);
    let row = s.get(settled).await.unwrap().unwrap();
    assert_eq!(row.status_reason, Some(Reason::Ready));
    assert_eq!(
        s.note_sleep(&resumed, SUSPEND).await.unwrap(),
        0,
        "the same sighting again: no write"
    );
    let stopped = [sighting(&names[0], "m1", MachineState::Stopped)];
    assert_eq!(s.note_sleep(&stopped, SUSPEND).await.unwrap(), 0, "stopped: not autostop's");
    let autostop_stops = [MachineState::Suspended, MachineState::Stopped];
    assert_eq!(s.note_sleep(&stopped, &autostop_stops).await.unwrap(), 1, "where it stops");
    let row = s.get(settled).await.unwrap().unwrap();
    assert_eq!(row.status_reason, Some(Reason::Idle));
}
