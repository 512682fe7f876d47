//! Crashes, competing replicas, Fly faults and database faults: everything converges,
//! nothing is duplicated, nothing is orphaned.

use std::collections::HashSet;

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

async fn insert_many(pool: &PgPool, tag: &str, n: usize) {
    // one user holds them all: beyond the database's default cap of rows per user
    sqlx::query("UPDATE fly_preview_controller.settings SET max_rows_per_user = 0")
        .execute(pool)
        .await
        .unwrap();
    for i in 0..n {
        insert_row(
            pool,
            USER_A,
            &format!("{tag}-{i}"),
            Some("https://github.com/acme/site"),
            "main",
        )
        .await;
    }
}

/// Every row running, exactly one app and one machine per row, no app without a row.
async fn assert_converged_cleanly(h: &Harness, n: usize) {
    let rows = h.wait_all("all running", 120, is_running).await;
    assert_eq!(rows.len(), n);
    h.eventually("one machine per app", || {
        let s = h.sim.stats();
        s.apps_with_multiple_machines == 0 && s.machines_alive == n as u64
    })
    .await;
    let s = h.sim.stats();
    assert_eq!((s.duplicate_apps, s.apps_alive), (0, n as u64), "{s:?}");
    let names: HashSet<String> = rows.iter().map(|r| r.fly_app_name.clone()).collect();
    let apps: HashSet<String> = h.sim.app_names().into_iter().collect();
    assert_eq!(apps, names, "no orphans, nothing missing");
    for r in &rows {
        let ms = h.sim.machines(&r.fly_app_name);
        assert_eq!(
            ms[0]["id"].as_str(),
            r.fly_machine_id.as_deref(),
            "row points at the live machine"
        );
    }
}

fn fast_leases() -> Settings {
    let mut s = Settings::for_tests("personal");
    s.lease = Duration::from_secs(1);
    s.full_resync_interval = Duration::from_secs(2);
    s
}

#[sqlx::test]
async fn crashes_at_random_points_never_duplicate_or_leak(pool: PgPool) {
    let runs = 20;
    for seed in 0..runs {
        sqlx::query("TRUNCATE public.fly_preview_apps").execute(&pool).await.unwrap();
        let h = Harness::with_settings(
            pool.clone(),
            SimConfig { seed, ..SimConfig::default() },
            fast_leases(),
        )
        .await;
        insert_many(&pool, &format!("c{seed}"), 100).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut replica = h.start(&format!("crash-{seed}-0"));
        for round in 1..=2 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..900))).await;
            replica.crash().await;
            replica = h.start(&format!("crash-{seed}-{round}"));
        }
        assert_converged_cleanly(&h, 100).await;
        replica.stop().await;
        h.sim.shutdown().await;
    }
}

#[sqlx::test]
async fn two_replicas_share_the_work_without_double_creates(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    insert_many(&pool, "two", 200).await;
    let (a, b) = (h.start("replica-a"), h.start("replica-b"));
    assert_converged_cleanly(&h, 200).await;
    let s = h.sim.stats();
    assert_eq!(
        (s.apps_created_total, s.machines_created_total),
        (200, 200),
        "no double creates: {s:?}"
    );
    let did = |m: &fly_preview_controller::ops::metrics::Metrics| {
        m.reconciles.with_label_values(&["ok"]).get()
    };
    assert!(did(&a.metrics) > 0 && did(&b.metrics) > 0, "both replicas worked");
    a.stop().await;
    b.stop().await;
}

#[sqlx::test]
async fn fly_faults_converge_without_duplicates_or_a_429_storm(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig { seed: 42, ..SimConfig::default() }).await;
    for f in [
        "any:503:p=0.1",
        "any:429:first=15",
        "create_machine:408-after-commit:p=0.3",
        "create_app:drop:p=0.05",
    ] {
        h.sim.add_fault(f.parse().unwrap());
    }
    insert_many(&pool, "faults", 60).await;
    let r = h.start("a");
    assert_converged_cleanly(&h, 60).await;
    let s = h.sim.stats();
    assert!(s.faults_injected_total > 0, "{s:?}");
    assert_eq!(
        s.rate_limited_total, 0,
        "the client's own buckets keep it under Fly's limits: {s:?}"
    );
    let throttled: u64 = r
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("fly_preview_fly_throttled_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!(
        "faults injected {}, self-caused 429s {}, client-side throttled waits {throttled}",
        s.faults_injected_total, s.rate_limited_total
    );
    r.stop().await;
}

#[sqlx::test]
async fn terminated_database_backends_are_survived(pool: PgPool) {
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), fast_leases()).await;
    insert_many(&pool, "db1", 30).await;
    let r = h.start("a");
    // Wait for a positive sign that the replica is connected and working: a claim landed.
    h.eventually("the replica claimed rows", || {
        r.metrics.reconciles.with_label_values(&["requeue"]).get()
            + r.metrics.reconciles.with_label_values(&["ok"]).get()
            > 0
    })
    .await;
    let kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let killed: i64 = sqlx::query_scalar(kill).fetch_one(&pool).await.unwrap();
    assert!(killed > 0, "the replica's connections were there to kill");
    insert_many(&pool, "db2", 30).await; // written while the listener reconnects
    let killed_again: i64 = sqlx::query_scalar(kill).fetch_one(&pool).await.unwrap();
    assert!(killed_again >= 0);
    assert_converged_cleanly(&h, 60).await;
    let resyncs = r.metrics.resyncs.with_label_values(&["listener"]).get()
        + r.metrics.resyncs.with_label_values(&["startup"]).get();
    assert!(resyncs >= 1, "a resync followed the reconnect");
    r.stop().await;
}
