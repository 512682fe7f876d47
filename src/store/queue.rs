//! Claiming due rows with leases, renewing and releasing them, and fenced status writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PreviewRow, Store, StoreError, by_controller, row_cols};

/// What the controller writes back after (part of) a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    pub status: &'static str,
    pub reason: &'static str,
    pub error_message: Option<String>,
    /// `Some` replaces the stored URL; `None` keeps it.
    pub preview_url: Option<String>,
    pub fly_machine_id: Option<String>,
    pub machine_state: Option<String>,
    /// `Some(g)` records that generation `g` has been acted on.
    pub observed_generation: Option<i64>,
    pub attempts: i32,
    /// `None` = wait for the row to change.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Result of a fenced write that landed.
#[derive(Debug, Clone)]
pub struct Written {
    pub previous_status: String,
    pub requested_at: DateTime<Utc>,
}

/// Queue figures for metrics.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct QueueStats {
    pub due: i64,
    pub oldest_due_seconds: f64,
    pub in_backoff: i64,
    pub pending: i64,
    pub initializing: i64,
    pub running: i64,
    pub stopped: i64,
    pub error: i64,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Claims up to `limit` due, unleased rows for this replica (`FOR UPDATE SKIP LOCKED`).
    pub async fn claim(&self, limit: i64, lease: Duration) -> Result<Vec<PreviewRow>, StoreError> {
        let sql = concat!(
            "WITH due AS (SELECT id FROM public.fly_preview_apps ",
            " WHERE next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now()) ",
            " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) ",
            "UPDATE public.fly_preview_apps SET lease_owner = $1, ",
            " lease_expires_at = now() + make_interval(secs => $3) ",
            "WHERE id IN (SELECT id FROM due) AND ",
            by_controller!(),
            " RETURNING ",
            row_cols!()
        );
        let rows = sqlx::query_as::<_, PreviewRow>(sql)
            .bind(&self.owner)
            .bind(limit)
            .bind(secs(lease))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// Extends the leases this replica still holds; returns the ids it still owns.
    pub async fn renew(&self, ids: &[Uuid], lease: Duration) -> Result<Vec<Uuid>, StoreError> {
        let sql = concat!(
            "UPDATE public.fly_preview_apps SET lease_expires_at = now() + make_interval(secs => $3) ",
            "WHERE id = ANY($1) AND lease_owner = $2 AND lease_expires_at > now() AND ",
            by_controller!(),
            " RETURNING id"
        );
        let held = sqlx::query_scalar::<_, Uuid>(sql)
            .bind(ids)
            .bind(&self.owner)
            .bind(secs(lease))
            .fetch_all(&self.pool)
            .await?;
        Ok(held)
    }

    /// Gives a row back without changing it (e.g. after a fenced-out write).
    pub async fn release(&self, id: Uuid) -> Result<bool, StoreError> {
        let sql = concat!(
            "UPDATE public.fly_preview_apps SET lease_owner = NULL, lease_expires_at = NULL ",
            "WHERE id = $1 AND lease_owner = $2 AND ",
            by_controller!()
        );
        let r = sqlx::query(sql).bind(id).bind(&self.owner).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Releases every lease this replica holds (shutdown).
    pub async fn release_all(&self) -> Result<u64, StoreError> {
        let sql = concat!(
            "UPDATE public.fly_preview_apps SET lease_owner = NULL, lease_expires_at = NULL ",
            "WHERE lease_owner = $1 AND ",
            by_controller!()
        );
        Ok(sqlx::query(sql).bind(&self.owner).execute(&self.pool).await?.rows_affected())
    }

    /// Writes status only while holding a live lease and only for the generation that was
    /// planned (fencing). `release` also gives the lease back. `None` = fenced out.
    pub async fn write_status(
        &self,
        id: Uuid,
        generation: i64,
        w: &StatusWrite,
        release: bool,
    ) -> Result<Option<Written>, StoreError> {
        let sql = concat!(
            "WITH prev AS (SELECT status FROM public.fly_preview_apps WHERE id = $1) ",
            "UPDATE public.fly_preview_apps SET ",
            " last_transition_at = CASE WHEN status IS DISTINCT FROM $4 THEN now() ELSE last_transition_at END, ",
            " status = $4, status_reason = $5, error_message = $6, ",
            " preview_url = coalesce($7, preview_url), fly_machine_id = $8, machine_state = $9, ",
            " observed_generation = coalesce($10, observed_generation), attempts = $11, ",
            " next_attempt_at = coalesce($12, 'infinity'::timestamptz), ",
            " lease_owner = CASE WHEN $13 THEN NULL ELSE lease_owner END, ",
            " lease_expires_at = CASE WHEN $13 THEN NULL ELSE lease_expires_at END ",
            "WHERE id = $1 AND lease_owner = $2 AND lease_expires_at > now() AND generation = $3 AND ",
            by_controller!(),
            " RETURNING (SELECT status FROM prev) AS previous_status, requested_at"
        );
        let row: Option<(String, DateTime<Utc>)> = sqlx::query_as(sql)
            .bind(id)
            .bind(&self.owner)
            .bind(generation)
            .bind(w.status)
            .bind(w.reason)
            .bind(w.error_message.as_deref())
            .bind(w.preview_url.as_deref())
            .bind(w.fly_machine_id.as_deref())
            .bind(w.machine_state.as_deref())
            .bind(w.observed_generation)
            .bind(w.attempts)
            .bind(w.next_attempt_at)
            .bind(release)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(previous_status, requested_at)| Written { previous_status, requested_at }))
    }

    /// Makes rows with these app names due now (drift found on Fly). Returns how many.
    pub async fn mark_due(&self, app_names: &[String]) -> Result<u64, StoreError> {
        let sql = concat!(
            "UPDATE public.fly_preview_apps SET next_attempt_at = now() ",
            "WHERE fly_app_name = ANY($1) AND next_attempt_at > now() AND desired_state = 'running' AND ",
            by_controller!()
        );
        Ok(sqlx::query(sql).bind(app_names).execute(&self.pool).await?.rows_affected())
    }

    /// Counts for the metrics: due rows, queue lag, backoff, rows by status.
    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        let sql = "SELECT \
            count(*) FILTER (WHERE d) AS due, \
            coalesce(extract(epoch FROM now() - min(next_attempt_at) FILTER (WHERE d)), 0)::float8 AS oldest_due_seconds, \
            count(*) FILTER (WHERE status = 'error' AND next_attempt_at > now() AND isfinite(next_attempt_at)) AS in_backoff, \
            count(*) FILTER (WHERE status = 'pending') AS pending, \
            count(*) FILTER (WHERE status = 'initializing') AS initializing, \
            count(*) FILTER (WHERE status = 'running') AS running, \
            count(*) FILTER (WHERE status = 'stopped') AS stopped, \
            count(*) FILTER (WHERE status = 'error') AS error \
            FROM (SELECT *, next_attempt_at <= now() AND (lease_expires_at IS NULL OR lease_expires_at < now()) AS d \
                  FROM public.fly_preview_apps) s";
        Ok(sqlx::query_as::<_, QueueStats>(sql).fetch_one(&self.pool).await?)
    }
}
