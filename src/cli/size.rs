//! The preview machine's size and the price table, shared by `run` (machines, cost gauges)
//! and `status --by-user` (per-user estimated cost).

use clap::Args;

use crate::preview::cost::{PriceTable, Size};

#[derive(Debug, Clone, Args)]
pub struct SizeArgs {
    /// Machine size: CPU kind, CPUs, memory.
    #[arg(long, env = "RUNNER_CPU_KIND", default_value = "shared")]
    pub runner_cpu_kind: String,
    #[arg(long, env = "RUNNER_CPUS", default_value_t = 1)]
    pub runner_cpus: u32,
    /// Memory of a preview machine; a Next.js dev server needs about 1 GB (BENCHMARKS.md).
    #[arg(long, env = "RUNNER_MEMORY_MB", default_value_t = 2048)]
    pub runner_memory_mb: u32,
    /// Prices for the cost estimate, `key=value` pairs over Fly's published defaults
    /// (`memory_gb`, `shared_cpu`, `performance_cpu`, `storage_gb`, `rootfs_gb`; README "Cost").
    #[arg(long, env = "PRICE_TABLE", default_value = "", value_parser = PriceTable::parse)]
    pub price_table: PriceTable,
}

impl SizeArgs {
    pub fn size(&self) -> Size {
        Size {
            cpu_kind: self.runner_cpu_kind.clone(),
            cpus: self.runner_cpus,
            memory_mb: self.runner_memory_mb,
        }
    }
}
