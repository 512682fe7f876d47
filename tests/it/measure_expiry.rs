//! Measurement for BENCHMARKS.md, "Idle expiry and wake on open" (ignored by default; it
//! prints figures and asserts only that each step happened):
//!   cargo test --test it measure_expiry -- --ignored --nocapture --test-threads=1
//! One replica against the simulator with Fly-like timings (`SimConfig::realistic`: create
//! 0.5 s, boot 2 s, a resume from suspend a quarter of a boot) and local Postgres. Wall time
//! seen by the test, which polls the row and the simulator every 10 ms.

use std::time::{Duration, Instant};

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

/// Longer than a first deploy here (about 7 s), so the preview settles before it is due.
const TTL: Duration = Duration::from_secs(10);
const WAKES: usize = 9;

async fn until(h: &Harness, id: Uuid, pred: impl Fn(&PreviewRow) -> bool) -> PreviewRow {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row = h.row(id).await;
        if pred(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "{row:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// From the write of `opened_at` to the controller's `start` call logged by the simulator,
/// and to the simulator's machine `started`, seconds.
async fn wake_once(h: &Harness, id: Uuid, suspend: bool) -> (f64, f64) {
    let row = until(h, id, |r| is_running(r) && r.status_reason == Some(Reason::Ready)).await;
    let (app, m) = (row.fly_app_name.clone(), row.fly_machine_id.clone().unwrap());
    // Autostop puts it to sleep once its checks passed (the sim's machine is settled).
    while h.sim.machines(&app)[0]["state"] != "started" {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Apart like real opens: Fly's per-machine budget (which the client keeps) is not the
    // figure here.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.sim.idle_stop(&app, &m, suspend));
    let from = h.sim.request_log().len();
    let started_call = || {
        h.sim.request_log()[from..]
            .iter()
            .any(|r| r.action == "start_machine" && r.path.contains(&app))
    };
    let t = Instant::now();
    open_project(&h.pool, id).await;
    let mut call = None;
    while h.sim.machines(&app)[0]["state"] != "started" {
        assert!(t.elapsed() < Duration::from_secs(60), "never woke");
        if call.is_none() && started_call() {
            call = Some(t.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    until(h, id, |r| r.status_reason == Some(Reason::Ready) && r.updated_at > row.updated_at).await;
    (call.unwrap_or(secs), secs)
}

fn summary(xs: &[f64]) -> String {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    format!(
        "median {:.2} s, min {:.2} s, max {:.2} s (n={})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

#[sqlx::test]
#[ignore = "measurement for BENCHMARKS.md"]
async fn measure_expiry_reopen_and_wake(pool: PgPool) {
    let hour = Duration::from_secs(3600);
    let s = Settings {
        idle_ttl: TTL,
        drift_interval: hour,
        full_resync_interval: hour,
        ..Settings::for_tests("personal")
    };
    let h = Harness::with_settings(pool.clone(), SimConfig::realistic(), s).await;
    let id = insert_row(&pool, USER_A, "site", Some("https://github.com/acme/site"), "main").await;
    let r = h.start("a");
    let t = Instant::now();
    let row = until(&h, id, is_running).await;
    println!("first deploy → running: {:.2} s", t.elapsed().as_secs_f64());
    let due = row.next_attempt_at.unwrap();
    let expired = until(&h, id, |r| r.status_reason == Some(Reason::Expired)).await;
    let late = (expired.updated_at - due).num_milliseconds() as f64 / 1e3;
    println!("TTL {TTL:?}: expired (app deleted, row written) {late:.2} s after its due time");
    println!("  message: {:?}", expired.error_message.unwrap_or_default());
    r.stop().await;

    let r = h.start_with("b", Settings { idle_ttl: hour, ..(*h.settings).clone() }.into());
    let t = Instant::now();
    open_project(&pool, id).await;
    until(&h, id, is_running).await;
    println!("reopen (opened_at written) → running again: {:.2} s", t.elapsed().as_secs_f64());
    for (suspend, what) in [(true, "suspended"), (false, "stopped")] {
        let (mut calls, mut started) = (Vec::new(), Vec::new());
        for _ in 0..WAKES {
            let (call, up) = wake_once(&h, id, suspend).await;
            calls.push(call);
            started.push(up);
        }
        println!("wake on open, machine {what} by autostop:");
        println!("  opened_at written → start call: {}", summary(&calls));
        println!("  opened_at written → machine started: {}", summary(&started));
    }
    println!("wakes counted: {}", r.metrics.wakes.get());
    r.stop().await;
}
