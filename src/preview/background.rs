//! Background loops of one replica: queue statistics, and the notification listener (which
//! wakes the runtime and the teardown of deleted rows, and requests a resync after a
//! reconnect, because notifications sent while disconnected are lost).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::ops::health::Health;
use crate::ops::metrics::Metrics;
use crate::preview::cost::{self, PriceTable, Size};
use crate::preview::refresh::Refresh;
use crate::runtime::backoff::Backoff;
use crate::store::{ListenEvent, Listener, Op, Store};

/// Refreshes the queue and fleet gauges (and readiness' view of the database) every
/// `every` while rows change, every `max_age` at rest ([`Refresh`]).
pub async fn stats(
    store: Store,
    metrics: Metrics,
    health: Arc<Health>,
    (every, max_age): (Duration, Duration),
    pricing: (PriceTable, Size),
) {
    let mut tick = tokio::time::interval(every);
    let mut refresh = Refresh::new(max_age);
    loop {
        tick.tick().await;
        if !refresh.due(&metrics) {
            continue;
        }
        match store.machines_by_state().await {
            Ok(by_state) => metrics.fleet.set(&cost::series(&pricing.0, &pricing.1, &by_state)),
            Err(e) => tracing::warn!(error = %e, "reading the fleet's machines failed"),
        }
        match store.stats().await {
            Ok(s) => {
                health.set_db(true);
                metrics.due_rows.set(s.due);
                metrics.queue_lag.set(s.oldest_due_seconds);
                metrics.rows_in_backoff.set(s.in_backoff);
                for (status, n) in &s.by_status {
                    metrics.previews.with_label_values(&[status.as_str()]).set(*n);
                }
                metrics.last_sync.set(chrono::Utc::now().timestamp() as f64);
            }
            Err(e) => {
                health.set_db(false);
                metrics.db_errors.inc();
                tracing::warn!(error = %e, "reading queue statistics failed");
            }
        }
    }
}

/// Channels the listener talks to.
pub struct ListenTargets {
    pub wake: Arc<Notify>,
    pub resync: Arc<Notify>,
    /// Wakes the teardown of deleted rows (`preview::teardown`): a row was deleted, or
    /// notifications may have been lost. The tombstones themselves are in the database.
    pub teardowns: Arc<Notify>,
    /// Rows whose `revision` changed, for the sync lane (`preview::sync`).
    pub revisions: mpsc::Sender<uuid::Uuid>,
    pub health: Arc<Health>,
    pub metrics: Metrics,
}

/// Pauses between failed LISTEN connects: 250 ms doubling to 10 s.
const RECONNECT: Backoff =
    Backoff { base: Duration::from_millis(250), cap: Duration::from_secs(10) };

/// LISTENs forever, reconnecting with a capped delay; every (re)connect requests a resync.
pub async fn listen(store: Store, t: ListenTargets) {
    let mut failures = 0;
    loop {
        match Listener::connect(store.pool()).await {
            Ok(mut l) => {
                failures = 0;
                t.health.set_listener(true);
                t.resync.notify_one();
                t.wake.notify_one();
                t.teardowns.notify_one();
                pump(&mut l, &t).await;
                t.health.set_listener(false);
            }
            Err(e) => {
                t.health.set_listener(false);
                let delay = RECONNECT.ceiling(failures);
                tracing::warn!(error = %e, "LISTEN failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                failures += 1;
            }
        }
    }
}

async fn pump(l: &mut Listener, t: &ListenTargets) {
    loop {
        match l.next().await {
            Ok(ListenEvent::Notified(n)) if n.op == Op::Revision => {
                t.metrics.notifications.inc();
                if t.revisions.try_send(n.id).is_err() {
                    tracing::debug!("sync queue full; the sync sweep will catch up");
                }
            }
            Ok(ListenEvent::Notified(n)) => {
                t.metrics.notifications.inc();
                if n.op == Op::Delete {
                    t.teardowns.notify_one();
                }
                t.wake.notify_one();
            }
            Ok(ListenEvent::Reconnected) => {
                tracing::warn!("notification listener reconnected; resyncing");
                t.metrics.resyncs.with_label_values(&["listener"]).inc();
                t.resync.notify_one();
                t.wake.notify_one();
                t.teardowns.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification listener lost its connection");
                return;
            }
        }
    }
}
