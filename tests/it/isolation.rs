//! Isolation: every preview app is created on its own private network, the happy path still
//! costs at most 6 Fly calls per app, and an app that already exists on the org's shared
//! network (Fly cannot move it) is adopted, reported, and isolated by a stop + redeploy.

use std::collections::HashSet;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::model::naming;
use fly_sim::SimConfig;
use sqlx::PgPool;

#[sqlx::test]
async fn every_preview_app_gets_its_own_private_network(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    insert_rows(&pool, 10).await;
    let r = h.start("a");
    let rows = h.wait_all("all running", 60, is_running).await;
    let nets = h.sim.app_networks();
    assert_eq!(nets.len(), 10);
    for (app, net) in &nets {
        assert_eq!(net, &naming::network_name(app), "{app} has its own network");
    }
    let distinct: HashSet<&String> = nets.iter().map(|(_, n)| n).collect();
    assert_eq!(distinct.len(), 10, "no two previews share a network");
    let most = rows.iter().map(|row| h.calls_for(&row.fly_app_name).len()).max().unwrap();
    println!("isolation: 10 apps on 10 networks; at most {most} Fly calls per app");
    assert!(most <= 6, "happy path stays at ≤ 6 Fly calls per app: {most}");
    r.stop().await;
}

#[sqlx::test]
async fn an_app_on_the_shared_network_is_adopted_reported_and_isolated_by_a_redeploy(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id = insert_row(&pool, USER_A, "legacy", Some(REPO_URL), "main").await;
    let app = h.row(id).await.fly_app_name;
    h.sim.create_app_direct(&app, false); // created before per-app networks
    let r = h.start("a");
    h.wait_row(id, "running (adopted)", is_running).await;
    let shared = || r.metrics.apps_on_shared_network.get();
    h.eventually("reported by the full resync", || shared() == 1).await;
    let net = |h: &Harness| h.sim.app_networks().into_iter().find(|(a, _)| *a == app).map(|x| x.1);
    assert_eq!(net(&h).as_deref(), Some("default"), "Fly cannot move it: still shared");
    for status in ["stopped", "pending"] {
        sqlx::query("UPDATE public.fly_preview_apps SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        let want = if status == "stopped" { Status::Stopped } else { Status::Running };
        h.wait_row(id, status, |row| {
            row.status == want && row.observed_generation == row.generation
        })
        .await;
    }
    assert_eq!(net(&h), Some(naming::network_name(&app)), "recreated on its own network");
    h.eventually("no shared-network app left", || shared() == 0).await;
    r.stop().await;
}

const REPO_URL: &str = "https://github.com/acme/site";
