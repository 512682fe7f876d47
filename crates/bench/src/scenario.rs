//! `--scenario KIND`: one Fly-in-trouble scenario (partial degradation, hanging sync,
//! failover), printed as a markdown section for BENCHMARKS.md.

use anyhow::Context;

use super::Environment;
use super::args::{BenchArgs, ScenarioKind};
use super::{child, db, degrade, failover, hanging};

pub async fn run(
    a: &BenchArgs,
    admin: &sqlx::PgPool,
    env: &Environment,
    kind: ScenarioKind,
) -> anyhow::Result<()> {
    let load = child::loadavg();
    let result = match kind {
        ScenarioKind::PartialDegradation => {
            degrade::run(a, admin).await.map(|r| degrade::render(&r, a))
        }
        ScenarioKind::HangingSync => hanging::run(a, admin).await.map(|r| hanging::render(&r, a)),
        ScenarioKind::Failover => failover::run(a, admin).await.map(|r| failover::render(&r, a)),
    };
    let dropped = db::drop_db(admin, &a.db_name).await;
    let text = result?;
    dropped.context("dropping the bench database")?;
    println!("## fly-preview-controller bench (scenario), {}\n", env.date);
    println!(
        "{} cores ({}), {}, PostgreSQL {}; 1-minute load average {load:.1} at the start\n",
        env.cores, env.cpu, env.memory, env.postgres
    );
    print!("{text}");
    Ok(())
}
