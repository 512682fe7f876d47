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
