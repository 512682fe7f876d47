//! Sync on save is each preview's own business: one user's hanging syncs (the exec runs the
//! tenant's code) never open the Fly breaker and never slow another user's saves.

use std::time::Duration;

use crate::support::fly_mock::{self, Mock, err};
use crate::support::harness::{Harness, is_running};
use crate::support::*;
use crate::sync::{cols, save, wait_cols};
use fly_preview_controller::fly::FlyError;
use fly_preview_controller::fly::breaker::TRIP_AFTER;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::preview::sync::SyncSettings;
use fly_sim::{SimConfig, SyncFault};
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";

#[tokio::test]
async fn exec_deadlines_never_open_the_breaker() {
    let n = TRIP_AFTER as usize * 2;
    let m = Mock::start((0..n).map(|_| err(408, "deadline_exceeded: exec"))).await;
    let c = fly_mock::client(&m);
    for i in 0..n {
        let id = format!("m{i}");
        let e = c.exec_machine("a", &id, &["true"], Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, FlyError::Timeout(_)), "{e:?}");
    }
    assert_eq!(m.count(), n, "every exec was sent");
    assert!(!c.breaker().is_open());
    assert_eq!(c.breaker().trips(), 0);
}

fn sha(i: usize) -> String {
    format!("{i:040x}")
}

/// How long a hung sync's exec lasts before Fly answers 408.
const HANG: Duration = Duration::from_secs(6);

/// One user (A) has 6 previews whose syncs never answer (exec 408 after [`HANG`]); the lane
/// has 4 slots, 3 per user. Another user's saves stay prompt, and the breaker never trips.
#[sqlx::test]
async fn one_users_hanging_syncs_do_not_slow_another_users_saves(pool: PgPool) {
    let sync = SyncSettings {
        concurrency: 4,
        per_user: 3,
        runner_timeout: HANG,
        exec_timeout: HANG,
        timeout_retry_base: Duration::from_millis(200),
        sweep_interval: Duration::from_millis(200),
        idle_sweep_interval: Duration::from_millis(200),
        ..SyncSettings::default()
    };
    let settings = Settings { sync, ..Settings::for_tests("personal") };
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings).await;
    let mut hung = Vec::new();
    for i in 0..6 {
        hung.push(insert_row(&pool, USER_A, &format!("hang-{i}"), Some(REPO), "main").await);
    }
    let calm = insert_row(&pool, USER_B, "calm", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_all("all running", 60, is_running).await;
    for id in &hung {
        h.sim.set_sync_fault(&h.row(*id).await.fly_app_name, Some(SyncFault::Wedged));
        save(&pool, *id, &sha(1)).await;
    }
    let calm_app = h.row(calm).await.fly_app_name;
    let deadlines = || h.sim.request_log().iter().filter(|c| c.status == 408).count();
    let mut i = 2;
    while deadlines() < TRIP_AFTER as usize + 2 {
        h.sim.push_revision(&calm_app, &sha(i));
        let t0 = tokio::time::Instant::now();
        save(&pool, calm, &sha(i)).await;
        let want = sha(i);
        wait_cols(&pool, calm, "calm save", |c| c.served_revision.as_deref() == Some(&want)).await;
        // A save queued behind a hung exec would take the exec's whole timeout.
        assert!(t0.elapsed() < HANG / 2, "save {i} took {:?}", t0.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(i > 4, "several saves of B were timed while A's syncs hung");
    assert_eq!(r.metrics.fly_breaker_trips.get(), 0, "a hanging exec is not a Fly outage");
    for id in &hung {
        let c = cols(&pool, *id).await;
        assert_eq!((c.status, c.status_reason), (Status::Running, Some(Reason::SyncTimedOut)));
    }
    let c = cols(&pool, calm).await;
    assert_eq!((c.status, c.status_reason), (Status::Running, Some(Reason::Ready)));
    r.stop().await;
}

#[sqlx::test]
async fn sync_owners_names_each_existing_rows_user(pool: PgPool) {
    let a = insert_row(&pool, USER_A, "p-a", Some(REPO), "main").await;
    let b = insert_row(&pool, USER_B, "p-b", Some(REPO), "main").await;
    let gone = uuid::Uuid::new_v4();
    let store = fly_preview_controller::store::Store::new(pool.clone(), "t");
    let mut got = store.sync_owners(&[a, b, gone]).await.unwrap();
    got.sort();
    let mut want = vec![(a, USER_A.parse().unwrap()), (b, USER_B.parse().unwrap())];
    want.sort();
    assert_eq!(got, want, "a deleted row has no owner");
}
