//! Every SQL statement of the store, the triggers and the security rules, against a fresh
//! migrated database per test (`#[sqlx::test]`).

use std::collections::HashSet;
use std::time::Duration;

use crate::support::*;
use fly_preview_controller::store::{self, ListenEvent, Listener, Op, Seen, StatusWrite, Store};
use sqlx::PgPool;

const LEASE: Duration = Duration::from_secs(30);
/// No per-user cap on rows in flight.
const NO_CAP: i64 = 1_000_000;

fn running(generation: i64) -> StatusWrite {
    StatusWrite {
        status: Status::Running,
        reason: Reason::Ready,
        error_message: None,
        detail: None,
        preview_url: Some("https://x.fly.dev".into()),
        fly_machine_id: Some("1857156b526dd8".into()),
        machine_state: Some(MachineState::Started),
        observed_generation: Some(generation),
        attempts: 0,
        next_attempt_at: None,
    }
}

#[sqlx::test]
async fn new_rows_are_due_and_claimed_once(pool: PgPool) {
    let ids = insert_rows(&pool, 3).await;
    let s = Store::new(pool.clone(), "a");
    let claimed = s.claim(10, LEASE, NO_CAP).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|r| r.lease_owner.as_deref() == Some("a") && r.generation == 1));
    assert!(claimed.iter().all(|r| r.observed_generation == 0 && r.status == Status::Pending));
    assert!(s.claim(10, LEASE, NO_CAP).await.unwrap().is_empty(), "leased rows are not due");
    assert_eq!(s.get(ids[0]).await.unwrap().unwrap().id, ids[0]);
    assert_eq!(s.list_all().await.unwrap().len(), 3);
}

#[sqlx::test]
async fn two_concurrent_claimers_never_share_a_row(pool: PgPool) {
    insert_rows(&pool, 60).await;
    let (a, b) = (Store::new(pool.clone(), "a"), Store::new(pool.clone(), "b"));
    let grab = |s: Store| async move {
        let mut got = Vec::new();
        loop {
            let rows = s.claim(3, LEASE, NO_CAP).await.unwrap();
            if rows.is_empty() {
                return got;
            }
            got.extend(rows.into_iter().map(|r| r.id));
        }
    };
    let (ga, gb) = tokio::join!(grab(a), grab(b));
    let sa: HashSet<_> = ga.iter().collect();
    let sb: HashSet<_> = gb.iter().collect();
    assert_eq!(sa.len(), ga.len());
    assert!(sa.is_disjoint(&sb), "a row was claimed twice");
    assert_eq!(sa.len() + sb.len(), 60);
}

#[sqlx::test]
async fn fenced_write_lands_and_releases(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    let s = Store::new(pool.clone(), "a");
    let row = s.claim(1, LEASE, NO_CAP).await.unwrap().remove(0);
    let w = s
        .write_status(id, row.generation, &running(row.generation), Lease::Release)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.previous_status, Status::Pending);
    let after = s.get(id).await.unwrap().unwrap();
    assert_eq!((after.status.as_str(), after.observed_generation), ("running", 1));
    assert_eq!(after.lease_owner, None);
    assert_eq!(after.next_attempt_at, None, "converged rows wait for a change");
    assert_eq!(after.desired_state, DesiredState::Running, "controller writes are not requests");
    assert!(after.last_transition_at >= row.last_transition_at);
}

