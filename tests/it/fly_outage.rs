//! Fly outages: a platform-wide failure is not the rows' fault. The outage runs 20 s over 50
//! rows by default so the test takes well under a minute; the request bound scales with its
//! length (one probe a second plus 30 for the burst before the breaker trips: 150 for 120 s).
//! A longer one:
//! `OUTAGE_SECS=120 OUTAGE_ROWS=200 cargo test --test it fly_outage::an_outage -- --nocapture`.

use std::time::{Duration, Instant};

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";
fn scale(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[sqlx::test]
async fn an_outage_parks_rows_probes_once_a_second_and_recovers_fast(pool: PgPool) {
    let (n_rows, outage) =
        (scale("OUTAGE_ROWS", 50) as usize, Duration::from_secs(scale("OUTAGE_SECS", 20)));
    // The outage lasts longer than the initializing deadline: it must not count against it.
    let mut s = Settings::for_tests("personal");
    s.init_deadline = outage / 2;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    h.sim.add_fault("any:500:always".parse().unwrap());
    let before = h.sim.stats().requests_total;
    let r = h.start("a");
    insert_rows(&pool, n_rows).await;
    let started = Instant::now();
    let mut errors_seen = 0;
    while started.elapsed() < outage {
        let rows = h.store().list_all().await.unwrap();
        errors_seen = errors_seen.max(rows.iter().filter(|r| r.status == Status::Error).count());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = h.sim.stats().requests_total - before;
    let rows = h.store().list_all().await.unwrap();
    let parked = rows.iter().filter(|r| r.status_reason == Some(Reason::FlyUnavailable));
    let parked = parked.count();
    let max_attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
    let ready = r.health.ready();
    h.sim.clear_faults();
    let healed = Instant::now();
    h.wait_all("all running after heal", 60, is_running).await;
    let recovery = healed.elapsed();
    println!(
        "outage {outage:?} on {n_rows} rows: {during} Fly requests during the outage, \
         max rows in error {errors_seen}, rows parked FlyUnavailable {parked}, \
         max attempts {max_attempts}, all running {recovery:?} after heal"
    );
    assert_eq!(errors_seen, 0, "no row flipped to error");
    assert!(parked > n_rows / 2, "rows show why they wait: {parked}");
    // Only the failures before the breaker trips count (once, at most twice per row).
    assert!(max_attempts <= 2, "the outage does not grow the rows' backoff: {max_attempts}");
    let bound = outage.as_secs() + 30;
    assert!(during <= bound, "{during} requests during the outage (bound {bound})");
    assert!(ready.is_err_and(|e| e.contains("degraded")), "readyz degraded: {ready:?}");
    assert!(recovery < Duration::from_secs(15), "recovered in {recovery:?}");
    assert!(r.health.ready().is_ok() || r.health.degraded().is_none());
    assert_eq!(h.sim.stats().duplicate_apps, 0);
    r.stop().await;
}

#[sqlx::test]
async fn with_fly_hung_invalid_rows_still_get_their_verdict_within_a_second(pool: PgPool) {
    let s = Settings::for_tests("personal");
    // every slot but those kept for started work (none of which is due here)
    let slots = (s.concurrency - s.kept_for_started()) as i64;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    h.sim.add_fault("any:latency=60s:always".parse().unwrap());
    let r = h.start("a");
    // One row per user: the per-user in-flight cap must not be what limits the slots here.
    for i in 0..20 {
        let user = uuid::Uuid::new_v4().to_string();
        insert_row(&pool, &user, &format!("hung-{i}"), Some(REPO), "main").await;
    }
    h.eventually("every slot new rows may take hangs on Fly", || r.metrics.inflight.get() >= slots)
        .await;
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let inserted = Instant::now();
        let id = insert_row(&pool, USER_A, &format!("bad-{i}"), Some(REPO), "main; rm -rf /").await;
        let row = h.wait_row(id, "verdict", |r| r.status == Status::Error).await;
        worst = worst.max(inserted.elapsed());
        assert_eq!(row.status_reason, Some(Reason::InvalidSpec));
    }
    println!("Fly hung: worst time to an invalid row's verdict {worst:?}");
    assert!(worst < Duration::from_secs(1), "verdicts within 1 s: {worst:?}");
    h.sim.clear_faults();
    r.crash().await;
}
