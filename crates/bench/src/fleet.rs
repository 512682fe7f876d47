//! Reading the simulator's request log: Fly calls per app, org-wide calls, 429s; and the
//! critical-path lower bound a perfect controller could reach on the same simulator.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fly_sim::{LoggedRequest, SimConfig};

/// The simulator keeps the newest 100,000 requests (`sim::server::LOG_CAPACITY`).
pub const SIM_LOG_CAPACITY: usize = 100_000;
/// Org-wide listings, reported apart from per-app calls.
const ORG_WIDE: &[&str] = &["list_apps", "org_machines"];

/// Nearest-rank percentile of an ascending slice (0 for an empty one).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The app a request is about (`/v1/apps/{name}/…`); `POST /v1/apps` carries it in the body.
pub fn app_of(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/apps/")?.split('/').next().filter(|s| !s.is_empty())
}

/// Fly calls of one fleet, from the request log.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    /// The log had wrapped: per-app figures would be incomplete and are left out.
    pub wrapped: bool,
    /// Non-429 calls per app (app-scoped calls + its one successful create): mean, p50, max.
    pub per_app: (f64, f64, f64),
    /// Mean non-429 calls per app, by action.
    pub by_action: Vec<(String, f64)>,
    /// Org-wide listing calls (not per app), by action.
    pub org_wide: Vec<(String, u64)>,
    /// 429 answers, by action.
    pub rate_limited: Vec<(String, u64)>,
    pub total_requests: usize,
}

pub fn call_stats(log: &[LoggedRequest], apps: usize) -> CallStats {
    let mut out = CallStats {
        wrapped: log.len() >= SIM_LOG_CAPACITY,
        total_requests: log.len(),
        ..CallStats::default()
    };
    let mut per_app: HashMap<&str, f64> = HashMap::new();
    let (mut by_action, mut org, mut limited) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for r in log {
        if r.status == 429 {
            *limited.entry(r.action.to_owned()).or_insert(0u64) += 1;
        } else if ORG_WIDE.contains(&r.action) {
            *org.entry(r.action.to_owned()).or_insert(0u64) += 1;
        } else {
            *by_action.entry(r.action.to_owned()).or_insert(0u64) += 1;
            if let Some(app) = app_of(&r.path) {
                *per_app.entry(app).or_insert(0.0) += 1.0;
            }
        }
    }
    let creates = by_action.get("create_app").copied().unwrap_or(0) as f64;
    let share = if per_app.is_empty() { 0.0 } else { creates / per_app.len() as f64 };
    let v = sorted(per_app.values().map(|c| c + share).collect());
    let mean = if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    out.per_app = (mean, pct(&v, 50.0), v.last().copied().unwrap_or(0.0));
    let denom = apps.max(1) as f64;
    out.by_action = by_action.into_iter().map(|(a, c)| (a, c as f64 / denom)).collect();
    out.org_wide = org.into_iter().collect();
    out.rate_limited = limited.into_iter().collect();
    out
}

/// Requests of the log that arrived in `[from_ms, to_ms)` of simulator time, by action.
pub fn calls_between(log: &[LoggedRequest], from_ms: u64, to_ms: u64) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for r in log.iter().filter(|r| r.at_ms >= from_ms && r.at_ms < to_ms) {
        *m.entry(r.action.to_owned()).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

/// The fastest any controller could converge a fleet on this simulator: one app's serial
/// chain (create app, two IPs, create machine: 4 calls; machine create→start + boot +
/// checks; one read that sees the checks pass). Fly's limits are per action and app/machine
/// (1 req/s, burst 3; get-machine 5/s, burst 10): one app's chain stays inside the burst and
/// apps do not share buckets, so the bound does not grow with the fleet.
pub fn lower_bound(sim: &SimConfig) -> Duration {
    sim.api_latency * 5 + sim.create_to_start + sim.boot_time + sim.check_delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_paths() {
        let v = sorted(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((pct(&v, 50.0), pct(&v, 99.0), pct(&v, 0.0)), (3.0, 5.0, 1.0));
        assert_eq!(app_of("/v1/apps/roseram-1/machines"), Some("roseram-1"));
        assert_eq!(app_of("/v1/apps"), None);
        assert_eq!(app_of("/v1/orgs/personal/machines"), None);
    }

    #[test]
    fn bound_is_one_apps_chain() {
        let cfg = SimConfig { api_latency: Duration::from_millis(50), ..SimConfig::default() };
        assert_eq!(lower_bound(&cfg), Duration::from_millis(250 + 50 + 100 + 100));
    }
}
