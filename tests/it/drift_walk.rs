//! Drift at rest: the full verification walks Fly's org machine listing page by page (back to
//! back when a leader starts, then paced at one page per tenth of `FULL_RESYNC_INTERVAL`, so
//! its Fly calls at rest do not grow with the fleet); a machine autostop *stopped* (previews
//! over 2 GB, which Fly cannot suspend) is asleep, not broken.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::model::MachineState;
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use serde_json::json;
use sqlx::PgPool;

/// Our machines on Fly with no rows: 3 pages of the org listing.
const FLEET: usize = 2_500;

/// A page of a walk: when it was read, and how many drift ticks (listings with
/// `updated_after`) came between it and the page before.
#[derive(Debug)]
struct Page {
    at_ms: u64,
    ticks_before: usize,
}

/// The walks' pages in the simulator's log (listings without `updated_after`: the ticks and
/// the probe always send one; a walk's first page has no cursor).
fn walks(log: &[fly_sim::LoggedRequest]) -> Vec<Vec<Page>> {
    let mut out: Vec<Vec<Page>> = Vec::new();
    let mut ticks = 0;
    for q in log.iter().filter(|q| q.action == "org_machines") {
        if q.query.contains("updated_after") {
            ticks += 1;
            continue;
        }
        let page = Page { at_ms: q.at_ms, ticks_before: std::mem::take(&mut ticks) };
        match out.last_mut() {
            Some(w) if q.query.contains("cursor") => w.push(page),
            _ => out.push(vec![page]),
        }
    }
    out
}

#[sqlx::test]
async fn a_full_verification_at_rest_reads_one_page_per_tenth_of_its_interval(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.drift_interval = Duration::from_millis(200);
    s.full_resync_interval = Duration::from_secs(5);
    s.sweep_dry_run = true; // no rows: every app is an orphan, only logged
    let h = Harness::with_settings(pool, SimConfig::default(), s).await;
    let ours = json!({"managed-by": "fly-preview-controller"});
    for i in 0..FLEET {
        let app = format!("roseram-{i:08x}");
        assert!(h.sim.create_app_with_machine_direct(&app, Some(ours.clone())).is_some());
    }
    let r = h.start("a");
    let verified = || r.metrics.resyncs.with_label_values(&["periodic"]).get();
    h.eventually("two full verifications", || verified() >= 2).await;
    r.stop().await;
    let walks = walks(&h.sim.request_log());
    assert!(walks.len() >= 2 && walks[..2].iter().all(|w| w.len() == 3), "{walks:?}");
    let later = |w: &[Page]| w[1..].iter().map(|p| p.ticks_before).collect::<Vec<_>>();
    assert_eq!(later(&walks[0]), [0, 0], "the leader's first walk hurries: {walks:?}");
    assert!(later(&walks[1]).iter().all(|t| *t >= 1), "ticks go on between pages: {walks:?}");
    let gaps: Vec<u64> = walks[1].windows(2).map(|p| p[1].at_ms - p[0].at_ms).collect();
    assert!(gaps.iter().all(|g| *g >= 500), "later walks read a page per 500 ms: {walks:?}");
    assert!(walks[1][0].at_ms - walks[0][0].at_ms >= 5_000, "a walk per interval: {walks:?}");
    let app_listings = h.sim.request_log().iter().filter(|q| q.action == "list_apps").count();
    // One app listing per walk (the shared-network report), before its first page; the
    // last walk may have listed the apps and been stopped before its first page.
    let n = walks.len();
    assert!((n..=n + 1).contains(&app_listings), "{app_listings} app listings, {n} walks");
}

#[sqlx::test]
async fn a_machine_autostop_stopped_is_asleep_where_autostop_stops(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.runner.memory_mb = 4096; // over 2 GB: autostop `stop`
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let id = insert_row(&pool, USER_A, "big", Some("https://github.com/acme/site"), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let machine = row.fly_machine_id.clone().unwrap();
    assert!(h.sim.idle_stop(&row.fly_app_name, &machine, false));
    h.wait_row(id, "the stop recorded as sleep", |r| {
        r.machine_state == Some(MachineState::Stopped)
    })
    .await;
    let verified = || r.metrics.resyncs.with_label_values(&["periodic"]).get();
    let seen = verified();
    h.eventually("two more full verifications", || verified() >= seen + 2).await;
    r.stop().await;
    let m = &h.sim.machines(&row.fly_app_name)[0];
    assert_eq!(m["state"], "stopped", "left asleep, not started: {m}");
    let row = h.row(id).await;
    assert_eq!(row.status_reason.map(|r| r.as_str()), Some("Idle"), "{row:#?}");
    let starts = h.calls_for(&row.fly_app_name).iter().filter(|c| c.contains("/start")).count();
    assert_eq!(starts, 0, "no start: {:?}", h.calls_for(&row.fly_app_name));
}
