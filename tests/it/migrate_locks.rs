//! Migrations never stall the web app: with a web-app transaction open on the table, a pending
//! migration waits for its turn in slices of `LOCK_TIMEOUT` (rolled back and retried), and a
//! concurrent query of the web app never queues behind it for longer; `--rehearse` gives up at
//! once instead of waiting, and `--dry-run` takes no lock at all.

use std::time::Duration;

use crate::support::*;
use fly_preview_controller::store;
use sqlx::PgPool;

/// The first migration that changes the live table in this release.
const PENDING_FROM: i64 = 20261207000100;

/// A database migrated up to (not including) `PENDING_FROM`, with a row.
async fn one_release_behind(pool: &PgPool) {
    let before: Vec<_> =
        store::MIGRATOR.iter().filter(|m| m.version < PENDING_FROM).cloned().collect();
    sqlx::migrate::Migrator::with_migrations(before).run(pool).await.unwrap();
    insert_row(pool, USER_A, "busy", Some("https://github.com/a/b"), "main").await;
}

/// The web app's query, as PostgREST would be cut off: a 1 s statement timeout.
async fn web_app_query(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = '1s'").execute(&mut *tx).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM public.fly_preview_apps")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

#[sqlx::test(migrations = false)]
async fn a_pending_migration_waits_for_its_turn_without_stalling_the_web_app(pool: PgPool) {
    one_release_behind(&pool).await;
    // a web-app transaction holds the table (ACCESS SHARE) until it ends
    let mut open = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM public.fly_preview_apps").fetch_all(&mut *open).await.unwrap();
    let rehearsal = store::migrate::rehearse(&pool).await.unwrap();
    assert!(rehearsal.contains("tables are in use"), "{rehearsal}");
    let t0 = std::time::Instant::now();
    let web_app = async {
        // across several of the migration's attempts, the web app's queries are answered
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let t = std::time::Instant::now();
            let n = web_app_query(&pool).await;
            println!("query at {:?} took {:?} {n:?}", t0.elapsed(), t.elapsed());
            assert_eq!(n.as_ref().ok(), Some(&1), "the web app's query waited over 1 s: {n:?}");
        }
        let waiting = store::migrate::pending(&pool).await.unwrap();
        assert!(!waiting.is_empty(), "the migration waits for the open transaction");
        open.commit().await.unwrap();
    };
    let (applied, ()) = tokio::join!(store::migrate::run(&pool), web_app);
    let applied = applied.unwrap();
    assert_eq!(applied, migrations_from(PENDING_FROM));
    assert!(store::migrate::pending(&pool).await.unwrap().is_empty());
}

/// `--dry-run` takes no lock on any table, so a web-app query never waits on it: with every
/// table but the migrations table held ACCESS EXCLUSIVE by an open transaction (any lock
/// request queues behind that), and the dry run's own sessions refusing to wait for a lock at
/// all (`lock_timeout` 1 ms: a request fails with 55P03 instead of queueing), it still reports
/// every pending migration and the tables each changes.
#[sqlx::test(migrations = false)]
async fn dry_run_takes_no_lock_so_the_web_app_never_waits_on_it(pool: PgPool) {
    one_release_behind(&pool).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables \
         WHERE schemaname IN ('public', 'fly_preview_controller', 'auth') \
           AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "public.fly_preview_apps"), "{tables:?}");
    let mut held = pool.begin().await.unwrap();
    for t in &tables {
        let lock = format!("LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE");
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *held).await.unwrap();
    }
    let opts = (*pool.connect_options()).clone().options([("lock_timeout", "1ms")]);
    let impatient = PgPool::connect_with(opts).await.unwrap();
    let dry = store::migrate::dry_run(&impatient).await.unwrap();
    assert!(dry.contains("no table was locked"), "{dry}");
    for version in migrations_from(PENDING_FROM) {
        assert!(dry.contains(&format!("  {version} ")), "{version} listed: {dry}");
    }
    assert!(dry.contains("changes: public.fly_preview_apps"), "{dry}");
    held.rollback().await.unwrap();
    assert_eq!(store::migrate::pending(&pool).await.unwrap().len(), dry.matches("\n  2").count());
}

#[sqlx::test]
async fn migrate_with_nothing_pending_succeeds_under_the_controllers_role(pool: PgPool) {
    use crate::controller_role::{CONTROLLER_ROLE_SQL, ROLE, pool_as};
    sqlx::raw_sql(CONTROLLER_ROLE_SQL).execute(&pool).await.unwrap();
    let as_controller = pool_as(&pool, ROLE).await;
    assert_eq!(store::migrate::run(&as_controller).await.unwrap(), Vec::<i64>::new());
    let dry = store::migrate::dry_run(&as_controller).await.unwrap();
    assert!(dry.contains("would change nothing"), "{dry}");
}
