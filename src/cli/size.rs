//! The preview machine's size and the price table, shared by `run` (machines, cost gauges)
//! and `status --by-user` (per-user estimated cost).

use clap::Args;

use crate::preview::cost::{PriceTable, Size};

#[derive(Debug, Clone, Args)]
pub struct SizeArgs {
    /// Machine size: CPU kind, CPUs, memory. Default performance-1x: the first preview needs
    /// whole cores right after the machine starts, and a new shared vCPU has no burst balance
    /// (6.25 % of a core), so Next.js and Vite miss their targets there (README "Machine size",
    /// BENCHMARKS.md "Runner on Fly's CPU"). `shared` costs less while running.
    #[arg(long, env = "RUNNER_CPU_KIND", default_value = "performance")]
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::model::MachineState;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        size: SizeArgs,
    }

    fn started(kind: &str, cpus: u32, memory_mb: u32) -> f64 {
        let size = Size { cpu_kind: kind.into(), cpus, memory_mb };
        PriceTable::default().monthly(&size, &MachineState::Started)
    }

    #[test]
    fn the_default_size_is_performance_1x_with_2_gb() {
        let size = Cli::parse_from(["x"]).size.size();
        assert_eq!(size.label(), "performance-1x-2048mb");
        let month = PriceTable::default().monthly(&size, &MachineState::Started);
        assert!((month - 33.0).abs() < 1e-9, "{month}");
    }

    /// The prices README "Machine size" shows for each choice, from the price table.
    #[test]
    fn the_readme_size_choices_cost_what_it_says() {
        let readme = include_str!("../../README.md");
        for (kind, cpus, mb, dollars) in [
            ("shared", 1, 2048, "$12.70"),
            ("shared", 2, 2048, "$15.40"),
            ("shared", 2, 4096, "$25.40"),
            ("performance", 1, 2048, "$33.00"),
            ("performance", 2, 4096, "$66.00"),
        ] {
            assert_eq!(format!("${:.2}", started(kind, cpus, mb)), dollars);
            let name = if kind == "shared" { "shared-cpu" } else { "performance" };
            let row = format!("| {name}-{cpus}x, {} GB | **{dollars}** |", mb / 1024);
            assert!(readme.contains(&row), "README lacks {row:?}");
        }
    }
}
