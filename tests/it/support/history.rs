//! Every committed change of a row's status, recorded by a trigger in the test's own database,
//! so a test can assert a state that lasts milliseconds instead of polling for it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// The row as one committed write left it (only writes that changed one of these fields).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Step {
    pub status: String,
    pub status_reason: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
}

/// Starts recording: an AFTER INSERT OR UPDATE trigger on `public.fly_preview_apps` appends to
/// `test_history.steps`. Runs as its owner, so writes by any role (the controller's included)
/// are recorded; a rolled-back write leaves no step. Call it before the controller starts.
pub async fn record(pool: &PgPool) {
    for sql in [
        "CREATE SCHEMA test_history",
        "CREATE TABLE test_history.steps (
             seq bigserial PRIMARY KEY,
             id uuid NOT NULL,
             status text NOT NULL,
             status_reason text,
             attempts int NOT NULL,
             next_attempt_at timestamptz,
             error_message text)",
        "CREATE FUNCTION test_history.record() RETURNS trigger
             LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
         BEGIN
             IF TG_OP = 'UPDATE' AND
                (OLD.status, OLD.status_reason, OLD.attempts, OLD.next_attempt_at, OLD.error_message)
                IS NOT DISTINCT FROM
                (NEW.status, NEW.status_reason, NEW.attempts, NEW.next_attempt_at, NEW.error_message)
             THEN
                 RETURN NULL;
             END IF;
             INSERT INTO test_history.steps
                 (id, status, status_reason, attempts, next_attempt_at, error_message)
             VALUES (NEW.id, NEW.status::text, NEW.status_reason::text, NEW.attempts,
                     NULLIF(NEW.next_attempt_at, 'infinity'), NEW.error_message);
             RETURN NULL;
         END $$",
        "CREATE TRIGGER zz_test_history AFTER INSERT OR UPDATE ON public.fly_preview_apps
             FOR EACH ROW EXECUTE FUNCTION test_history.record()",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

/// The recorded steps of row `id`, oldest first.
pub async fn steps(pool: &PgPool, id: Uuid) -> Vec<Step> {
    sqlx::query_as(
        "SELECT status, status_reason, attempts, next_attempt_at, error_message \
         FROM test_history.steps WHERE id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}
