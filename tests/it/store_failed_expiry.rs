//! Previews in `error` and their idle expiry, in SQL: the migration that gives rows that failed
//! before it their expiry moment (20261210002100_failed_previews_expire.sql), drift's
//! `mark_due` rule for a failed row due at its expiry, and the `in_backoff` figure, which
//! counts retries only.

use crate::support::*;
use fly_preview_controller::store::{PreviewRow, Seen, Store};
use sqlx::PgPool;
use uuid::Uuid;

/// A settled row in `error` for `reason` with a stopped machine `m1`, waiting for a change.
async fn failed(pool: &PgPool, id: Uuid, reason: &str, app_created: bool) {
    let set = format!(
        "status = 'error', status_reason = '{reason}', observed_generation = generation, \
         fly_machine_id = 'm1', machine_state = 'stopped', attempts = 1, \
         fly_app_created = {app_created}, next_attempt_at = 'infinity'"
    );
    as_controller(pool, id, &set).await;
}

#[sqlx::test(migrations = false)]
async fn rows_that_failed_before_the_migration_get_the_default_expiry(pool: PgPool) {
    use fly_preview_controller::store;
    let before: Vec<_> =
        store::MIGRATOR.iter().filter(|m| m.version < 20261210002100).cloned().collect();
    sqlx::migrate::Migrator::with_migrations(before).run(&pool).await.unwrap();
    let ids = insert_rows(&pool, 6).await;
    failed(&pool, ids[0], "MachineExited", true).await;
    failed(&pool, ids[1], "ConfigRejected", true).await;
    as_controller(&pool, ids[1], "opened_at = requested_at + interval '1 day'").await;
    failed(&pool, ids[2], "QuotaExceeded", true).await;
    failed(&pool, ids[3], "InvalidSpec", true).await;
    failed(&pool, ids[4], "MachineExited", false).await;
    store::migrate::run(&pool).await.unwrap();
    let s = Store::new(pool.clone(), "x");
    let mut rows: Vec<PreviewRow> = Vec::new();
    for id in &ids {
        rows.push(s.get(*id).await.unwrap().unwrap());
    }
    let week = |r: &PreviewRow| r.requested_at + chrono::Duration::days(7);
    assert_eq!(rows[0].next_attempt_at, Some(week(&rows[0])), "7 days after its last deploy");
    let opened = rows[1].opened_at.unwrap() + chrono::Duration::days(7);
    assert_eq!(rows[1].next_attempt_at, Some(opened), "7 days after its last open");
    for (r, why) in [(2, "refused"), (3, "invalid"), (4, "never had an app")] {
        assert_eq!(rows[r].next_attempt_at, None, "{why}: still waits for a change");
    }
    assert!(
        rows[5].next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()),
        "work is left as it was"
    );
}

#[sqlx::test]
async fn a_failed_row_due_at_its_expiry_is_due_again_only_when_its_machine_starts(pool: PgPool) {
    let s = Store::new(pool.clone(), "a");
    let ids = insert_rows(&pool, 2).await;
    let later = "next_attempt_at = now() + interval '7 days'";
    failed(&pool, ids[0], "MachineExited", true).await;
    failed(&pool, ids[1], "ConfigRejected", true).await;
    let mut names = Vec::new();
    for id in &ids {
        as_controller(&pool, *id, later).await;
        names.push(s.get(*id).await.unwrap().unwrap().fly_app_name);
    }
    let seen = |state: MachineState| -> Vec<Seen> {
        names
            .iter()
            .map(|n| Seen { app: n.clone(), machine: Some(("m1".into(), state.clone())) })
            .collect()
    };
    let repair = [MachineState::Stopped, MachineState::Failed, MachineState::Destroyed];
    assert_eq!(s.mark_due(&seen(MachineState::Failed), &repair).await.unwrap(), 0, "a verdict");
    assert_eq!(s.mark_due(&[], &repair).await.unwrap(), 0);
    let gone = [Seen { app: names[1].clone(), machine: None }];
    assert_eq!(s.mark_due(&gone, &repair).await.unwrap(), 0, "not repaired: it waits");
    assert_eq!(s.mark_due(&seen(MachineState::Started), &repair).await.unwrap(), 1);
    let row = s.get(ids[0]).await.unwrap().unwrap();
    assert!(row.next_attempt_at.is_some_and(|t| t <= chrono::Utc::now()), "it may have recovered");
}

#[sqlx::test]
async fn a_failed_row_due_at_its_expiry_is_not_in_backoff(pool: PgPool) {
    let s = Store::new(pool.clone(), "a");
    let ids = insert_rows(&pool, 2).await;
    failed(&pool, ids[0], "DevServerCrashed", true).await;
    as_controller(&pool, ids[0], "next_attempt_at = now() + interval '7 days'").await;
    let retry = "status = 'error', status_reason = 'DatabaseError', attempts = 2, \
                 next_attempt_at = now() + interval '30 seconds'";
    as_controller(&pool, ids[1], retry).await;
    assert_eq!(s.stats().await.unwrap().in_backoff, 1, "only the retry");
}
