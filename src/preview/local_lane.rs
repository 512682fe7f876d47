//! The local lane: passes that need no Fly call (the verdict on an invalid spec) never wait
//! behind Fly calls. While every worker slot of the runtime that new work may take is taken
//! (Fly slow or hung; the slots kept for started work do not count), this
//! loop looks at the oldest due rows, claims those whose spec fails validation and runs their
//! pass, a few at a time, within a fraction of a second.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::model::state::DesiredState;
use crate::model::validate::Rules;
use crate::ops::metrics::Metrics;
use crate::preview::deploy::validate_row;
use crate::preview::reconcile::{PreviewQueue, Previews};
use crate::runtime::driver::pass;
use crate::runtime::{InFlight, Runtime};
use crate::store::PreviewRow;

/// How often the lane looks while the runtime is saturated.
pub const TICK: Duration = Duration::from_millis(250);
/// Due rows scanned per look.
const SCAN: i64 = 500;
/// Local passes at once.
const SLOTS: usize = 8;

/// What the lane shares with the runtime it relieves.
pub struct LocalLane {
    queue: Arc<PreviewQueue>,
    previews: Arc<Previews>,
    metrics: Metrics,
    inflight: InFlight,
}

impl LocalLane {
    pub fn of(r: &Runtime<PreviewQueue, Previews>) -> Self {
        Self {
            queue: r.queue.clone(),
            previews: r.reconciler.clone(),
            metrics: r.metrics.clone(),
            inflight: r.inflight.clone(),
        }
    }
}

/// True when the row's pass ends without any Fly call: it asks to run and its spec is invalid.
pub fn needs_no_fly(row: &PreviewRow, rules: &Rules) -> bool {
    row.desired_state == DesiredState::Running && validate_row(row, rules).is_err()
}

/// Runs forever (the task dies with the replica).
pub async fn run(lane: LocalLane) {
    let ctx = lane.previews.ctx.clone();
    let mut tasks = JoinSet::new();
    let tick = ctx.settings.poll_interval.min(TICK);
    loop {
        tokio::time::sleep(tick).await;
        while tasks.try_join_next().is_some() {}
        // saturated: every slot but those kept for started work is taken
        let slots = ctx.settings.concurrency.saturating_sub(lane.queue.keep);
        let saturated = lane.metrics.inflight.get() >= slots as i64;
        if !saturated || !ctx.gate.open() || tasks.len() >= SLOTS {
            continue;
        }
        for row in local_rows(&lane, SLOTS - tasks.len()).await {
            lane.inflight.lock().unwrap_or_else(|p| p.into_inner()).insert(row.id);
            let (q, r) = (lane.queue.clone(), lane.previews.clone());
            let (m, i) = (lane.metrics.clone(), lane.inflight.clone());
            tasks.spawn(async move { pass(&*q, &*r, &m, row, &i).await });
        }
    }
}

/// Claims up to `n` due rows whose pass needs no Fly call.
async fn local_rows(lane: &LocalLane, n: usize) -> Vec<PreviewRow> {
    let (store, settings) = (&lane.queue.store, &lane.previews.ctx.settings);
    let rules = &settings.rules;
    let ids: Vec<uuid::Uuid> = match store.due_unleased(SCAN).await {
        Ok(rows) => rows.iter().filter(|r| needs_no_fly(r, rules)).map(|r| r.id).take(n).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "local lane: reading due rows failed");
            return Vec::new();
        }
    };
    if ids.is_empty() {
        return Vec::new();
    }
    let claimed = match store.claim_ids(&ids, settings.lease).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "local lane: claiming rows failed");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for row in claimed {
        if needs_no_fly(&row, rules) {
            out.push(row);
        } else if let Err(e) = store.release(row.id).await {
            tracing::warn!(error = %e, "local lane: releasing a changed row failed");
        }
    }
    out
}
