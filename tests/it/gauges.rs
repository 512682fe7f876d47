//! Status gauges follow the table: after every status change they show
//! the table's counts within one statistics interval.

use std::time::{Duration, Instant};

use crate::support::harness::{Harness, Replica, is_running};
use crate::support::*;
use fly_sim::SimConfig;
use sqlx::PgPool;

fn gauge(r: &Replica, s: Status) -> i64 {
    r.metrics.previews.with_label_values(&[s.as_str()]).get()
}

async fn agrees_within_one_interval(h: &Harness, r: &Replica) -> Duration {
    let rows = h.store().list_all().await.unwrap();
    let since = Instant::now();
    let limit = h.settings.stats_interval + Duration::from_millis(300);
    loop {
        let ok = Status::ALL
            .iter()
            .all(|s| gauge(r, *s) == rows.iter().filter(|row| row.status == *s).count() as i64);
        if ok {
            return since.elapsed();
        }
        let seen: Vec<_> = Status::ALL.iter().map(|s| (s.as_str(), gauge(r, *s))).collect();
        assert!(since.elapsed() < limit, "gauges {seen:?} lag the table after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn status_gauges_reflect_the_table_within_one_stats_interval(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let ids = insert_rows(&pool, 20).await;
    let r = h.start("a");
    h.wait_all("all running", 60, is_running).await;
    let first = agrees_within_one_interval(&h, &r).await;
    for id in &ids[..5] {
        sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    h.wait_all("five stopped", 60, |row| {
        is_running(row)
            || (row.status == Status::Stopped && row.observed_generation == row.generation)
    })
    .await;
    let second = agrees_within_one_interval(&h, &r).await;
    println!("gauges agreed with the table {first:?} and {second:?} after convergence");
    r.stop().await;
}

#[sqlx::test]
async fn cost_gauges_follow_the_machines_and_status_lists_users_by_cost(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    insert_row(&pool, USER_A, "c1", Some("https://github.com/acme/site"), "main").await;
    insert_row(&pool, USER_A, "c2", Some("https://github.com/acme/site"), "main").await;
    insert_row(&pool, USER_B, "c3", Some("https://github.com/acme/site"), "main").await;
    let r = h.start("a");
    h.wait_all("all running", 60, is_running).await;
    let machines = |r: &Replica| {
        r.metrics.fleet.machines.with_label_values(&["started", "shared-cpu-1x-2048mb"]).get()
    };
    let dollars = |r: &Replica| r.metrics.fleet.monthly_cost.with_label_values(&["started"]).get();
    h.eventually("the fleet gauges", || machines(&r) == 3).await;
    assert!((dollars(&r) - 3.0 * 12.7).abs() < 1e-6, "{}", dollars(&r));
    // the CLI's per-user view of the same table
    let url = crate::controller_role::url_as(&pool, "postgres").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .args(["status", "--by-user", "--json"])
        .env("DATABASE_URL", url)
        // the size the harness's machines have (the CLI's default is performance-1x)
        .env("RUNNER_CPU_KIND", "shared")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users[0]["user_id"], USER_A, "{users}");
    assert_eq!((users[0]["previews"].as_i64(), users[0]["started"].as_i64()), (Some(2), Some(2)));
    assert!((users[0]["monthly_dollars"].as_f64().unwrap() - 25.4).abs() < 1e-6, "{users}");
    r.stop().await;
}
