//! A running preview's stop is one round of Fly calls (the app, its machines and the destroy
//! of the recorded machine, at once), and destroys every machine the app has. Real Postgres,
//! in-process simulator with a fixed latency per call, so calls made one after another arrive
//! at least that far apart.

use std::time::Duration;

use crate::support::fly_mock::create_req;
use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::ops::metrics::Metrics;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::{LoggedRequest, SimConfig};
use sqlx::PgPool;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/site";
/// Every simulated Fly call answers after this long.
const LATENCY: Duration = Duration::from_millis(300);

/// No drift pass in the test's window: the only calls for the app are the stop's.
async fn harness(pool: &PgPool) -> Harness {
    let mut s = Settings::for_tests("personal");
    s.drift_interval = Duration::from_secs(3600);
    s.full_resync_interval = Duration::from_secs(3600);
    Harness::with_settings(
        pool.clone(),
        SimConfig { api_latency: LATENCY, ..SimConfig::default() },
        s,
    )
    .await
}

async fn request_stop(pool: &PgPool, id: Uuid) {
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

/// The calls for `app` logged from position `from` on, by arrival.
fn calls(h: &Harness, app: &str, from: usize) -> Vec<LoggedRequest> {
    let mut log: Vec<LoggedRequest> =
        h.sim.request_log().into_iter().skip(from).filter(|r| r.path.contains(app)).collect();
    log.sort_by_key(|r| r.at_ms);
    log
}

fn actions(log: &[LoggedRequest]) -> Vec<&'static str> {
    let mut a: Vec<&'static str> = log.iter().map(|r| r.action).collect();
    a.sort_unstable();
    a
}

/// The row's request → `stopped` time, by the database clock.
async fn stop_secs(pool: &PgPool, id: Uuid) -> f64 {
    let sql = "SELECT extract(epoch FROM last_transition_at - requested_at)::float8 \
               FROM public.fly_preview_apps WHERE id = $1";
    sqlx::query_scalar(sql).bind(id).fetch_one(pool).await.unwrap()
}

#[sqlx::test]
async fn a_running_previews_stop_is_one_round_of_three_calls(pool: PgPool) {
    let h = harness(&pool).await;
    let id = insert_row(&pool, USER_A, "s", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let from = h.sim.request_log().len();
    request_stop(&pool, id).await;
    h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    let log = calls(&h, &row.fly_app_name, from);
    assert_eq!(actions(&log), ["destroy_machine", "get_app", "list_machines"], "{log:?}");
    let destroy = log.iter().find(|c| c.action == "destroy_machine").unwrap();
    assert!(destroy.path.ends_with(row.fly_machine_id.as_deref().unwrap()), "{destroy:?}");
    assert!(destroy.query.contains("force=true"), "{destroy:?}");
    let spread = log.last().unwrap().at_ms - log[0].at_ms;
    assert!(spread < LATENCY.as_millis() as u64, "one round, not one after another: {log:?}");
    assert!(h.sim.machines(&row.fly_app_name).is_empty(), "nothing runs");
    println!("stop with {LATENCY:?} per call: {:.3} s", stop_secs(&pool, id).await);
    r.stop().await;
}

#[sqlx::test]
async fn a_stop_destroys_machines_the_row_does_not_know_too(pool: PgPool) {
    let h = harness(&pool).await;
    let id = insert_row(&pool, USER_A, "x", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let extra = h.fly(&Metrics::new()).create_machine(&row.fly_app_name, &create_req()).await;
    let extra = extra.unwrap().id;
    assert_eq!(h.sim.machines(&row.fly_app_name).len(), 2);
    let from = h.sim.request_log().len();
    request_stop(&pool, id).await;
    h.wait_row(id, "stopped", |r| r.status == Status::Stopped).await;
    assert!(h.sim.machines(&row.fly_app_name).is_empty(), "nothing runs");
    let log = calls(&h, &row.fly_app_name, from);
    let destroyed: Vec<&str> = log
        .iter()
        .filter(|c| c.action == "destroy_machine")
        .map(|c| c.path.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(destroyed, [row.fly_machine_id.as_deref().unwrap(), extra.as_str()], "{log:?}");
    r.stop().await;
}
