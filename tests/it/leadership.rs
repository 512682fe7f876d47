//! Leadership as a session-level advisory lock on a dedicated connection: one session holds
//! it, another waits without statements and gets it the moment the holder's backend ends; the
//! daemons built on it move leadership in seconds whatever `LEADER_TTL` says, a stopping leader
//! hands over at once, and at rest only the leader's periodic check is sent.

use std::time::Duration;

use crate::support::harness::{Harness, Replica};
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::{LEADER_KEY, LeaderConn};
use fly_sim::SimConfig;
use sqlx::PgPool;
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(30);

/// The backends holding (`granted`) or waiting for the leadership lock of this test's
/// database (`pg_locks` shows every database's).
async fn lock_backends(pool: &PgPool, granted: bool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $2 AND objsubid = 1 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(LEADER_KEY)
    .bind(granted)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The backend holding the leadership lock, if any.
async fn lock_holder(pool: &PgPool) -> Option<i32> {
    lock_backends(pool, true).await.first().copied()
}

async fn row_holder(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar("SELECT holder FROM fly_preview_controller.leader")
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn terminate(pool: &PgPool, pid: i32) {
    let done: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(done, "backend {pid} terminated");
}

#[sqlx::test]
async fn one_session_holds_the_lock_and_a_waiter_gets_it_when_the_holders_backend_ends(
    pool: PgPool,
) {
    let mut a = LeaderConn::connect(&pool, "a").await.unwrap();
    let mut b = LeaderConn::connect(&pool, "b").await.unwrap();
    a.lock().await.unwrap();
    assert!(a.note(TTL).await.unwrap(), "the holder's check passes and names it");
    assert_eq!(row_holder(&pool).await.as_deref(), Some("a"));
    assert!(!b.note(TTL).await.unwrap(), "a session without the lock is no leader");
    assert_eq!(row_holder(&pool).await.as_deref(), Some("a"), "and writes nothing");
    let a_pid = lock_holder(&pool).await.expect("a holds the lock");
    let waiting = tokio::spawn(async move { b.lock().await.map(|()| b) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "b waits while a holds the lock");
    terminate(&pool, a_pid).await;
    let killed = Instant::now();
    let mut b = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("b gets the lock when a's backend ends")
        .unwrap()
        .unwrap();
    println!(
        "the waiter held the lock {:?} after the holder's backend was ended",
        killed.elapsed()
    );
    assert!(b.note(TTL).await.unwrap());
    assert_eq!(row_holder(&pool).await.as_deref(), Some("b"));
    assert!(a.note(TTL).await.is_err(), "a's check fails: its connection is gone");
    b.unlock().await.unwrap();
    assert_eq!(row_holder(&pool).await, None, "stepping down deletes the row");
    assert_eq!(lock_holder(&pool).await, None, "and releases the lock");
    let mut c = LeaderConn::connect(&pool, "c").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), c.lock()).await.expect("free at once").unwrap();
}

async fn leads(h: &Harness, r: &Replica, what: &str) -> Duration {
    let t = Instant::now();
    h.eventually(what, || r.metrics.leader.get() == 1).await;
    t.elapsed()
}

/// Waits until a follower has sent its `pg_advisory_lock` (a connection's set-up and the wait:
/// two statements) since it had sent `before`, and the server shows the wait.
async fn waiting(h: &Harness, r: &Replica, before: u64) {
    let sent = || r.metrics.leader_statements.get();
    h.eventually("the follower sends its wait", || sent() >= before + 2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while lock_backends(&h.pool, false).await.is_empty() {
        assert!(Instant::now() < deadline, "the server never showed the follower's wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What shows that leadership did not wait for `LEADER_TTL`: a row-based election moves it
/// `TTL` or more after the leader's last renewal. Far below that, so a loaded host's
/// scheduling cannot fail it; the figures themselves are the bench's (BENCHMARKS.md).
const NOT_THE_TTL: Duration = Duration::from_secs(10);

#[sqlx::test]
async fn leadership_moves_in_seconds_when_the_leaders_connection_dies_whatever_the_ttl(
    pool: PgPool,
) {
    // LEADER_TTL 30 s: a TTL row would move leadership after 30-40 s.
    let settings = Settings { leader_ttl: TTL, ..Settings::for_tests("personal") };
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings).await;
    let a = h.start("a");
    leads(&h, &a, "a leads").await;
    let b = h.start("b");
    waiting(&h, &b, 0).await;
    assert_eq!(b.metrics.leader.get(), 0);
    terminate(&pool, lock_holder(&pool).await.expect("a holds the lock")).await;
    let moved = leads(&h, &b, "b leads").await;
    println!("a's backend ended: b led after {moved:?}");
    assert!(moved < NOT_THE_TTL, "leadership moved after {moved:?}");
    assert_eq!(row_holder(&pool).await.as_deref(), Some("b"));
    let t = Instant::now();
    h.eventually("a notices at its next check", || a.metrics.leader.get() == 0).await;
    assert!(t.elapsed() < TTL / 3 + Duration::from_secs(6), "a noticed after {:?}", t.elapsed());
    waiting(&h, &a, a.metrics.leader_statements.get()).await;
    b.stop().await;
    let moved = leads(&h, &a, "a leads again").await;
    println!("b stopped: a led after {moved:?}");
    assert!(moved < NOT_THE_TTL, "a stopping leader hands over at once: {moved:?}");
    a.stop().await;
}

#[sqlx::test]
async fn at_rest_the_leader_checks_once_per_renewal_and_a_follower_sends_nothing(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let renew = Settings::for_tests("personal").leader_renew();
    let a = h.start("a");
    leads(&h, &a, "a leads").await;
    let b = h.start("b");
    waiting(&h, &b, 0).await;
    let (a0, b0) = (a.metrics.leader_statements.get(), b.metrics.leader_statements.get());
    let window = renew * 3;
    tokio::time::sleep(window).await;
    let (a1, b1) = (a.metrics.leader_statements.get(), b.metrics.leader_statements.get());
    println!("in {window:?}: leader {} statements, follower {}", a1 - a0, b1 - b0);
    assert_eq!(b1 - b0, 0, "a waiting follower sends no statement");
    assert!((2..=4).contains(&(a1 - a0)), "one check per {renew:?}: {}", a1 - a0);
    assert_eq!((a.metrics.leader.get(), b.metrics.leader.get()), (1, 0));
    a.stop().await;
    b.stop().await;
}

#[sqlx::test]
async fn a_waiting_follower_waits_again_on_a_fresh_connection_every_rearm(pool: PgPool) {
    // LEADER_TTL 1 s: a follower re-arms its wait every 5 s.
    let settings =
        Settings { leader_ttl: Duration::from_secs(1), ..Settings::for_tests("personal") };
    let rearm = settings.leader_rearm();
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings).await;
    let a = h.start("a");
    leads(&h, &a, "a leads").await;
    let b = h.start("b");
    waiting(&h, &b, 0).await;
    let before = b.metrics.leader_statements.get();
    tokio::time::sleep(rearm + Duration::from_secs(1)).await;
    let sent = b.metrics.leader_statements.get() - before;
    assert_eq!(sent, 2, "one re-arm in {rearm:?}: a connection's set-up and a new wait");
    assert_eq!((a.metrics.leader.get(), b.metrics.leader.get()), (1, 0));
    terminate(&pool, lock_holder(&pool).await.expect("a holds the lock")).await;
    let moved = leads(&h, &b, "b leads").await;
    assert!(moved < NOT_THE_TTL, "the re-armed wait takes over: {moved:?}");
    a.stop().await;
    b.stop().await;
}
