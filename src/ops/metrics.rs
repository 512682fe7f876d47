//! Prometheus metrics. One `Metrics` value owns its registry (no globals) so tests can
//! create as many as they like. Every name carries the `fly_preview_` prefix, counters end
//! in `_total`, durations are seconds, and no metric is labelled by app or machine.

use super::prom::{bug, reg};
use crate::model::SyncFailureKind;
use crate::model::state::Status;
use crate::model::timeline::EventKind;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Reconcile outcomes used as the `result` label.
pub const RESULTS: &[&str] = &["ok", "requeue", "error", "permanent", "fenced", "blocked"];
/// Fly API actions the client labels requests with (pre-initialised so rates start at 0).
pub const FLY_ACTIONS: &[&str] = &[
    "create_app",
    "get_app",
    "delete_app",
    "list_apps",
    "list_ips",
    "assign_ip",
    "list_machines",
    "create_machine",
    "get_machine",
    "update_machine",
    "start_machine",
    "stop_machine",
    "destroy_machine",
    "wait_machine",
    "list_org_machines",
    "exec_machine",
    "list_secrets",
    "update_secrets",
];

/// `result` labels of `fly_preview_teardowns_completed_total` (teardown of deleted rows):
/// the app was destroyed, was already gone, or was left alone because it is not the deleted
/// row's (its name has a row again, or it holds machines we did not create for that row).
pub const TEARDOWN_RESULTS: &[&str] = &["destroyed", "absent", "kept"];

