//! A dev server that crash-loops after it served: the runner exits 7 (after FAILURE_LINGER),
//! drift sees the stopped machine, and the row leaves `running` for `error`
//! (`DevServerCrashed`) with one sentence for the user and the runner's report in
//! `status_detail`; the machine is not restarted blindly. The next save (`revision`) starts it
//! again and the row returns to `running` when the `dev` check passes, then the save is
//! confirmed. Timings here: FAILURE_LINGER 1s, DRIFT_INTERVAL 500ms (production defaults:
//! 20s and 15s, so the row leaves `running` at most linger + one drift interval + one pass
//! after the runner declares the crash loop).

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use crate::sync::{save, wait_cols};
use fly_preview_controller::preview::settings::Settings;
use fly_sim::SimConfig;
use sqlx::PgPool;
use std::time::Duration;

const REPO: &str = "https://github.com/acme/site";
const FIX: &str = "fe11fe11fe11fe11fe11fe11fe11fe11fe11fe11";

#[sqlx::test]
async fn a_crash_loop_leaves_running_and_the_next_save_brings_it_back(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.runner.failure_linger = "1s".to_owned();
    s.drift_interval = Duration::from_millis(500);
    // Shorter than the time between the first deploy and the save, longer than a boot: the
    // restart after the save gets a deadline of its own.
    s.init_deadline = Duration::from_secs(3);
    let boot = Duration::from_secs(1);
    let sim = SimConfig { boot_time: boot, check_delay: boot / 2, ..SimConfig::default() };
    let h = Harness::with_settings(pool.clone(), sim, s).await;
    let id = insert_row(&pool, USER_A, "crash", Some(REPO), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let (app, machine) = (row.fly_app_name.clone(), row.fly_machine_id.clone().unwrap());
    assert!(h.sim.crash_loop_dev_server(&app, &machine));

    // `wait_row` gives up after 60 s: the row must leave `running` well within that.
    let row = h.wait_row(id, "error", |r| r.status == Status::Error).await;
    assert_eq!(row.status_reason, Some(Reason::DevServerCrashed), "{row:?}");
    let msg = row.error_message.clone().unwrap_or_default();
    assert!(msg.starts_with("the dev server kept crashing: the dev server crashed"), "{msg}");
    assert!(msg.contains("save: the preview starts again by itself"), "{msg}");
    let detail = row.status_detail.clone().unwrap_or_default();
    assert!(detail.contains("exit code 7") && detail.contains("ERROR: Expected"), "{detail}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = h.row(id).await;
    assert_eq!((still.status, still.machine_state), (Status::Error, row.machine_state.clone()));
    assert_eq!(h.sim.machines(&app)[0]["state"], "stopped", "not restarted without a save");

    h.sim.push_revision(&app, FIX);
    save(&pool, id, FIX).await;
    let back = h.wait_row(id, "running again", is_running).await;
    assert_eq!((back.status_reason, back.error_message), (Some(Reason::Ready), None));
    assert_eq!(back.fly_machine_id.as_deref(), Some(machine.as_str()), "the same machine");
    wait_cols(&pool, id, "the save confirmed", |c| c.served_revision.as_deref() == Some(FIX)).await;
    let timeline: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM public.fly_preview_events WHERE preview_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let after = |k: &str| {
        let at = timeline.iter().rposition(|t| t == k);
        at.unwrap_or_else(|| panic!("no {k} in {timeline:?}"))
    };
    assert!(after("crash_loop") < after("restarted"), "{timeline:?}");
    assert!(after("restarted") < after("running"), "{timeline:?}");
    r.stop().await;
}

/// A save is a restart request only for failures a code fix repairs.
#[sqlx::test]
async fn a_save_restarts_only_previews_a_code_fix_repairs(pool: PgPool) {
    let cases = [
        (Reason::DevServerCrashed, true),
        (Reason::DevServerNeverServed, true),
        (Reason::InstallFailed, true),
        (Reason::NoDevScript, true),
        (Reason::OutOfMemory, true),
        (Reason::CloneFailed, false),
        (Reason::InvalidSpec, false),
        (Reason::HealthDeadlineExceeded, false),
    ];
    for (i, (reason, restarts)) in cases.into_iter().enumerate() {
        let id = insert_row(&pool, USER_A, &format!("s{i}"), Some(REPO), "main").await;
        let verdict = "UPDATE public.fly_preview_apps SET status = 'error', status_reason = $2, \
                       next_attempt_at = 'infinity', requested_at = now() - interval '1 hour' \
                       WHERE id = $1 AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
        sqlx::query(verdict).bind(id).bind(reason).execute(&pool).await.unwrap();
        save(&pool, id, FIX).await;
        let (now_reason, due, fresh): (Reason, bool, bool) = sqlx::query_as(
            "SELECT status_reason, next_attempt_at <= now(), requested_at > now() - interval '1 minute' \
             FROM public.fly_preview_apps WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let want = if restarts { Reason::RestartOnSave } else { reason };
        assert_eq!((now_reason, due, fresh), (want, restarts, restarts), "{reason}");
    }
}
