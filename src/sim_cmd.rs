//! `simulate`: the Fly Machines API simulator as a standalone server.

use crate::cli::CliError;
use crate::config::{ConfigError, SimulateArgs};
use crate::shutdown::{self, Phase, Shutdown};
use crate::sim::{FaultRule, SimConfig, Simulator};

pub fn sim_config(a: &SimulateArgs) -> Result<SimConfig, ConfigError> {
    let faults = a
        .faults
        .iter()
        .map(|f| {
            f.parse::<FaultRule>().map_err(|e| ConfigError::new("--fault", format!("{f:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SimConfig {
        seed: a.seed,
        token: a.token.clone(),
        boot_time: a.boot_time,
        check_delay: a.check_delay,
        api_latency: a.api_latency,
        faults,
        ..SimConfig::default()
    })
}

pub async fn run(a: SimulateArgs) -> Result<(), CliError> {
    let cfg = sim_config(&a)?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| ConfigError::new("--listen", format!("cannot listen on {}: {e}", a.listen)))?;
    let sim = Simulator::serve(listener, cfg).await.map_err(anyhow::Error::from)?;
    println!("Fly Machines API simulator listening on {}/v1 (Ctrl-C to stop)", sim.base_url());
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    shutdown::reached(&mut shutdown.subscribe(), Phase::Draining).await;
    sim.shutdown().await;
    Ok(())
}
