//! What the fleet costs on Fly, estimated from the machines' states and sizes and one price
//! table. The defaults are Fly's published prices (iad, always on) as quoted on 2026-12-06:
//! shared-cpu-1x with 2 GB ≈ $12.70 a month and performance-1x with 2 GB ≈ $33.00, i.e.
//! memory $5.00 per GB-month, a shared vCPU $2.70 and a performance vCPU $23.00 a month;
//! a stopped or suspended machine pays only for its root filesystem (and, suspended, the
//! memory snapshot it keeps) at $0.15 per GB-month. An app without machines costs nothing.
//! Operators override any of them with `PRICE_TABLE` (e.g.
//! `memory_gb=5,shared_cpu=2.7,performance_cpu=23,storage_gb=0.15,rootfs_gb=2`).
//!
//! # Assumptions
//! Machines bill per second while `started`; an estimate "per month" is 30 days of the
//! current state. Per-user figures are not metric labels (cardinality): `status --by-user`.

use crate::model::MachineState;
use crate::preview::machine_config::RunnerSettings;

/// Where the default prices come from (shown by `status --by-user` and the README).
pub const PRICES_AS_OF: &str = "Fly.io published prices, iad, quoted 2026-12-06";

/// Dollars per month, by resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceTable {
    pub memory_gb: f64,
    pub shared_cpu: f64,
    pub performance_cpu: f64,
    /// Root filesystem and snapshot storage of a machine that is not running, per GB.
    pub storage_gb: f64,
    /// Size of a preview machine's root filesystem (runner image, clone, dependencies), GB.
    pub rootfs_gb: f64,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self {
            memory_gb: 5.0,
            shared_cpu: 2.7,
            performance_cpu: 23.0,
            storage_gb: 0.15,
            rootfs_gb: 2.0,
        }
    }
}

/// A machine size as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub cpu_kind: String,
    pub cpus: u32,
    pub memory_mb: u32,
}

impl Size {
    pub fn of(runner: &RunnerSettings) -> Self {
        Self { cpu_kind: runner.cpu_kind.clone(), cpus: runner.cpus, memory_mb: runner.memory_mb }
    }

    /// `shared-cpu-1x-2048mb`: Fly's size name plus the memory (a metric label).
    pub fn label(&self) -> String {
        let kind = if self.cpu_kind == "performance" { "performance" } else { "shared-cpu" };
        format!("{kind}-{}x-{}mb", self.cpus, self.memory_mb)
    }
}

impl PriceTable {
    /// Parses `key=value` pairs separated by commas over the defaults.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut t = Self::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) =
                pair.split_once('=').ok_or_else(|| format!("{pair:?}: expected key=value"))?;
            let v: f64 = v.trim().parse().map_err(|_| format!("{pair:?}: not a number"))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{pair:?}: must be a number ≥ 0"));
            }
            let slot = match k.trim() {
                "memory_gb" => &mut t.memory_gb,
                "shared_cpu" => &mut t.shared_cpu,
                "performance_cpu" => &mut t.performance_cpu,
                "storage_gb" => &mut t.storage_gb,
                "rootfs_gb" => &mut t.rootfs_gb,
                other => {
                    return Err(format!(
                        "unknown price {other:?} (memory_gb, shared_cpu, performance_cpu, storage_gb, rootfs_gb)"
                    ));
                }
            };
            *slot = v;
        }
        Ok(t)
    }

    /// A machine of `size` in `state`, for a month.
    pub fn monthly(&self, size: &Size, state: &MachineState) -> f64 {
        let memory_gb = f64::from(size.memory_mb) / 1024.0;
        let cpu =
            if size.cpu_kind == "performance" { self.performance_cpu } else { self.shared_cpu };
        match state {
            MachineState::Started | MachineState::Starting | MachineState::Replacing => {
                f64::from(size.cpus) * cpu + memory_gb * self.memory_gb
            }
            MachineState::Suspended | MachineState::Suspending => {
                (self.rootfs_gb + memory_gb) * self.storage_gb
            }
            MachineState::Destroyed | MachineState::Destroying => 0.0,
            _ => self.rootfs_gb * self.storage_gb,
        }
    }
}

