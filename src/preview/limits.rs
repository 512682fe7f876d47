//! Per-user limits of a pass: the redeploy budget of a row (at most `redeploy_budget`
//! changes per `redeploy_window`; later requests coalesce into the latest one, applied when
//! the window ends) and the quota of previews a user may have wanting to run
//! (`max_previews_per_user`; rows beyond it wait with `QuotaExceeded`, 0 Fly calls, and
//! deploy by themselves when the user frees a slot).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::state::{Reason, Status};
use crate::ops::metrics::Metrics;
use crate::preview::error::ReconcileError;
use crate::preview::settings::Settings;
use crate::store::{Admission, PreviewRow, Store};

/// Why a pass stops before touching Fly.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The row used its redeploy budget; its latest request is applied at `until`.
    Throttled { until: DateTime<Utc>, message: String },
    /// The user has no free slot; the row waits until one is freed.
    Refused { message: String },
}

/// The quota's answer for a deploy pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    /// The row holds a slot already (or there is no quota).
    Holds,
    /// The row took a slot and now shows `initializing`.
    Admitted,
    Refused(Hold),
}

/// The row asks for a change the controller has not applied yet (a redeploy, a spec change,
/// a teardown). The first deploy of a row (generation 1) is not counted.
fn pending_change(row: &PreviewRow) -> bool {
    row.observed_generation < row.generation && row.generation > 1
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Pure: when the row's pending change may be applied, if its budget is used up at `now`.
pub fn throttled_until(
    s: &Settings,
    row: &PreviewRow,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if s.redeploy_budget == 0 || !pending_change(row) || row.redeploy_generation >= row.generation {
        return None;
    }
    let end = row.redeploy_window_start? + to_chrono(s.redeploy_window);
    let used = u32::try_from(row.redeploys).unwrap_or(0);
    (end > now && used >= s.redeploy_budget).then_some(end)
}

/// The redeploy budget: `Some(Throttled)` ends the pass without touching Fly; otherwise a
/// new change is counted against the budget.
pub async fn budget(
    store: &Store,
    s: &Settings,
    row: &PreviewRow,
) -> Result<Option<Hold>, ReconcileError> {
    if let Some(until) = throttled_until(s, row, Utc::now()) {
        let message = format!(
            "too many redeploy/stop requests for this preview ({} within {}); the latest request \
             (desired_state '{}') is applied by itself at {} UTC",
            row.redeploys,
            humantime::format_duration(s.redeploy_window),
            row.desired_state,
            until.format("%H:%M:%S"),
        );
        return Ok(Some(Hold::Throttled { until, message }));
    }
    if s.redeploy_budget > 0 && pending_change(row) && row.redeploy_generation < row.generation {
        store.note_change(row.id, row.generation, s.redeploy_window).await?;
    }
    Ok(None)
}

/// Whether a deploy pass of this row must first take a slot of its user's quota: rows that
/// do not hold one (new rows, stopped ones, refused ones). A preview redeploying its machine
/// (`pending` with a machine) keeps its slot (`active_previews.sql` counts it).
fn needs_slot(row: &PreviewRow) -> bool {
    match row.status {
        Status::Pending => row.fly_machine_id.is_none(),
        Status::Stopped => true,
        Status::Error => row.status_reason == Some(Reason::QuotaExceeded),
        Status::Initializing | Status::Running => false,
    }
}

/// The quota, for a pass that would deploy `row`.
pub async fn admit(store: &Store, s: &Settings, row: &PreviewRow) -> Result<Admit, ReconcileError> {
    let limit = s.max_previews_per_user;
    if limit == 0 || !needs_slot(row) {
        return Ok(Admit::Holds);
    }
    match store.admit(row.id, row.user_id, row.generation, limit).await? {
        Admission::Admitted => Ok(Admit::Admitted),
        Admission::Fenced => Err(ReconcileError::Fenced),
        Admission::Refused { active } => Ok(Admit::Refused(Hold::Refused {
            message: format!(
                "this account already has {active} previews running or starting (limit {limit}); \
                 stop or delete one (set its status to 'stopped') and this preview deploys by \
                 itself"
            ),
        })),
    }
}

/// After a pass's write with `reason` landed: counts refusals and throttles, and closes the
/// race between a refusal and a slot freed meanwhile (the trigger then saw no refused row).
pub async fn after_write(
    store: &Store,
    s: &Settings,
    metrics: &Metrics,
    row: &PreviewRow,
    reason: Reason,
) {
    match reason {
        Reason::RedeployThrottled => metrics.redeploys_throttled.inc(),
        Reason::QuotaExceeded => {
            metrics.quota_refusals.inc();
            if let Err(e) = store.wake_refused_if_free(row.user_id, s.max_previews_per_user).await {
                metrics.db_errors.inc();
                tracing::warn!(error = %e, "re-checking the user's quota failed");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_pure_and_counts_only_changes_in_the_window() {
        let mut s = Settings::for_tests("personal");
        s.redeploy_budget = 2;
        s.redeploy_window = Duration::from_secs(600);
        let now = Utc::now();
        let row = |generation: i64, counted: i64, used: i32, started_ago: i64| PreviewRow {
            generation,
            observed_generation: generation - 1,
            redeploy_generation: counted,
            redeploys: used,
            redeploy_window_start: Some(now - chrono::Duration::seconds(started_ago)),
            ..crate::preview::test_rows::row(Status::Running, 0)
        };
        let end = now + chrono::Duration::seconds(500);
        assert_eq!(throttled_until(&s, &row(5, 4, 2, 100), now), Some(end), "budget used");
        assert_eq!(throttled_until(&s, &row(5, 4, 1, 100), now), None, "budget left");
        assert_eq!(throttled_until(&s, &row(5, 4, 2, 700), now), None, "window over");
        assert_eq!(throttled_until(&s, &row(5, 5, 2, 100), now), None, "already counted: go on");
        assert_eq!(throttled_until(&s, &row(1, 0, 9, 100), now), None, "a first deploy is free");
        s.redeploy_budget = 0;
        assert_eq!(throttled_until(&s, &row(5, 4, 9, 100), now), None, "0 = no budget");
    }
}