/// Declares [`Metrics`]: each line is a field, its type and how it is made and registered
/// (`maker(name, help, labels or buckets)`, the makers below); `fleet` and the registry follow.
macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty = $make:ident($($arg:expr),*);)*) => {
        #[derive(Clone)]
        pub struct Metrics {
            registry: Registry,
            $($(#[doc = $doc])* pub $field: $ty,)*
            /// Machines by state and size, and what they cost.
            pub fleet: super::fleet_metrics::Fleet,
        }

        /// Every metric, registered in `r`.
        fn build(r: Registry) -> Metrics {
            Metrics {
                $($field: $make(&r, $($arg),*),)*
                fleet: super::fleet_metrics::Fleet::new(&r),
                registry: r,
            }
        }
    };
}

metrics! {
    reconciles: IntCounterVec = counter_vec("fly_preview_reconciles_total",
        "Reconcile passes by result.", &["result"]);
    /// Passes whose final write changed nothing the row already said and left it waiting
    /// for a change (`preview::quiet`): above zero at rest means a loop.
    reconciles_unchanged: IntCounter = counter("fly_preview_reconciles_unchanged_total",
        "Reconcile passes whose final write changed nothing the row already said \
        (a loop if it keeps rising at rest).");
    reconcile_duration: HistogramVec = histogram_vec("fly_preview_reconcile_duration_seconds",
        "Duration of one reconcile pass.", &["result"], FAST);
    previews: IntGaugeVec = int_gauge_vec("fly_preview_previews", "Rows by status.", &["status"]);
    due_rows: IntGauge = int_gauge("fly_preview_due_rows", "Rows whose next attempt is due now.");
    queue_lag: Gauge = gauge("fly_preview_queue_lag_seconds",
        "Age of the oldest due, unleased row.");
    rows_in_backoff: IntGauge = int_gauge("fly_preview_rows_in_backoff",
        "Rows in error waiting for a retry.");
    time_to_running: Histogram = histogram("fly_preview_time_to_running_seconds",
        "Time from a (re)deploy request to status running.", SLOW);
    /// Time-to-running by phase: each timeline milestone's elapsed time since the previous
    /// one (`phase` = the milestone that ended it, a fixed set).
    phase_seconds: HistogramVec = histogram_vec("fly_preview_phase_seconds",
        "Time from a preview's previous milestone to this one (phase of time-to-running).",
        &["phase"], PHASE);
    inflight: IntGauge = int_gauge("fly_preview_inflight_reconciles", "Reconciles running now.");
    fly_requests: IntCounterVec = counter_vec("fly_preview_fly_requests_total",
        "Fly Machines API requests by action and status class.", &["action", "status_class"]);
    fly_request_duration: HistogramVec = histogram_vec("fly_preview_fly_request_duration_seconds",
        "Fly Machines API request duration.", &["action"], FAST);
    fly_throttled: IntCounterVec = counter_vec("fly_preview_fly_throttled_total",
        "Requests delayed by the client-side rate limiter.", &["action"]);
    fly_rate_limited: IntCounter = counter("fly_preview_fly_rate_limited_total",
        "HTTP 429 responses received from Fly.");
    leader: IntGauge = int_gauge("fly_preview_leader",
        "1 while this replica holds the leadership lock.");
    /// Statements this replica sent for leadership (session set-up, waits, checks, step-downs).
    leader_statements: IntCounter = counter("fly_preview_leader_statements_total",
        "Statements sent for leadership: session set-up, lock waits, checks, step-downs.");
    /// 1 while the Fly API is considered down (the client's circuit breaker is open).
    fly_down: IntGauge = int_gauge("fly_preview_fly_unavailable",
        "1 while the Fly API fails platform-wide and calls are down to probes.");
    /// Times the client's circuit breaker opened.
    fly_breaker_trips: IntCounter = counter("fly_preview_fly_breaker_trips_total",
        "Times the Fly circuit breaker opened (platform failures in a row).");
    /// 1 while our own Fly configuration (token, org, runner image) is refused: no work.
    blocked: IntGauge = int_gauge("fly_preview_blocked",
        "1 while Fly refuses the controller's token, org or runner image (no work is done).");
    /// Preview apps on the org's shared private network (Fly cannot move them to their own).
    apps_on_shared_network: IntGauge = int_gauge("fly_preview_apps_on_shared_network",
        "Preview apps on the org's shared private network (seen by the last full resync).");
    orphans_destroyed: IntCounter = counter("fly_preview_orphans_destroyed_total",
        "Orphaned Fly apps destroyed by the sweep.");
    /// Deleted rows whose teardown is not finished (tombstones left).
    tombstones_pending: IntGauge = int_gauge("fly_preview_tombstones_pending",
        "Deleted rows whose Fly app is not confirmed gone yet (tombstones).");
    /// Finished teardowns of deleted rows, by result ([`TEARDOWN_RESULTS`]).
    teardowns: IntCounterVec = counter_vec("fly_preview_teardowns_completed_total",
        "Finished teardowns of deleted rows, by result (destroyed, absent, kept).", &["result"]);
    notifications: IntCounter = counter("fly_preview_notifications_total",
        "Postgres notifications received.");
    resyncs: IntCounterVec = counter_vec("fly_preview_resyncs_total",
        "Full resyncs by reason.", &["reason"]);
    drift_repairs: IntCounter = counter("fly_preview_drift_detected_total",
        "Rows requeued because Fly drifted from them.");
    last_sync: Gauge = gauge("fly_preview_last_sync_timestamp_seconds",
        "Unix time of the last successful sync with the database.");
    db_errors: IntCounter = counter("fly_preview_db_errors_total",
        "Database errors seen by the queue runtime and the background loops.");
    /// Deploys refused because the user has `MAX_PREVIEWS_PER_USER` previews already.
    quota_refusals: IntCounter = counter("fly_preview_quota_refusals_total",
        "Deploys refused because the user already has MAX_PREVIEWS_PER_USER previews.");
    /// Passes that left a change for later: the row used its redeploy budget.
    redeploys_throttled: IntCounter = counter("fly_preview_redeploys_throttled_total",
        "Passes that left a change for later because the row used its redeploy budget.");
    /// Failed passes by error kind (a fixed label set: `preview::error::KINDS`).
    reconcile_errors: IntCounterVec = counter_vec("fly_preview_reconcile_errors_total",
        "Reconcile passes that ended in an error, by error kind.", &["kind"]);
    /// Sync on save: one exec of the runner's `sync` through the row write (seconds).
    sync_duration: Histogram = histogram("fly_preview_sync_duration_seconds",
        "Sync on save: claim, exec of the runner's sync and the row write.", FAST);
    /// Sync on save attempts that did not confirm the revision, by a fixed kind.
    sync_failures: IntCounterVec = counter_vec("fly_preview_sync_failures_total",
        "Sync on save attempts that did not confirm the revision, by kind.", &["kind"]);
    /// Previews torn down after PREVIEW_IDLE_TTL unused (status `stopped`, reason `Expired`).
    expired: IntCounter = counter("fly_preview_expired_total",
        "Previews torn down because nobody opened them for PREVIEW_IDLE_TTL.");
    /// Opened previews whose machine, suspended or stopped by autostop, was started.
    wakes: IntCounter = counter("fly_preview_wakes_total",
        "Opened previews whose machine, asleep by autostop, was started at once.");
    /// From the user's open (`opened_at`) to the woken machine started (seconds).
    wake_seconds: Histogram = histogram("fly_preview_wake_seconds",
        "From the user's open (opened_at) to the woken machine started.", FAST);
    build_info: IntGaugeVec = int_gauge_vec("fly_preview_build_info",
        "Build information.", &["version"]);
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(c.clone()));
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(c.clone()));
    c
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(g.clone()));
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(g.clone()));
    g
}

