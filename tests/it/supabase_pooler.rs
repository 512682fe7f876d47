//! Poolers, with Debian's PgBouncer in front of the Supabase-faithful cluster
//! (`.ci/supabase/pgbouncer.sh`): transaction mode (like Supabase's port 6543) is recognised and
//! refused with one line; session mode (like Supabase's session pooler on 5432) and direct
//! connections work, notifications included. Errors are printed once.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::supabase::{
    PORT, SESSION_POOLER_PORT, SESSION_POOLER_RR_PORT, SupaDb, TX_POOLER_PORT, TX_POOLER_RR_PORT,
};
use crate::support::*;
use fly_preview_controller::fly::Secret;
use fly_preview_controller::store::{self, ListenEvent, Listener, Op, StoreError};

const REFUSAL: &str = "error: configuration error: DATABASE_URL points at a transaction pooler; use the session pooler (port 5432) or a direct connection";

fn cli(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fly-preview-controller"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("FLY_API_TOKEN", "fo1_x")
        .env("FLY_API_URL", "http://127.0.0.1:9")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
#[ignore = "needs the Supabase cluster and pgbouncer: bash .ci/supabase/setup.sh && bash .ci/supabase/pgbouncer.sh"]
async fn a_transaction_pooler_is_refused_with_one_line() {
    let db = SupaDb::create().await;
    // PgBouncer's default (last-in-first-out backends) and server_round_robin = 1
    for port in [TX_POOLER_PORT, TX_POOLER_RR_PORT] {
        let url = db.url(port, "postgres");
        for args in [&["migrate"][..], &["migrate", "--dry-run"], &["run"], &["status"]] {
            let out = cli(args, &url);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{port} {args:?}: {stderr}");
            assert_eq!(stderr, format!("{REFUSAL}\n"), "{port} {args:?}: one line, said once");
            assert!(text(&out.stdout).is_empty(), "{args:?}");
        }
        for _ in 0..15 {
            let err = store::connect(&Secret::new(url.clone()), 4).await.unwrap_err();
            assert!(matches!(err, StoreError::TransactionPooler), "{port}: {err}");
        }
    }
}

#[tokio::test]
#[ignore = "needs the Supabase cluster and pgbouncer: bash .ci/supabase/setup.sh && bash .ci/supabase/pgbouncer.sh"]
async fn the_session_pooler_and_direct_connections_work_notifications_included() {
    let db = SupaDb::create().await;
    let session = db.url(SESSION_POOLER_PORT, "postgres");
    let out = cli(&["migrate"], &session);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let applied = format!("applied {} migration(s)", crate::support::migration_count());
    assert!(text(&out.stdout).contains(&applied), "{}", text(&out.stdout));
    let out = cli(&["migrate"], &session);
    assert!(text(&out.stdout).contains("up to date"), "{}", text(&out.stdout));
    let urls = [&session, &db.url(SESSION_POOLER_RR_PORT, "postgres"), &db.url(PORT, "postgres")];
    for url in urls {
        for _ in 0..15 {
            store::connect(&Secret::new(url.clone()), 4).await.expect("no false alarm");
        }
    }
    let pool = store::connect(&Secret::new(session), 4).await.unwrap();
    store::check_row_access(&pool).await.unwrap();
    let mut listener = Listener::connect(&pool).await.unwrap();
    let id = insert_row(&pool, USER_A, "p", Some("https://github.com/a/b"), "main").await;
    let event =
        tokio::time::timeout(Duration::from_secs(10), listener.next()).await.unwrap().unwrap();
    match event {
        ListenEvent::Notified(n) => assert_eq!((n.op, n.id), (Op::Insert, id)),
        other => panic!("expected the insert's notification, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the Supabase cluster: bash .ci/supabase/setup.sh"]
async fn a_database_error_is_printed_once() {
    let db = SupaDb::create().await;
    // not migrated: the status query fails with 42P01
    let out = cli(&["status"], &db.url(PORT, "postgres"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("fly_preview_apps").count(), 1, "said once: {stderr}");
    assert!(stderr.contains("SQLSTATE 42P01"), "{stderr}");
}
