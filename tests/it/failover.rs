//! A replica's death is noticed in seconds: the rows it had leased run again within 15 s
//! (short leases; the other replica's next due time counts a leased row as due when its lease
//! expires, with the production 30 s backstop poll), the other replica leads within seconds (the
//! leadership lock goes with the dead replica's connection; production's 60 s `LEADER_TTL` is
//! kept to show it does not matter), and no preview gets a second machine.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";

async fn leased_by(pool: &PgPool, owner: &str) -> Vec<Uuid> {
    sqlx::query_scalar(
        "SELECT id FROM public.fly_preview_apps \
         WHERE lease_owner = $1 AND lease_expires_at > now()",
    )
    .bind(owner)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_killed_leaders_rows_run_within_15s_and_leadership_moves_in_seconds(pool: PgPool) {
    // Production timings where they matter: the default lease, backstop poll and leader TTL.
    let settings = Settings {
        lease: Duration::from_secs(8),
        leader_ttl: Duration::from_secs(60),
        poll_interval: Duration::from_secs(30),
        drift_interval: Duration::from_secs(15),
        ..Settings::for_tests("personal")
    };
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings).await;
    // Slow Fly, so the first replica is mid-pass on many rows when it dies.
    h.sim.add_fault("*:latency=250ms".parse().unwrap());
    let a = h.start("a");
    h.eventually("a leads", || a.metrics.leader.get() == 1).await;
    let b = h.start("b");
    for i in 0..8 {
        insert_row(&pool, USER_A, &format!("fo-{i}"), Some(REPO), "main").await;
        insert_row(&pool, USER_B, &format!("fo-{i}"), Some(REPO), "main").await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while leased_by(&pool, "a").await.len() < 3 {
        assert!(Instant::now() < deadline, "replica a never held leases");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.crash().await;
    let crashed = Instant::now();
    let held = leased_by(&pool, "a").await;
    h.eventually("b leads", || b.metrics.leader.get() == 1).await;
    let took_lead = crashed.elapsed();
    for id in &held {
        h.wait_row(*id, "a row the dead replica held", is_running).await;
    }
    let held_running = crashed.elapsed();
    h.wait_all("all running", 60, is_running).await;
    println!(
        "a held {} leases; b led after {took_lead:?}; they ran after {held_running:?}",
        held.len()
    );
    // Far below the 60 s TTL a row-based election would wait, with room for a loaded host
    // (the bench measures it: BENCHMARKS.md, failover).
    assert!(took_lead < Duration::from_secs(10), "leadership moved after {took_lead:?}");
    assert!(held_running < Duration::from_secs(15), "its rows ran after {held_running:?}");
    for row in h.store().list_all().await.unwrap() {
        assert_eq!(h.sim.machines(&row.fly_app_name).len(), 1, "{}", row.fly_app_name);
    }
    b.stop().await;
}
