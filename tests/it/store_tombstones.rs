//! Tombstones of deleted rows: the delete trigger, who may see them, and every statement of
//! the tombstone queue (`store::Tombstones`), against a fresh migrated database per test.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use fly_preview_controller::runtime::Queue;
use fly_preview_controller::store::{Store, Tombstone, Tombstones};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;
use fly_preview_controller::model::naming;

const LEASE: Duration = Duration::from_secs(30);

fn queue(pool: &PgPool, owner: &str) -> Tombstones {
    Tombstones::new(pool.clone(), owner, LEASE)
}

/// Inserts `n` rows and deletes them; returns their ids.
async fn deleted_rows(pool: &PgPool, n: usize) -> Vec<Uuid> {
    let ids = insert_rows(pool, n).await;
    had_app(pool, &ids).await;
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = ANY($1)")
        .bind(&ids)
        .execute(pool)
        .await
        .unwrap();
    ids
}

async fn all(pool: &PgPool) -> Vec<Tombstone> {
    sqlx::query_as("SELECT * FROM fly_preview_controller.tombstones ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn one(pool: &PgPool, id: Uuid) -> Option<Tombstone> {
    sqlx::query_as("SELECT * FROM fly_preview_controller.tombstones WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn deleting_a_row_leaves_a_due_tombstone_with_its_app_name(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    had_app(&pool, &[id]).await;
    let row = Store::new(pool.clone(), "x").get(id).await.unwrap().unwrap();
    assert!(all(&pool).await.is_empty(), "a live row has no tombstone");
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let t = one(&pool, id).await.expect("a tombstone");
    assert_eq!((t.user_id, t.fly_app_name.as_str()), (row.user_id, row.fly_app_name.as_str()));
    assert_eq!((t.attempts, t.lease_owner, t.last_error), (0, None, None));
    assert!(t.next_attempt_at <= Utc::now(), "due at once");
}

#[sqlx::test]
async fn a_signed_in_user_deleting_their_row_leaves_a_tombstone_they_cannot_see(pool: PgPool) {
    let id = insert_rows(&pool, 1).await[0];
    had_app(&pool, &[id]).await;
    let mut tx = pool.begin().await.unwrap();
    become_user(&mut tx, USER_A).await;
    let n = sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n.rows_affected(), 1);
    tx.commit().await.unwrap();
    assert!(one(&pool, id).await.is_some(), "written by the trigger as its owner");
    for role in ["anon", "authenticated"] {
        for sql in [
            "SELECT count(*) FROM fly_preview_controller.tombstones",
            "SELECT public.fly_preview_apps_tombstone()",
        ] {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
                .execute(&mut *tx)
                .await
                .unwrap();
            let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
            assert_eq!(sqlstate(&err), "42501", "{role}: {sql}: {err}");
        }
    }
}

#[sqlx::test]
async fn a_row_deleted_again_under_the_same_id_is_due_from_scratch(pool: PgPool) {
    let id = deleted_rows(&pool, 1).await[0];
    let q = queue(&pool, "a");
    let claimed = q.claim(10).await.unwrap();
    assert!(q.retry(id, Utc::now() + chrono::Duration::hours(1), "boom", true).await.unwrap());
    sqlx::query(
        "INSERT INTO public.fly_preview_apps (id, user_id, project_id, fly_app_name) \
         VALUES ($1, $2::uuid, 'again', 'sent-by-the-writer')",
    )
    .bind(id)
    .bind(USER_B)
    .execute(&pool)
    .await
    .unwrap();
    had_app(&pool, &[id]).await;
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let t = one(&pool, id).await.unwrap();
    let name = naming::app_name("roseram", USER_B, "again");
    assert_eq!((t.fly_app_name.as_str(), t.attempts, t.last_error), (name.as_str(), 0, None));
    assert!(t.next_attempt_at <= Utc::now() && t.deleted_at > claimed[0].deleted_at);
}

#[sqlx::test]
async fn claim_leases_due_tombstones_to_one_replica(pool: PgPool) {
    let ids = deleted_rows(&pool, 5).await;
    let (a, b) = (queue(&pool, "a"), queue(&pool, "b"));
    let first = a.claim(3).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|t| t.lease_owner.as_deref() == Some("a")));
    assert!(
        first
            .iter()
            .all(|t| t.lease_expires_at.unwrap() > Utc::now() + chrono::Duration::seconds(20))
    );
    let rest = Queue::claim(&b, 10).await.unwrap();
    assert_eq!(rest.len(), 2, "the trait's claim is the same statement");
    assert!(a.claim(10).await.unwrap().is_empty(), "leased tombstones are not due");
    let claimed: HashSet<Uuid> = first.iter().chain(&rest).map(|t| t.id).collect();
    assert_eq!(claimed, ids.into_iter().collect());
}