/// Gauge series: (state, size label, machines, dollars a month) for each machine state.
pub fn series(
    prices: &PriceTable,
    size: &Size,
    by_state: &[(MachineState, i64)],
) -> Vec<(String, String, i64, f64)> {
    let label = size.label();
    by_state
        .iter()
        .map(|(state, n)| {
            let dollars = prices.monthly(size, state) * *n as f64;
            (state.as_str().to_owned(), label.clone(), *n, dollars)
        })
        .collect()
}

/// One user's previews and what their machines cost.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserCost {
    pub user_id: uuid::Uuid,
    pub previews: i64,
    /// Previews whose machine is started (billed in full).
    pub started: i64,
    pub monthly_dollars: f64,
}

/// Per-user totals from `(user, machine state or none, previews)`, most expensive first
/// (then most previews), at most `top`.
pub fn by_user(
    prices: &PriceTable,
    size: &Size,
    rows: &[(uuid::Uuid, Option<MachineState>, i64)],
    top: usize,
) -> Vec<UserCost> {
    let mut users: std::collections::BTreeMap<uuid::Uuid, UserCost> = Default::default();
    for (user, state, n) in rows {
        let u = users.entry(*user).or_insert(UserCost {
            user_id: *user,
            previews: 0,
            started: 0,
            monthly_dollars: 0.0,
        });
        u.previews += n;
        if let Some(state) = state {
            u.monthly_dollars += prices.monthly(size, state) * *n as f64;
            u.started += if *state == MachineState::Started { *n } else { 0 };
        }
    }
    let mut list: Vec<UserCost> = users.into_values().collect();
    list.sort_by(|a, b| {
        b.monthly_dollars.total_cmp(&a.monthly_dollars).then(b.previews.cmp(&a.previews))
    });
    list.truncate(top);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(kind: &str, mb: u32) -> Size {
        Size { cpu_kind: kind.into(), cpus: 1, memory_mb: mb }
    }

    #[test]
    fn the_defaults_match_the_quoted_prices() {
        let p = PriceTable::default();
        assert!((p.monthly(&size("shared", 2048), &MachineState::Started) - 12.7).abs() < 1e-9);
        assert!(
            (p.monthly(&size("performance", 2048), &MachineState::Started) - 33.0).abs() < 1e-9
        );
        let suspended = p.monthly(&size("shared", 2048), &MachineState::Suspended);
        assert!((suspended - 0.6).abs() < 1e-9, "{suspended}");
        assert!((p.monthly(&size("shared", 2048), &MachineState::Stopped) - 0.3).abs() < 1e-9);
        assert_eq!(size("shared", 2048).label(), "shared-cpu-1x-2048mb");
    }

    #[test]
    fn series_and_users_add_up() {
        let (p, s) = (PriceTable::default(), size("shared", 2048));
        let got = series(&p, &s, &[(MachineState::Started, 2), (MachineState::Suspended, 10)]);
        assert_eq!(got[0].0, "started");
        assert!((got[0].3 - 25.4).abs() < 1e-9 && (got[1].3 - 6.0).abs() < 1e-9, "{got:?}");
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let rows = [
            (a, None, 50),
            (a, Some(MachineState::Suspended), 1),
            (b, Some(MachineState::Started), 1),
        ];
        let users = by_user(&p, &s, &rows, 10);
        assert_eq!((users[0].user_id, users[0].started, users[0].previews), (b, 1, 1));
        assert_eq!((users[1].user_id, users[1].previews), (a, 51));
        assert_eq!(by_user(&p, &s, &rows, 1).len(), 1);
    }

    #[test]
    fn overrides_parse_and_bad_ones_are_named() {
        let p = PriceTable::parse("memory_gb=4, shared_cpu=2").unwrap();
        assert_eq!((p.memory_gb, p.shared_cpu, p.storage_gb), (4.0, 2.0, 0.15));
        assert!(PriceTable::parse("gpu=1").unwrap_err().contains("unknown price"));
        assert!(PriceTable::parse("memory_gb=-1").unwrap_err().contains("≥ 0"));
        assert!(PriceTable::parse("memory_gb").unwrap_err().contains("key=value"));
        assert_eq!(PriceTable::parse("").unwrap(), PriceTable::default());
    }
}