#[sqlx::test]
async fn stale_lease_holder_is_fenced_out(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    let (a, b) = (Store::new(pool.clone(), "a"), Store::new(pool.clone(), "b"));
    let row = a.claim(1, LEASE, NO_CAP).await.unwrap().remove(0);
    // a's lease runs out (a paused, say); b takes the row over.
    sqlx::query("UPDATE public.fly_preview_apps SET lease_expires_at = now() - interval '1s'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(a.renew(&[id], LEASE).await.unwrap().is_empty(), "expired leases are not renewed");
    assert_eq!(b.claim(1, LEASE, NO_CAP).await.unwrap().len(), 1);
    assert!(
        a.write_status(id, row.generation, &running(1), Lease::Release).await.unwrap().is_none()
    );
    assert!(!a.release(id).await.unwrap(), "a cannot release b's lease");
    assert_eq!(b.renew(&[id], LEASE).await.unwrap(), vec![id]);
    assert!(
        b.write_status(id, row.generation, &running(1), Lease::Release).await.unwrap().is_some()
    );
}

#[sqlx::test]
async fn write_for_an_old_generation_is_fenced_out(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    let s = Store::new(pool.clone(), "a");
    let row = s.claim(1, LEASE, NO_CAP).await.unwrap().remove(0);
    sqlx::query("UPDATE public.fly_preview_apps SET github_branch = 'dev' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(s.write_status(id, row.generation, &running(1), Lease::Keep).await.unwrap().is_none());
    assert!(s.release(id).await.unwrap());
    let again = s.claim(1, LEASE, NO_CAP).await.unwrap().remove(0);
    assert_eq!((again.generation, again.status_reason), (2, Some(Reason::SpecChanged)));
}

#[sqlx::test]
async fn release_all_mark_due_and_stats(pool: PgPool) {
    let ids = insert_rows(&pool, 4).await;
    let s = Store::new(pool.clone(), "a");
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.due, count(&stats, Status::Pending)), (4, 4));
    let rows = s.claim(4, LEASE, NO_CAP).await.unwrap();
    for r in &rows[..2] {
        s.write_status(r.id, r.generation, &running(r.generation), Lease::Release)
            .await
            .unwrap()
            .unwrap();
    }
    let mut err = running(1);
    (err.status, err.reason, err.attempts) = (Status::Error, Reason::FlyApiError, 1);
    err.next_attempt_at = Some(chrono::Utc::now() + chrono::Duration::minutes(5));
    s.write_status(rows[2].id, rows[2].generation, &err, Lease::Release).await.unwrap().unwrap();
    assert_eq!(s.release_all().await.unwrap(), 1);
    let stats = s.stats().await.unwrap();
    assert_eq!(
        (
            count(&stats, Status::Running),
            count(&stats, Status::Error),
            stats.in_backoff,
            count(&stats, Status::Pending),
            stats.due,
        ),
        (2, 1, 1, 1, 1)
    );
    let names = s.app_names().await.unwrap();
    assert_eq!(names.len(), 4);
    assert!(s.app_name_exists(&names[0]).await.unwrap());
    assert!(!s.app_name_exists("roseram-00000000").await.unwrap());
    let stopped_machines: Vec<Seen> = s
        .list_all()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.status == Status::Running)
        .map(|r| Seen {
            app: r.fly_app_name,
            machine: Some(("1857156b526dd8".into(), "stopped".into())),
        })
        .collect();
    assert_eq!(s.mark_due(&stopped_machines, &["stopped".into()]).await.unwrap(), 2);
    assert_eq!(s.stats().await.unwrap().due, 3);
    assert!(ids.iter().all(|id| !id.is_nil()));
}

#[sqlx::test]
async fn web_app_stop_becomes_a_teardown_request_with_a_notification(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    let mut listener = Listener::connect(&pool).await.unwrap();
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let row = Store::new(pool.clone(), "a").get(id).await.unwrap().unwrap();
    assert_eq!((row.desired_state.as_str(), row.generation), ("stopped", 2));
    assert_eq!(row.status, Status::Pending, "status stays truthful until the app is gone");
    assert_eq!(row.status_reason, Some(Reason::TeardownRequested));
    let ev = tokio::time::timeout(Duration::from_secs(10), listener.next()).await.unwrap().unwrap();
    match ev {
        ListenEvent::Notified(n) => assert_eq!((n.op, n.id), (Op::Update, id)),
        other => panic!("unexpected {other:?}"),
    }
}