#[sqlx::test]
async fn one_users_bulk_delete_does_not_hold_back_another_users(pool: PgPool) {
    deleted_rows(&pool, 20).await; // USER_A's, all due before USER_B's
    let theirs =
        insert_row(&pool, USER_B, "mine", Some("https://github.com/acme/site"), "main").await;
    had_app(&pool, &[theirs]).await;
    sqlx::query("DELETE FROM public.fly_preview_apps WHERE id = $1")
        .bind(theirs)
        .execute(&pool)
        .await
        .unwrap();
    let first = queue(&pool, "a").claim(4).await.unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.iter().any(|t| t.id == theirs), "every user's first before anyone's second");
}

#[sqlx::test]
async fn concurrent_claims_never_share_a_tombstone(pool: PgPool) {
    deleted_rows(&pool, 40).await;
    let claims = (0..8).map(|i| {
        let q = queue(&pool, &format!("r{i}"));
        async move { q.claim(7).await.unwrap() }
    });
    let got: Vec<Uuid> =
        futures::future::join_all(claims).await.into_iter().flatten().map(|t| t.id).collect();
    let unique: HashSet<&Uuid> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no tombstone claimed twice");
}

#[sqlx::test]
async fn expired_leases_come_back(pool: PgPool) {
    let id = deleted_rows(&pool, 1).await[0];
    assert_eq!(queue(&pool, "crashed").claim(10).await.unwrap().len(), 1);
    sqlx::query(
        "UPDATE fly_preview_controller.tombstones SET lease_expires_at = now() - interval '1s'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let again = queue(&pool, "b").claim(10).await.unwrap();
    assert_eq!((again.len(), again[0].id), (1, id));
}

#[sqlx::test]
async fn next_due_covers_due_later_and_expired_leases(pool: PgPool) {
    let q = queue(&pool, "a");
    assert_eq!(q.next_due().await.unwrap(), None, "no tombstone");
    let id = deleted_rows(&pool, 1).await[0];
    assert_eq!(q.next_due().await.unwrap(), Some(Duration::ZERO), "due now");
    q.claim(10).await.unwrap();
    let leased = q.next_due().await.unwrap().unwrap();
    assert!(
        leased > Duration::from_secs(25) && leased <= LEASE,
        "when its lease expires: {leased:?}"
    );
    q.retry(id, Utc::now() + chrono::Duration::seconds(60), "later", true).await.unwrap();
    let later = q.next_due().await.unwrap().unwrap();
    assert!(later > Duration::from_secs(55) && later <= Duration::from_secs(60), "{later:?}");
    let by_trait = Queue::next_due(&q).await.unwrap().unwrap();
    assert!(by_trait <= later && later - by_trait < Duration::from_secs(1), "{by_trait:?}");
}

#[sqlx::test]
async fn renew_extends_only_this_replicas_leases(pool: PgPool) {
    let ids = deleted_rows(&pool, 2).await;
    let (a, b) = (Tombstones::new(pool.clone(), "a", Duration::from_secs(5)), queue(&pool, "b"));
    let mine = a.claim(1).await.unwrap()[0].id;
    let theirs = b.claim(1).await.unwrap()[0].id;
    let before = one(&pool, mine).await.unwrap().lease_expires_at.unwrap();
    let a = queue(&pool, "a");
    assert_eq!(a.renew(&ids).await.unwrap(), vec![mine], "only its own");
    let after = one(&pool, mine).await.unwrap().lease_expires_at.unwrap();
    assert!(after > before + chrono::Duration::seconds(20), "{before} -> {after}");
    assert_eq!(one(&pool, theirs).await.unwrap().lease_owner.as_deref(), Some("b"));
}

#[sqlx::test]
async fn release_gives_one_back_and_release_all_every_one(pool: PgPool) {
    deleted_rows(&pool, 3).await;
    let (a, b) = (queue(&pool, "a"), queue(&pool, "b"));
    let held = a.claim(2).await.unwrap();
    let other = b.claim(1).await.unwrap()[0].id;
    assert!(!b.release(held[0].id).await.unwrap(), "not b's to release");
    assert!(a.release(held[0].id).await.unwrap());
    let t = one(&pool, held[0].id).await.unwrap();
    assert_eq!((t.lease_owner, t.lease_expires_at, t.attempts), (None, None, 0));
    assert_eq!(a.release_all().await.unwrap(), 1);
    assert_eq!(Queue::release_all(&a).await.unwrap(), 0);
    assert_eq!(one(&pool, other).await.unwrap().lease_owner.as_deref(), Some("b"));
    assert_eq!(a.claim(10).await.unwrap().len(), 2, "released tombstones are due again");
}

#[sqlx::test]
async fn finish_removes_the_tombstone_fenced_by_lease_and_deletion(pool: PgPool) {
    deleted_rows(&pool, 2).await;
    let (a, b) = (queue(&pool, "a"), queue(&pool, "b"));
    let claimed = a.claim(2).await.unwrap();
    assert!(!b.finish(&claimed[0]).await.unwrap(), "only the lease holder finishes");
    assert!(a.finish(&claimed[0]).await.unwrap());
    assert!(one(&pool, claimed[0].id).await.is_none());
    let stale = Tombstone {
        deleted_at: claimed[1].deleted_at - chrono::Duration::seconds(1),
        ..claimed[1].clone()
    };
    assert!(!a.finish(&stale).await.unwrap(), "a newer deletion of the same id is not finished");
    assert!(one(&pool, claimed[1].id).await.is_some());
}

#[sqlx::test]
async fn retry_persists_attempts_due_time_and_error_and_gives_the_lease_back(pool: PgPool) {
    let id = deleted_rows(&pool, 1).await[0];
    let (a, b) = (queue(&pool, "a"), queue(&pool, "b"));
    a.claim(1).await.unwrap();
    let at = Utc::now() + chrono::Duration::seconds(90);
    assert!(!b.retry(id, at, "not mine", true).await.unwrap(), "fenced by the lease");
    assert!(a.retry(id, at, "Fly API: 503", true).await.unwrap());
    let t = one(&pool, id).await.unwrap();
    assert_eq!(
        (t.attempts, t.last_error.as_deref(), t.lease_owner),
        (1, Some("Fly API: 503"), None)
    );
    assert!((t.next_attempt_at - at).num_milliseconds().abs() < 1);
    assert!(a.claim(1).await.unwrap().is_empty(), "not due before its time");
    sqlx::query("UPDATE fly_preview_controller.tombstones SET next_attempt_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(a.claim(1).await.unwrap()[0].attempts, 1, "attempts survive");
    assert!(a.retry(id, at, "Fly API unavailable", false).await.unwrap());
    let t = one(&pool, id).await.unwrap();
    assert_eq!(
        (t.attempts, t.last_error.as_deref()),
        (1, Some("Fly API unavailable")),
        "an outage does not count"
    );
}

#[sqlx::test]
async fn wake_makes_every_waiting_unleased_tombstone_due(pool: PgPool) {
    let ids = deleted_rows(&pool, 3).await;
    let (a, b) = (queue(&pool, "a"), queue(&pool, "b"));
    let later = Utc::now() + chrono::Duration::seconds(30);
    for _ in 0..2 {
        let t = a.claim(1).await.unwrap().remove(0);
        assert!(a.retry(t.id, later, "Fly API unavailable", false).await.unwrap());
    }
    let leased = a.claim(1).await.unwrap().remove(0);
    assert!(b.claim(3).await.unwrap().is_empty(), "nothing due before the wake");
    assert_eq!(b.wake().await.unwrap(), 2, "the leased one is left alone");
    let woken: HashSet<Uuid> = b.claim(3).await.unwrap().into_iter().map(|t| t.id).collect();
    let parked: HashSet<Uuid> = ids.into_iter().filter(|id| *id != leased.id).collect();
    assert_eq!(woken, parked);
}

#[sqlx::test]
async fn pending_counts_every_tombstone(pool: PgPool) {
    let q = queue(&pool, "a");
    assert_eq!(q.pending().await.unwrap(), 0);
    deleted_rows(&pool, 3).await;
    q.claim(1).await.unwrap();
    assert_eq!(q.pending().await.unwrap(), 3, "leased ones too");
}
