//! `fly-sim`: the Fly Machines API simulator as a standalone server.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fly_sim::{FaultRule, SimConfig, Simulator};

#[derive(Debug, Parser)]
#[command(name = "fly-sim", version, about = "Serve the Fly Machines API simulator")]
struct Args {
    /// Address to serve the simulator on.
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:4280")]
    listen: SocketAddr,
    /// Seed for the simulator's randomness (fault probabilities), for replayable runs.
    #[arg(long, env = "SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// Fault rule, repeatable: e.g. `create_machine:408-after-commit:p=0.1`, `any:503:first=5`.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<FaultRule>,
    /// Accept only this token (default: any non-empty token).
    #[arg(long, env = "SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Machine boot time (starting → started).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    boot_time: Duration,
    /// Delay before service checks pass after start.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    check_delay: Duration,
    /// Added latency on every response.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    api_latency: Duration,
}

fn parse_fault(s: &str) -> Result<FaultRule, String> {
    s.parse::<FaultRule>().map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(a: Args) -> Result<(), String> {
    let cfg = SimConfig {
        seed: a.seed,
        token: a.token,
        boot_time: a.boot_time,
        check_delay: a.check_delay,
        api_latency: a.api_latency,
        faults: a.faults,
        ..SimConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| format!("--listen: cannot listen on {}: {e}", a.listen))?;
    let sim = Simulator::serve(listener, cfg).await.map_err(|e| e.to_string())?;
    println!("Fly Machines API simulator listening on {}/v1 (Ctrl-C to stop)", sim.base_url());
    wait_for_signal().await;
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
