//! Installing on a live project: the web app's existing table (fixture) is upgraded in place,
//! keeps every row and every protection, and then converges.

use crate::support::harness::{Harness, is_running};
use crate::support::*;
use fly_preview_controller::model::naming;
use fly_preview_controller::store;
use fly_sim::SimConfig;
use sqlx::PgPool;

const FIXTURE: &str = include_str!("../fixtures/seed-era-fly_preview_apps.sql");
const ORIGINAL: &str = "SELECT json_agg(json_build_object('id', id, 'project_id', project_id, 'user_id', user_id, \
    'fly_app_name', fly_app_name, 'preview_url', preview_url, 'status', status, 'error_message', error_message, \
    'github_repo_url', github_repo_url, 'github_branch', github_branch, 'created_at', created_at, 'updated_at', updated_at) \
    ORDER BY id)::text FROM public.fly_preview_apps";

async fn seed(pool: &PgPool) {
    sqlx::raw_sql(FIXTURE).execute(pool).await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn migrate_upgrades_the_existing_table_in_place(pool: PgPool) {
    seed(&pool).await;
    let before: String = sqlx::query_scalar(ORIGINAL).fetch_one(&pool).await.unwrap();
    let report = store::migrate::rehearse(&pool).await.unwrap();
    assert!(report.contains("+ column desired_state"), "{report}");
    assert!(report.contains("- policy \"Users can view their own preview apps\""), "{report}");
    assert!(report.contains("stopped -> desired_state stopped: 1"), "{report}");
    assert_eq!(
        sqlx::query_scalar::<_, String>(ORIGINAL).fetch_one(&pool).await.unwrap(),
        before,
        "the rehearsal changed nothing"
    );
    assert_eq!(store::migrate::run(&pool).await.unwrap().len(), store::MIGRATOR.iter().count());
    assert!(store::migrate::run(&pool).await.unwrap().is_empty(), "second run is a no-op");
    let after: String = sqlx::query_scalar(ORIGINAL).fetch_one(&pool).await.unwrap();
    assert_eq!(after, before, "every row and every original value is kept");
    let rows: Vec<(String, String, i64, i64, Option<String>, String)> = sqlx::query_as(
        "SELECT status, desired_state, generation, observed_generation, status_reason, pg_typeof(project_id)::text FROM public.fly_preview_apps ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    for (status, desired, generation, observed, reason, ty) in rows {
        assert_eq!((generation, observed, ty.as_str()), (1, 0, "uuid"), "project_id stays uuid");
        let (want_desired, want_reason) = if status == "stopped" {
            ("stopped", "TeardownRequested")
        } else {
            ("running", "DeployRequested")
        };
        assert_eq!((desired.as_str(), reason.as_deref()), (want_desired, Some(want_reason)));
    }
}

#[sqlx::test(migrations = false)]
async fn upgraded_table_still_protects_users(pool: PgPool) {
    seed(&pool).await;
    store::migrate::run(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let users: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT user_id::text FROM public.fly_preview_apps")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(users, vec![USER_A.to_string()], "only her own rows");
    let err = sqlx::query("UPDATE public.fly_preview_apps SET attempts = 0, status_reason = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "controller columns are not writable: {err}");
    drop(tx);
    let policies: Vec<String> = sqlx::query_scalar(
        "SELECT policyname::text FROM pg_policies WHERE tablename = 'fly_preview_apps' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        policies.iter().all(|p| p.starts_with("fly_preview_apps_")),
        "seed-era policies superseded: {policies:?}"
    );
}

#[sqlx::test]
async fn uuid_and_text_project_ids_give_the_same_names(pool: PgPool) {
    let (user, project) = (USER_B, "3e9c9b3b-1d3b-4f8c-8a3d-9c6f4e5d2b34");
    let id =
        insert_row(&pool, user, project, Some("https://github.com/sveltejs/kit"), "main").await;
    let text_name: String =
        sqlx::query_scalar("SELECT fly_app_name FROM public.fly_preview_apps WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let sql_uuid_name: String = sqlx::query_scalar(
        "SELECT 'roseram-' || left(md5($1::uuid::text || '-' || $2::uuid::text), 8)",
    )
    .bind(user)
    .bind(project)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(text_name, sql_uuid_name);
    assert_eq!(
        naming::app_name("roseram", user, &project.to_uppercase().to_lowercase()),
        text_name
    );
}

#[sqlx::test(migrations = false)]
async fn the_upgraded_project_converges(pool: PgPool) {
    seed(&pool).await;
    store::migrate::run(&pool).await.unwrap();
    let h = Harness::new(pool.clone(), SimConfig::default()).await;
    // the web app's guide suggests `flyctl deploy` by hand: one pending row's app already exists
    let rows = h.store().list_all().await.unwrap();
    let by_hand = rows
        .iter()
        .find(|r| r.status == Status::Pending && r.github_repo_url.is_some())
        .unwrap()
        .fly_app_name
        .clone();
    h.sim.create_app_direct(&by_hand, true);
    for r in &rows {
        assert_eq!(
            naming::app_name("roseram", &r.user_id.to_string(), &r.project_id),
            r.fly_app_name,
            "uuid project ids name like text ones"
        );
    }
    let replica = h.start("upgrade");
    let done = h
        .wait_all("converged", 60, |r| {
            match (r.status.as_str(), r.github_repo_url.is_some(), r.desired_state.as_str()) {
                (_, _, "stopped") => r.status == Status::Stopped,
                (_, false, _) => r.status == Status::Error,
                _ => is_running(r),
            }
        })
        .await;
    let no_repo = done.iter().find(|r| r.github_repo_url.is_none()).unwrap();
    assert!(no_repo.error_message.as_deref().unwrap().contains("github_repo_url"), "{no_repo:?}");
    assert_eq!(done.iter().filter(|r| r.status == Status::Running).count(), 3);
    let ms = h.sim.machines(&by_hand);
    assert_eq!(ms.len(), 1, "the hand-made machine is replaced by ours: {ms:?}");
    assert_eq!(ms[0]["config"]["metadata"]["managed-by"], "fly-preview-controller");
    assert!(h.calls_for(&no_repo.fly_app_name).is_empty());
    replica.stop().await;
}

/// The first release with the Supabase seam, 20261127000100: everything before it is what
/// today's main applies, recording it in `public._sqlx_migrations` (no sqlx.toml then).
pub const SEAM: i64 = 20261127000100;

/// A database migrated by the previous release: the same embedded files before the seam, the
/// migrator's default table (`_sqlx_migrations`, created in public), a leader row and a row.
pub async fn migrate_like_the_previous_release(pool: &PgPool) {
    let before: Vec<_> = store::MIGRATOR.iter().filter(|m| m.version < SEAM).cloned().collect();
    let old = sqlx::migrate::Migrator::with_migrations(before);
    old.run(pool).await.unwrap();
    sqlx::query("INSERT INTO public.fly_preview_controller_leader (holder, expires_at) VALUES ('old-replica', now() + interval '1 minute')")
        .execute(pool).await.unwrap();
    insert_row(pool, USER_A, "kept", Some("https://github.com/a/b"), "main").await;
}

pub const HISTORY: &str = "SELECT json_agg(json_build_object('v', version, 'd', description, 'at', installed_on, \
    'ok', success, 'sum', encode(checksum, 'hex')) ORDER BY version)::text FROM ";

#[sqlx::test(migrations = false)]
async fn migrate_moves_the_previous_releases_bookkeeping_out_of_public(pool: PgPool) {
    migrate_like_the_previous_release(&pool).await;
    let history: String =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{HISTORY} public._sqlx_migrations")))
            .fetch_one(&pool)
            .await
            .unwrap();
    let pending: Vec<i64> =
        store::migrate::pending(&pool).await.unwrap().iter().map(|m| m.version).collect();
    assert_eq!(
        pending,
        crate::support::migrations_from(SEAM),
        "the previous release's database lacks the seam and what came after it"
    );
    let report = store::migrate::rehearse(&pool).await.unwrap();
    assert!(report.contains("- table public._sqlx_migrations"), "{report}");
    assert!(report.contains("+ table fly_preview_controller._sqlx_migrations"), "{report}");
    assert!(report.contains("+ table fly_preview_controller.leader"), "{report}");
    let still: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(still, "the rehearsal moved nothing");

    assert_eq!(
        store::migrate::run(&pool).await.unwrap(),
        crate::support::migrations_from(SEAM),
        "the seam and what came after it"
    );
    assert!(store::migrate::run(&pool).await.unwrap().is_empty(), "second run is a no-op");
    let gone: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT to_regclass(t)::text FROM unnest(array['public._sqlx_migrations', 'public.fly_preview_controller_leader']) t",
    )
    .fetch_all(&pool).await.unwrap();
    assert_eq!(gone, vec![None, None], "nothing of the controller's is left in public");
    let moved: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "{HISTORY} fly_preview_controller._sqlx_migrations WHERE version < {SEAM}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(moved, history, "every version, checksum and install time is kept");
    let holder: String = sqlx::query_scalar("SELECT holder FROM fly_preview_controller.leader")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(holder, "old-replica", "the leader row moved with its table");
    assert_eq!(h_rows(&pool).await, 1);
    assert!(store::migrate::pending(&pool).await.unwrap().is_empty(), "`run` would start");
}

#[sqlx::test(migrations = false)]
async fn migrate_refuses_two_bookkeeping_tables(pool: PgPool) {
    migrate_like_the_previous_release(&pool).await;
    store::migrate::run(&pool).await.unwrap();
    // an older binary migrates again after the move: it recreates public._sqlx_migrations
    sqlx::query("CREATE TABLE public._sqlx_migrations (version bigint primary key)")
        .execute(&pool)
        .await
        .unwrap();
    let err = store::migrate::run(&pool).await.unwrap_err().to_string();
    assert!(
        err.contains(
            "both public._sqlx_migrations and fly_preview_controller._sqlx_migrations exist"
        ),
        "{err}"
    );
    assert_eq!(err.matches("both public").count(), 1, "said once: {err}");
}

async fn h_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_apps")
        .fetch_one(pool)
        .await
        .unwrap()
}
