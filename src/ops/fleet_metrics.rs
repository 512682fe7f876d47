//! Gauges of what the fleet runs and what it costs: machines by state and size, and the
//! estimated monthly cost by machine state (`preview::cost` computes it). No per-app or
//! per-user labels: `status --by-user` has the per-user view.

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};

use super::prom::{bug, reg};

/// Machine states whose cost series exist even when no machine is in them.
const STATES: [&str; 3] = ["started", "suspended", "stopped"];

#[derive(Clone)]
pub struct Fleet {
    /// `fly_preview_machines{state,size}`: the rows' machines as last seen on Fly.
    pub machines: IntGaugeVec,
    /// `fly_preview_estimated_monthly_cost_dollars{state}`.
    pub monthly_cost: GaugeVec,
}

impl Fleet {
    pub(super) fn new(r: &Registry) -> Self {
        let opts = Opts::new(
            "fly_preview_machines",
            "Preview machines by state and size, as last seen on Fly.",
        );
        let machines =
            IntGaugeVec::new(opts, &["state", "size"]).unwrap_or_else(|e| bug("machines", e));
        reg(r, "machines", Box::new(machines.clone()));
        let opts = Opts::new(
            "fly_preview_estimated_monthly_cost_dollars",
            "Estimated Fly cost of the preview machines for a month in their current state (PRICE_TABLE).",
        );
        let monthly_cost = GaugeVec::new(opts, &["state"]).unwrap_or_else(|e| bug("cost", e));
        reg(r, "cost", Box::new(monthly_cost.clone()));
        let fleet = Self { machines, monthly_cost };
        fleet.init();
        fleet
    }

    /// The cost of the usual states is always exported (0 with no machines); machine counts
    /// carry the configured size, known once the daemon reports.
    fn init(&self) {
        for state in STATES {
            self.monthly_cost.with_label_values(&[state]).set(0.0);
        }
    }

    /// Replaces every series with `by_state` (state, size label, machines, dollars a month).
    pub fn set(&self, by_state: &[(String, String, i64, f64)]) {
        self.machines.reset();
        self.monthly_cost.reset();
        self.init();
        for (state, size, n, dollars) in by_state {
            self.machines.with_label_values(&[state, size]).add(*n);
            self.monthly_cost.with_label_values(&[state]).add(*dollars);
        }
    }
}
