//! Claiming due rows with leases, renewing and releasing them, and fenced status writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PreviewRow, Store, StoreError, named_query};
use crate::model::MachineState;
use crate::model::state::{DesiredState, Reason, Status};
use crate::model::timeline::{Event, EventKind};

/// What the controller writes back after (part of) a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    pub status: Status,
    pub reason: Reason,
    /// What a user can act on (no request ids, URLs or API internals).
    pub error_message: Option<String>,
    /// The technical detail for operators (`status_detail`); `None` clears it.
    pub detail: Option<String>,
    /// `Some` replaces the stored URL; `None` keeps it.
    pub preview_url: Option<String>,
    pub fly_machine_id: Option<String>,
    pub machine_state: Option<MachineState>,
    /// `Some(g)` records that generation `g` has been acted on.
    pub observed_generation: Option<i64>,
    pub attempts: i32,
    /// `None` = wait for the row to change.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One machine of an app as drift saw it on Fly, for [`Store::mark_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub app: String,
    /// `(machine id, state)`; `None`: the app, or every machine of ours in it, is gone.
    pub machine: Option<(String, MachineState)>,
}

/// Errors about the machine itself: a row waiting in one of them is worth another look only
/// once its machine started again.
/// Machine states that mean a running preview needs attention (its row is requeued when its
/// machine enters one of them; a row in error waits for its machine to start again instead).
pub const BAD: &[MachineState] = &[
    MachineState::Stopped,
    MachineState::Failed,
    MachineState::Destroyed,
    MachineState::Destroying,
];

pub const MACHINE_ERRORS: &[Reason] = &[
    Reason::MachineExited,
    Reason::HealthDeadlineExceeded,
    Reason::CloneFailed,
    Reason::InstallFailed,
    Reason::NoDevScript,
    Reason::DevServerNeverServed,
    Reason::DevServerCrashed,
    Reason::OutOfMemory,
];

/// Errors besides [`MACHINE_ERRORS`] that wait for a change to the row (or its idle expiry),
/// never for a retry; [`waiting_errors`] is both lists.
const CHANGE_ERRORS: &[Reason] = &[
    Reason::ConfigRejected,
    Reason::InvalidSpec,
    Reason::NameOwnedElsewhere,
    Reason::QuotaExceeded,
];

/// Errors that wait for a change to the row (or its idle expiry), never for a retry: a row in
/// `error` for one of them is not in backoff, whatever its due time.
pub fn waiting_errors() -> Vec<Reason> {
    MACHINE_ERRORS.iter().chain(CHANGE_ERRORS).copied().collect()
}

/// What happens to the row's lease with a status write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Keep working on the row (a progress write in the middle of a pass).
    Keep,
    /// The pass is over: give the row back.
    Release,
}

/// Result of a fenced write that landed.
#[derive(Debug, Clone)]
pub struct Written {
    pub previous_status: Status,
    pub requested_at: DateTime<Utc>,
    /// The events recorded with it and each one's elapsed time (the phase it ended).
    pub events: Vec<(EventKind, f64)>,
}

/// What `write_status.sql` returns: previous status, request time, event kinds and seconds.
type WrittenRow = (Status, DateTime<Utc>, Vec<String>, Vec<f64>);

