//! The quota is a hard bound on what runs: however a user interleaves redeploys and inserts,
//! their live machines never end above `MAX_PREVIEWS_PER_USER`, and a refused row keeps no app.

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::preview::settings::Settings;
use fly_preview_controller::store::PreviewRow;
use fly_sim::SimConfig;
use sqlx::PgPool;

const REPO: &str = "https://github.com/acme/site";
const LIMIT: usize = 3;

fn refused(r: &PreviewRow) -> bool {
    r.status == Status::Error && r.status_reason == Some(Reason::QuotaExceeded)
}

/// Machines alive in the simulator for these rows' apps.
fn live_machines(h: &Harness, rows: &[PreviewRow]) -> usize {
    rows.iter()
        .map(|r| h.sim.machines(&r.fly_app_name))
        .flat_map(|ms| ms.into_iter())
        .filter(|m| m["state"] != "destroyed")
        .count()
}

/// One request of the web app: redeploy a running preview and create a new one, together.
async fn redeploy_and_insert(pool: &PgPool, redeploy: uuid::Uuid, project: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'pending' WHERE id = $1")
        .bind(redeploy)
        .execute(&mut *tx)
        .await
        .unwrap();
    let name = fly_preview_controller::model::naming::app_name("roseram", USER_A, project);
    sqlx::query(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, status, github_repo_url) \
         VALUES ($1::uuid, $2, $3, 'pending', $4)",
    )
    .bind(USER_A)
    .bind(project)
    .bind(name)
    .bind(REPO)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[sqlx::test]
async fn redeploys_raced_with_inserts_in_waves_never_exceed_the_quota(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = LIMIT as u32;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let mut first = Vec::new();
    for i in 0..LIMIT {
        first.push(insert_row(&pool, USER_A, &format!("full-{i}"), Some(REPO), "main").await);
    }
    let r = h.start("a");
    for id in &first {
        h.wait_row(*id, "the first previews run", is_running).await;
    }
    for wave in 0..3 {
        redeploy_and_insert(&pool, first[wave % LIMIT], &format!("wave-{wave}")).await;
    }
    let rows = h.wait_all("converged", 60, |r| is_running(r) || refused(r)).await;
    let (waiting, running): (Vec<_>, Vec<_>) = rows.iter().cloned().partition(refused);
    assert_eq!((running.len(), waiting.len()), (LIMIT, 3), "{rows:#?}");
    assert!(first.iter().all(|id| running.iter().any(|r| r.id == *id)), "redeploys kept slots");
    assert!(live_machines(&h, &rows) <= LIMIT, "live machines: {}", live_machines(&h, &rows));
    for w in &waiting {
        assert!(h.sim.machines(&w.fly_app_name).is_empty(), "a refused row has no machine");
    }
    r.stop().await;
}

#[sqlx::test]
async fn a_row_refused_while_it_has_a_machine_loses_its_app(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = LIMIT as u32;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s.clone()).await;
    let mut ids = Vec::new();
    for i in 0..LIMIT {
        ids.push(insert_row(&pool, USER_A, &format!("had-{i}"), Some(REPO), "main").await);
    }
    let r = h.start("a");
    for id in &ids {
        h.wait_row(*id, "running", is_running).await;
    }
    r.stop().await;
    // The limit is lowered by one, and the newest row stands refused with its machine alive
    // (as an older release left such rows), due now.
    let sql = "UPDATE public.fly_preview_apps SET status = 'error', status_reason = 'QuotaExceeded', \
               next_attempt_at = now() WHERE id = $1 \
               AND (SELECT set_config('fly_preview.controller', 'on', true)) IS NOT NULL";
    sqlx::query(sql).bind(ids[LIMIT - 1]).execute(&pool).await.unwrap();
    let app = h.row(ids[LIMIT - 1]).await.fly_app_name;
    assert_eq!(h.sim.machines(&app).len(), 1);
    s.max_previews_per_user = (LIMIT - 1) as u32;
    let r = h.start_with("b", std::sync::Arc::new(s));
    let row = h
        .wait_row(ids[LIMIT - 1], "refused and parked", |r| {
            refused(r) && r.fly_machine_id.is_none() && r.lease_owner.is_none()
        })
        .await;
    assert_eq!(row.next_attempt_at, None);
    h.eventually("its app is gone", || !h.sim.app_names().contains(&app)).await;
    r.stop().await;
}

#[sqlx::test]
async fn a_stop_frees_its_slot_only_when_the_machine_is_gone(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = 2;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let a = insert_row(&pool, USER_A, "stop-a", Some(REPO), "main").await;
    let b = insert_row(&pool, USER_A, "stop-b", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(a, "running", is_running).await;
    h.wait_row(b, "running", is_running).await;
    // Fly takes 2 s to delete an app: the stopped preview's machine lives that long
    h.sim.add_fault("delete_app:latency=2s:always".parse().unwrap());
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE public.fly_preview_apps SET status = 'stopped' WHERE id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let name = fly_preview_controller::model::naming::app_name("roseram", USER_A, "stop-c");
    let c: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO public.fly_preview_apps (user_id, project_id, fly_app_name, github_repo_url) \
         VALUES ($1::uuid, 'stop-c', $2, $3) RETURNING id",
    )
    .bind(USER_A)
    .bind(name)
    .bind(REPO)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the new row never ran");
        let rows = h.store().list_all().await.unwrap();
        most = most.max(live_machines(&h, &rows));
        if rows.iter().any(|r| r.id == c && is_running(r)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(most <= 2, "at most the quota alive at any time, saw {most}");
    assert_eq!(h.row(a).await.status, Status::Stopped);
    r.stop().await;
}

/// The web app's writes to a refused row, in one transaction.
async fn web_app_writes(pool: &PgPool, id: uuid::Uuid, sets: &[&str]) {
    let mut tx = pool.begin().await.unwrap();
    for set in sets {
        let sql = format!("UPDATE public.fly_preview_apps SET {set} WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[sqlx::test]
async fn a_refused_row_its_user_changes_stays_refused_until_a_slot_frees(pool: PgPool) {
    let mut s = Settings::for_tests("personal");
    s.max_previews_per_user = 1;
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), s).await;
    let held = insert_row(&pool, USER_A, "held", Some(REPO), "main").await;
    let r = h.start("a");
    h.wait_row(held, "the first preview runs", is_running).await;
    let waiting = insert_row(&pool, USER_A, "waiting", Some(REPO), "main").await;
    h.wait_row(waiting, "the second is refused", refused).await;
    // A branch change; a stop undone before the controller saw it.
    let changes: [&[&str]; 2] =
        [&["github_branch = 'dev'"], &["status = 'stopped'", "desired_state = 'running'"]];
    for sets in changes {
        web_app_writes(&pool, waiting, sets).await;
        let row = h.row(waiting).await;
        assert_eq!(row.status_reason, Some(Reason::QuotaExceeded), "{sets:?}: still refused");
        let seen = |r: &PreviewRow| r.observed_generation == r.generation;
        let row = h.wait_row(waiting, "the controller's pass", seen).await;
        assert!(refused(&row), "{sets:?}: refused again, not deployed: {row:#?}");
        assert!(h.sim.machines(&row.fly_app_name).is_empty(), "{sets:?}: no machine");
    }
    web_app_writes(&pool, held, &["status = 'stopped'"]).await;
    h.wait_row(waiting, "the freed slot goes to the refused row", is_running).await;
    r.stop().await;
}