#[sqlx::test]
async fn pending_is_a_redeploy_request_and_other_statuses_are_ignored(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    let set = |status: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query("UPDATE public.fly_preview_apps SET status = $2 WHERE id = $1")
                .bind(id)
                .bind(status)
                .execute(&pool)
                .await
                .unwrap();
            Store::new(pool, "x").get(id).await.unwrap().unwrap()
        }
    };
    assert_eq!(set("running").await.status, Status::Pending, "only the controller sets running");
    let stopped = set("stopped").await;
    let redeploy = set("pending").await;
    assert_eq!(
        (redeploy.desired_state.as_str(), redeploy.generation),
        ("running", stopped.generation + 1)
    );
    assert_eq!(redeploy.status_reason, Some(Reason::RedeployRequested));
}

#[sqlx::test]
async fn insert_and_delete_notify(pool: PgPool) {
    let mut listener = Listener::connect(&pool).await.unwrap();
    let id = insert_rows(&pool, 1).await[0];
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        if let ListenEvent::Notified(n) =
            tokio::time::timeout(Duration::from_secs(10), listener.next()).await.unwrap().unwrap()
        {
            seen.push((n.op, n.id));
        }
    }
    assert_eq!(seen, vec![(Op::Insert, id), (Op::Delete, id)]);
}

#[sqlx::test]
async fn updated_at_ignores_lease_bookkeeping(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    let s = Store::new(pool.clone(), "a");
    let before = s.get(id).await.unwrap().unwrap().updated_at;
    s.claim(1, LEASE, NO_CAP).await.unwrap();
    s.release(id).await.unwrap();
    assert_eq!(s.get(id).await.unwrap().unwrap().updated_at, before);
    sqlx::query("UPDATE public.fly_preview_apps SET github_branch = 'x' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(s.get(id).await.unwrap().unwrap().updated_at > before);
}

#[sqlx::test(migrations = false)]
async fn migrate_twice_is_a_no_op(pool: PgPool) {
    let first = store::migrate::run(&pool).await.unwrap();
    assert_eq!(first.len(), store::MIGRATOR.iter().count());
    let report = store::migrate::dry_run(&pool).await.unwrap();
    assert!(report.contains("would change nothing"), "{report}");
    assert!(store::migrate::run(&pool).await.unwrap().is_empty());
}

#[sqlx::test(migrations = false)]
async fn dry_run_and_rehearsal_change_nothing(pool: PgPool) {
    let dry = store::migrate::dry_run(&pool).await.unwrap();
    assert!(dry.contains(&format!("Pending migrations ({})", migration_count())), "{dry}");
    assert!(dry.contains("  20261125000002 fly preview apps\n"), "{dry}");
    let report = store::migrate::rehearse(&pool).await.unwrap();
    assert!(report.contains("+ column desired_state text not null"), "{report}");
    assert!(report.contains("+ policy \"fly_preview_apps_select_own\""), "{report}");
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public.fly_preview_apps') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!exists, "dry run must roll back");
}

#[sqlx::test]
async fn writing_pending_again_is_still_a_redeploy_request(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'pending' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let row = Store::new(pool, "x").get(id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.generation), ("pending", 2));
}

fn count(stats: &fly_preview_controller::store::QueueStats, status: Status) -> i64 {
    stats.by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n)
}

/// The status and desired_state CHECK constraints list exactly the enums' values.
#[sqlx::test]
async fn state_enums_and_check_constraints_agree(pool: PgPool) {
    let def = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let sql = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1";
            let text: String = sqlx::query_scalar(sql).bind(name).fetch_one(&pool).await.unwrap();
            let mut values: Vec<String> =
                text.split('\'').skip(1).step_by(2).map(str::to_owned).collect();
            values.sort();
            values
        }
    };
    let sorted = |v: Vec<&str>| {
        let mut v: Vec<String> = v.into_iter().map(str::to_owned).collect();
        v.sort();
        v
    };
    let statuses = sorted(Status::ALL.iter().map(|s| s.as_str()).collect());
    assert_eq!(def("fly_preview_apps_status_check").await, statuses);
    let desired = sorted(DesiredState::ALL.iter().map(|s| s.as_str()).collect());
    assert_eq!(def("fly_preview_apps_desired_state_check").await, desired);
}