/// Queue figures for metrics.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    pub due: i64,
    pub oldest_due_seconds: f64,
    pub in_backoff: i64,
    /// Rows per status, every status present (0 when none).
    pub by_status: Vec<(Status, i64)>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Claims up to `limit` due, unleased rows for this replica (`FOR UPDATE SKIP LOCKED`):
    /// started work (wakes, deploys in progress and their retries) first, then other work
    /// people wait for, then periodic verification; round-robin over users, at most
    /// `per_user` rows of one user leased at once.
    pub async fn claim(
        &self,
        limit: i64,
        lease: Duration,
        per_user: i64,
    ) -> Result<Vec<PreviewRow>, StoreError> {
        self.claim_keeping(limit, 0, lease, per_user).await
    }

    /// [`Store::claim`], keeping `keep` of the `limit` for started work: at most
    /// `limit - keep` of the rows claimed are other work.
    pub async fn claim_keeping(
        &self,
        limit: i64,
        keep: i64,
        lease: Duration,
        per_user: i64,
    ) -> Result<Vec<PreviewRow>, StoreError> {
        let sql = named_query!("claim");
        let rows = sqlx::query_as::<_, PreviewRow>(sql)
            .bind(&self.owner)
            .bind(limit)
            .bind(secs(lease))
            .bind(Status::Initializing)
            .bind(per_user)
            .bind(limit.saturating_sub(keep).max(0))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows)
    }

    /// How long until the earliest claimable row is due (`Duration::ZERO` if one is due
    /// already), counting a row leased by any replica as due when its lease expires; `None`
    /// when no row will ever be due by itself.
    pub async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        let sql = named_query!("next_due");
        let secs: Option<f64> = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        Ok(secs.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)))
    }

    /// [`Store::next_due`] for started work only (priority 0 of the claim): how long until
    /// the earliest unleased such row is due (`Duration::ZERO` if one is due already).
    pub async fn next_started_due(&self) -> Result<Option<Duration>, StoreError> {
        let sql = named_query!("next_started_due");
        let secs: Option<f64> = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        Ok(secs.map(|s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)))
    }

    /// Extends the leases this replica still holds; returns the ids it still owns.
    pub async fn renew(&self, ids: &[Uuid], lease: Duration) -> Result<Vec<Uuid>, StoreError> {
        let sql = named_query!("renew");
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
        let sql = named_query!("release");
        let r = sqlx::query(sql).bind(id).bind(&self.owner).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Releases every lease this replica holds (shutdown).
    pub async fn release_all(&self) -> Result<u64, StoreError> {
        let sql = named_query!("release_all");
        Ok(sqlx::query(sql).bind(&self.owner).execute(&self.pool).await?.rows_affected())
    }

    /// Writes status only while holding a live lease and only for the generation that was
    /// planned (fencing). [`Lease::Release`] also gives the lease back. `None` = fenced out.
    pub async fn write_status(
        &self,
        id: Uuid,
        generation: i64,
        w: &StatusWrite,
        lease: Lease,
    ) -> Result<Option<Written>, StoreError> {
        self.write_status_with(id, generation, w, lease, &[]).await
    }

    /// [`Store::write_status`], recording `events` on the preview's timeline in the same
    /// statement (only if the write lands).
    pub async fn write_status_with(
        &self,
        id: Uuid,
        generation: i64,
        w: &StatusWrite,
        lease: Lease,
        events: &[Event],
    ) -> Result<Option<Written>, StoreError> {
        let sql = named_query!("write_status");
        let events = serde_json::to_value(events).unwrap_or_else(|_| serde_json::json!([]));
        let row: Option<WrittenRow> = sqlx::query_as(sql)
            .bind(id)
            .bind(&self.owner)
            .bind(generation)
            .bind(w.status)
            .bind(w.reason)
            .bind(w.error_message.as_deref())
            .bind(w.preview_url.as_deref())
            .bind(w.fly_machine_id.as_deref())
            .bind(w.machine_state.as_ref())
            .bind(w.observed_generation)
            .bind(w.attempts)
            .bind(w.next_attempt_at)
            .bind(lease == Lease::Release)
            .bind(w.detail.as_deref())
            .bind(events)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(previous_status, requested_at, kinds, secs)| Written {
            previous_status,
            requested_at,
            events: kinds.iter().filter_map(|k| k.parse().ok()).zip(secs).collect(),
        }))
    }

    /// Makes due now the rows for which what drift saw on Fly is news that matters (the rule
    /// is in `sql/mark_due.sql`; `repair_from` are the machine states a running preview is
    /// repaired from). Returns how many.
    pub async fn mark_due(
        &self,
        seen: &[Seen],
        repair_from: &[MachineState],
    ) -> Result<u64, StoreError> {
        let sql = named_query!("mark_due");
        let apps: Vec<&str> = seen.iter().map(|s| s.app.as_str()).collect();
        let ids: Vec<Option<&str>> =
            seen.iter().map(|s| s.machine.as_ref().map(|m| m.0.as_str())).collect();
        let states: Vec<Option<&str>> =
            seen.iter().map(|s| s.machine.as_ref().map(|m| m.1.as_str())).collect();
        Ok(sqlx::query(sql)
            .bind(apps)
            .bind(ids)
            .bind(states)
            .bind(DesiredState::Running)
            .bind(Status::Stopped)
            .bind(Status::Error)
            .bind(repair_from.iter().map(MachineState::as_str).collect::<Vec<_>>())
            .bind(MachineState::Started.as_str())
            .bind(MACHINE_ERRORS)
            .bind(Reason::ConfigRejected)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Records on settled running rows that autostop put their machine to sleep (one of
    /// `asleep`: the states autostop leaves a machine in) or Fly started it again (the rule is
    /// in `sql/note_sleep.sql`): machine state and Ready/Idle only. Returns how many rows
    /// changed.
    pub async fn note_sleep(
        &self,
        seen: &[Seen],
        asleep: &[MachineState],
    ) -> Result<u64, StoreError> {
        let sql = named_query!("note_sleep");
        let apps: Vec<&str> = seen.iter().map(|s| s.app.as_str()).collect();
        let ids: Vec<Option<&str>> =
            seen.iter().map(|s| s.machine.as_ref().map(|m| m.0.as_str())).collect();
        let states: Vec<Option<&str>> =
            seen.iter().map(|s| s.machine.as_ref().map(|m| m.1.as_str())).collect();
        let recorded: Vec<&str> =
            asleep.iter().chain([&MachineState::Started]).map(MachineState::as_str).collect();
        Ok(sqlx::query(sql)
            .bind(apps)
            .bind(ids)
            .bind(states)
            .bind(Status::Running)
            .bind(&recorded[..])
            .bind(MachineState::Started.as_str())
            .bind(Reason::Ready)
            .bind(Reason::Idle)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Counts for the metrics: due rows, queue lag, backoff, rows by status.
    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        let (due, oldest_due_seconds, in_backoff, statuses, counts): (
            i64,
            f64,
            i64,
            Vec<Status>,
            Vec<i64>,
        ) = sqlx::query_as(named_query!("stats"))
            .bind(Status::Error)
            .bind(waiting_errors())
            .fetch_one(&self.pool)
            .await?;
        let by_status = Status::ALL
            .iter()
            .map(|s| {
                (*s, statuses.iter().zip(&counts).find(|(t, _)| *t == s).map_or(0, |(_, n)| *n))
            })
            .collect();
        Ok(QueueStats { due, oldest_due_seconds, in_backoff, by_status })
    }
}