fn histogram(r: &Registry, name: &str, help: &str, b: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(b.to_vec()))
        .unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(h.clone()));
    h
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str], b: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(b.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(h.clone()));
    h
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| bug(name, e));
    reg(r, name, Box::new(g.clone()));
    g
}

const FAST: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const PHASE: &[f64] = &[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
const SLOW: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0];

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        reg(&r, "process", Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        reg(&r, super::db_statements::NAME, super::db_statements::collector());
        let m = build(r);
        m.init_series();
        m
    }

    /// Pre-initialises the error kinds (the list lives with the errors, above this module).
    pub fn init_error_kinds(&self, kinds: &[&str]) {
        for k in kinds {
            self.reconcile_errors.with_label_values(&[k]);
        }
    }

    /// Touch every label combination once so dashboards and alerts see zeros, not gaps.
    fn init_series(&self) {
        for r in RESULTS {
            self.reconciles.with_label_values(&[r]);
            self.reconcile_duration.with_label_values(&[r]);
        }
        for s in Status::ALL {
            self.previews.with_label_values(&[s.as_str()]);
        }
        for action in FLY_ACTIONS {
            self.fly_request_duration.with_label_values(&[action]);
            self.fly_throttled.with_label_values(&[action]);
            for class in ["2xx", "4xx", "429", "5xx", "transport"] {
                self.fly_requests.with_label_values(&[action, class]);
            }
        }
        for result in TEARDOWN_RESULTS {
            self.teardowns.with_label_values(&[result]);
        }
        for kind in SyncFailureKind::ALL {
            self.sync_failures.with_label_values(&[kind.as_str()]);
        }
        for reason in ["startup", "listener", "periodic"] {
            self.resyncs.with_label_values(&[reason]);
        }
        for kind in EventKind::ALL {
            self.phase_seconds.with_label_values(&[kind.as_str()]);
        }
        self.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    }

    /// Prometheus text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The status class label for a Fly response: `2xx`, `4xx`, `429`, `5xx`, or `transport`.
    pub fn status_class(status: Option<u16>) -> &'static str {
        match status {
            Some(429) => "429",
            Some(s) if (200..300).contains(&s) => "2xx",
            Some(s) if (300..500).contains(&s) => "4xx",
            Some(_) => "5xx",
            None => "transport",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_prefixed_and_counters_end_in_total() {
        let m = Metrics::new();
        let text = m.encode();
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let mut parts = line.split_whitespace().skip(2);
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(name.starts_with("fly_preview_") || name.starts_with("process_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
        assert!(text.contains("fly_preview_reconciles_total{result=\"ok\"} 0"));
    }

    #[test]
    fn status_classes() {
        assert_eq!(Metrics::status_class(Some(201)), "2xx");
        assert_eq!(Metrics::status_class(Some(429)), "429");
        assert_eq!(Metrics::status_class(Some(404)), "4xx");
        assert_eq!(Metrics::status_class(Some(503)), "5xx");
        assert_eq!(Metrics::status_class(None), "transport");
    }
}
