//! The timeline per preview (`public.fly_preview_events`): written in the status write's own
//! statement and only when it lands, by triggers for `queued` and `deleted`, bounded to 50 per
//! preview, forgotten with a finished teardown; a deploy through the daemon records its
//! milestones and a converged preview records nothing more; `status --app NAME` prints it.

use std::time::Duration;

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::model::timeline::{Event, EventKind};
use fly_preview_controller::store::{Lease, StatusWrite, Store};
use fly_sim::SimConfig;
use sqlx::PgPool;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

async fn kinds(pool: &PgPool, id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT kind FROM public.fly_preview_events WHERE preview_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn progress(machine: &str) -> StatusWrite {
    StatusWrite {
        status: Status::Initializing,
        reason: Reason::WaitingForMachine,
        error_message: None,
        detail: None,
        preview_url: None,
        fly_machine_id: Some(machine.into()),
        machine_state: Some(MachineState::Created),
        observed_generation: Some(1),
        attempts: 0,
        next_attempt_at: Some(chrono::Utc::now()),
    }
}

#[sqlx::test]
async fn events_land_with_the_write_and_stay_bounded(pool: PgPool) {
    let id = insert_row(&pool, USER_A, "t1", Some("https://github.com/acme/site"), "main").await;
    assert_eq!(kinds(&pool, id).await, ["queued"], "the insert trigger");
    let s = Store::new(pool.clone(), "a");
    let row = s.claim(1, LEASE, 100).await.unwrap().remove(0);
    let evs = [Event::of(EventKind::AppCreated), Event::of(EventKind::MachineCreated)];
    let w = s.write_status_with(id, 1, &progress("m1"), Lease::Keep, &evs).await.unwrap();
    let landed: Vec<EventKind> = w.unwrap().events.into_iter().map(|(k, _)| k).collect();
    assert_eq!(landed, [EventKind::AppCreated, EventKind::MachineCreated]);
    let fenced = s.write_status_with(id, 2, &progress("m1"), Lease::Keep, &evs).await.unwrap();
    assert!(fenced.is_none());
    assert_eq!(kinds(&pool, id).await, ["queued", "app_created", "machine_created"]);
    let elapsed: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT elapsed_ms FROM public.fly_preview_events WHERE preview_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(elapsed[1].is_some_and(|ms| ms >= 0) && elapsed[2] == Some(0), "{elapsed:?}");
    for _ in 0..60 {
        let ev = [Event::of(EventKind::MachineStarted)];
        s.write_status_with(id, row.generation, &progress("m1"), Lease::Keep, &ev).await.unwrap();
    }
    let all = kinds(&pool, id).await;
    assert_eq!(all.len(), 50, "bounded: the oldest are pruned");
    assert!(all.iter().all(|k| k == "machine_started"));
    had_app(&pool, &[id]).await; // a row that had an app leaves a tombstone and its timeline
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(kinds(&pool, id).await.last().map(String::as_str), Some("deleted"));
    assert_eq!(s.timeline(&row.fly_app_name, 5).await.unwrap().len(), 5, "via the tombstone");
    sqlx::query("DELETE FROM fly_preview_controller.tombstones WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(kinds(&pool, id).await.is_empty(), "a finished teardown forgets the timeline");
}

#[sqlx::test]
async fn users_read_only_their_own_events_and_write_none(pool: PgPool) {
    let id = insert_row(&pool, USER_A, "t2", Some("https://github.com/acme/site"), "main").await;
    for (user, seen) in [(USER_A, 1), (USER_B, 0)] {
        let mut tx = pool.begin().await.unwrap();
        become_user(&mut tx, user).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_events")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, seen, "{user}");
    }
    for sql in [
        "INSERT INTO public.fly_preview_events (preview_id, user_id, kind) VALUES ($1, auth.uid(), 'running')",
        "UPDATE public.fly_preview_events SET kind = 'running' WHERE preview_id = $1",
        "DELETE FROM public.fly_preview_events WHERE preview_id = $1",
    ] {
        let mut tx = pool.begin().await.unwrap();
        become_user(&mut tx, USER_A).await;
        let err = sqlx::query(sql).bind(id).execute(&mut *tx).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE anon").execute(&mut *tx).await.unwrap();
    let err =
        sqlx::query("SELECT 1 FROM public.fly_preview_events").execute(&mut *tx).await.unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "anon sees nothing: {err}");
}

#[sqlx::test]
async fn a_deploy_records_its_milestones_and_then_nothing(pool: PgPool) {
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    let id = insert_row(&pool, USER_A, "t3", Some("https://github.com/acme/site"), "main").await;
    let r = h.start("a");
    let row = h.wait_row(id, "running", is_running).await;
    let sha = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    h.sim.push_revision(&row.fly_app_name, sha);
    crate::sync::save(&pool, id, sha).await;
    crate::sync::wait_cols(&pool, id, "confirmed", |c| c.served_revision.as_deref() == Some(sha))
        .await;
    let got = kinds(&pool, id).await;
    for want in [
        "queued",
        "app_created",
        "machine_created",
        "machine_started",
        "dev_server_answered",
        "running",
    ] {
        assert!(got.iter().any(|k| k == want), "{want} not in {got:?}");
    }
    assert_eq!(got.last().map(String::as_str), Some("sync_confirmed"), "{got:?}");
    let pos = |k: &str| got.iter().position(|g| g == k).unwrap();
    assert!(pos("queued") < pos("machine_created") && pos("machine_created") < pos("running"));
    let detail: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM public.fly_preview_events WHERE preview_id = $1 AND kind = 'sync_confirmed'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(detail["revision"], sha);
    // Converged: drift and sync sweeps keep looking, the timeline stays as it is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(kinds(&pool, id).await, got, "a converged preview records nothing");
    let text = r.metrics.encode();
    for phase in ["machine_created", "dev_server_answered", "running"] {
        let series = format!("fly_preview_phase_seconds_count{{phase=\"{phase}\"}} 1");
        assert!(text.contains(&series), "{series} not in the exposition");
    }
    r.stop().await;
    let printed = status_app(&pool, &row.fly_app_name).await;
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2 + got.len(), "a header and one line per event:\n{printed}");
    assert!(lines[2].contains("queued") && lines[2].contains("DeployRequested"), "{printed}");
    assert!(lines.last().is_some_and(|l| l.contains("sync_confirmed") && l.contains(sha)));
}

/// `fly-preview-controller status --app NAME` against the test's database: its stdout.
async fn status_app(pool: &PgPool, app: &str) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(pool).await.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .args(["status", "--app", app])
        .env_clear()
        .env("DATABASE_URL", format!("postgres://postgres@127.0.0.1:5432/{db}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
