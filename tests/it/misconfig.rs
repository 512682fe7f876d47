//! Misconfiguration is global, not per row: a replica whose token, org or
//! runner image Fly refuses takes no work, never leads, writes nothing to rows, says why on
//! `/readyz`, and resumes on its own when the condition clears.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::harness::{Harness, Replica, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use sqlx::PgPool;

fn blocked_on(r: &Replica, setting: &str) -> bool {
    r.health.ready().is_err_and(|why| why.contains(setting))
}

fn passes(r: &Replica) -> u64 {
    let m = &r.metrics;
    ["ok", "requeue", "error", "permanent", "fenced", "blocked"]
        .iter()
        .map(|l| m.reconciles.with_label_values(&[l]).get())
        .sum()
}

fn untouched(r: &PreviewRow) -> bool {
    r.status == Status::Pending
        && r.lease_owner.is_none()
        && r.attempts == 0
        && r.status_reason == Some(Reason::DeployRequested)
}

#[sqlx::test]
async fn misconfigured_replicas_stay_out_and_the_healthy_one_does_all_the_work(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let revoked = "fo1_revoked_token_value_9876543210";
    let bad_token = h.start_with_token("bad-token", h.settings.clone(), revoked);
    let bad_org = h.start_with("bad-org", Arc::new(Settings::for_tests("no-such-org")));
    h.eventually("both know they are misconfigured", || {
        blocked_on(&bad_token, "FLY_API_TOKEN") && blocked_on(&bad_org, "FLY_ORG")
    })
    .await;
    let ids = insert_rows(&pool, 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in &ids {
        assert!(untouched(&h.row(*id).await), "a misconfigured replica wrote a row");
    }
    let good = h.start("good");
    h.wait_all("all running", 60, is_running).await;
    h.eventually("the healthy replica leads", || good.metrics.leader.get() == 1).await;
    let rows = h.store().list_all().await.unwrap();
    let mid = rows[0].fly_machine_id.clone().unwrap();
    assert!(h.sim.destroy_machine_behind_back(&rows[0].fly_app_name, &mid));
    let destroyed = Instant::now();
    h.eventually("drift repaired", || h.sim.machines(&rows[0].fly_app_name).len() == 1).await;
    h.wait_all("all running again", 30, is_running).await;
    let repair = destroyed.elapsed();
    println!("misconfigured replicas: drift repaired by the healthy leader in {repair:?}");
    assert!(repair < Duration::from_secs(10), "{repair:?}");
    for bad in [&bad_token, &bad_org] {
        assert_eq!((passes(bad), bad.metrics.leader.get()), (0, 0), "no work, never leader");
        assert!(bad.health.ready().is_err());
    }
    assert!(blocked_on(&bad_org, "FLY_ORG") && blocked_on(&bad_token, "FLY_API_TOKEN"));
    for r in [bad_token, bad_org, good] {
        r.stop().await;
    }
}

#[sqlx::test]
async fn a_rejected_token_blocks_without_touching_rows_and_clears_on_its_own(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    h.sim.add_fault("any:401:always".parse().unwrap());
    let r = h.start("a");
    h.eventually("blocked", || blocked_on(&r, "FLY_API_TOKEN")).await;
    let ids = insert_rows(&pool, 10).await;
    let before = h.sim.stats().requests_total;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = h.sim.stats().requests_total - before;
    for id in &ids {
        assert!(untouched(&h.row(*id).await), "a blocked replica wrote a row");
    }
    assert!(during <= 5, "probes only, about one a second: {during} requests in 3 s");
    h.sim.clear_faults();
    let cleared = Instant::now();
    h.wait_all("all running once the token works", 30, is_running).await;
    println!(
        "token blocked: {during} Fly requests in 3 s; all running {:?} after it cleared",
        cleared.elapsed()
    );
    assert!(r.health.ready().is_ok() || r.health.blocked().is_none());
    assert!(passes(&r) > 0);
    r.stop().await;
}

#[sqlx::test]
async fn a_refused_runner_image_is_global_and_no_row_turns_error(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.runner.image = "registry.example/sim-unpullable:1".into();
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let r = h.start("a");
    let ids = insert_rows(&pool, 5).await;
    h.eventually("blocked on the image", || blocked_on(&r, "RUNNER_IMAGE")).await;
    let creates = || h.sim.request_log().iter().filter(|l| l.action == "create_machine").count();
    tokio::time::sleep(Duration::from_secs(1)).await; // passes already in flight end
    let first_wave = creates();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = creates() - first_wave;
    println!("image refused: {first_wave} creates before it was known, {later} in the 3 s after");
    assert!(later <= 1, "then one paced probe pass at most, not one per row: {later}");
    for id in &ids {
        let row = h.row(*id).await;
        assert_ne!(row.status, Status::Error, "{row:?}");
        assert!(row.error_message.is_none(), "{row:?}");
    }
    assert_eq!(r.metrics.leader.get(), 0, "a blocked replica does not lead");
    r.stop().await;
}

#[sqlx::test]
async fn a_leader_whose_token_is_revoked_steps_down_and_leads_again_when_it_works(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let r = h.start("a");
    h.eventually("leader", || r.metrics.leader.get() == 1).await;
    h.sim.add_fault("any:401:always".parse().unwrap());
    h.eventually("blocked and stepped down", || {
        blocked_on(&r, "FLY_API_TOKEN") && r.metrics.leader.get() == 0
    })
    .await;
    let holder: Option<String> =
        sqlx::query_scalar("SELECT holder FROM fly_preview_controller.leader")
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(holder, None, "the leadership was given up, not left to expire");
    h.eventually("the blocked gauge shows it", || r.metrics.blocked.get() == 1).await;
    h.sim.clear_faults();
    h.eventually("leads again", || r.metrics.leader.get() == 1).await;
    assert!(r.health.blocked().is_none());
    r.stop().await;
}
