//! The controller under test as its own process: `fly-preview-controller run` (which is
//! `daemon::run` behind the production command line), pointed at the in-process simulator
//! and the bench database. Running it apart keeps the simulator's and the bench's memory and
//! CPU out of the daemon's figures, which are read from `/proc/<pid>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The controller binary: `--controller-bin`, else `fly-preview-controller` beside this binary.
pub fn controller_bin(flag: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe().context("locating the bench binary")?;
    let exe = me.with_file_name("fly-preview-controller");
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: build it with `cargo build --release --workspace` or pass --controller-bin",
        exe.display()
    );
    Ok(exe)
}

/// Any non-empty token works with the simulator; this one is never a real credential.
pub const SIM_TOKEN: &str = "fo1_bench_token_0123456789";

pub struct Daemon {
    child: Child,
    pid: u32,
    admin: SocketAddr,
    http: reqwest::Client,
    pub log_path: PathBuf,
}

/// Memory and CPU of a process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// Peak resident set (VmHWM), MB (10^6 bytes).
    pub peak_rss_mb: f64,
    /// Current resident set (VmRSS), MB.
    pub rss_mb: f64,
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

impl Daemon {
    /// Starts `run` with the given concurrency; its logs go to a file in the temp dir, named
    /// by this bench's pid and `tag`, so benches run side by side never share one.
    pub async fn spawn(
        exe: &std::path::Path,
        db_url: &str,
        fly_url: &str,
        concurrency: u16,
        tag: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let admin = free_port()?;
        let name = format!("fly-preview-bench-{}-{tag}.log", std::process::id());
        let log_path = std::env::temp_dir().join(name);
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(exe)
            .arg("run")
            .args(["--fly-api-url", fly_url, "--fly-org", "personal"])
            .args(["--concurrency", &concurrency.to_string(), "--listen-addr", &admin.to_string()])
            .env("DATABASE_URL", db_url)
            .env("FLY_API_TOKEN", SIM_TOKEN)
            // as the daemon's image sets it (deploy/Dockerfile)
            .env("MALLOC_ARENA_MAX", "2")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("starting the controller process")?;
        let pid = child.id().context("the controller process has no pid")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let d = Self { child, pid, admin, http, log_path };
        d.wait_ready(Duration::from_secs(30)).await?;
        Ok(d)
    }

    /// Polls `/readyz` until the daemon has connected, listens and made its first claim.
    async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let url = format!("http://{}/readyz", self.admin);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the controller did not become ready; see {}",
                    self.log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The daemon's Prometheus metrics text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("http://{}/metrics", self.admin);
        Ok(self.http.get(&url).send().await?.error_for_status()?.text().await?)
    }

    /// SIGKILL: the process dies at once, leases and leadership held (the failover scenario).
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("SIGKILL of the controller")?;
        self.child.wait().await?;
        Ok(())
    }

    pub fn proc_stats(&self) -> anyhow::Result<ProcStats> {
        proc_stats(self.pid)
    }

    /// SIGTERM (graceful drain), then SIGKILL if it has not exited within 40 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        match tokio::time::timeout(Duration::from_secs(40), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Sum of a metric's samples whose line starts with `name` (optionally `name{…label…}`).
pub fn metric_sum(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' '))
        })
        .filter(|l| label.is_none_or(|lab| l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

fn kib_field(status: &str, key: &str) -> f64 {
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
}

/// Memory and CPU of `pid` (`self` for this process).
pub fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc/<pid>/status")?;
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ProcStats {
        peak_rss_mb: kib_field(&status, "VmHWM:") * 1024.0 / 1e6,
        rss_mb: kib_field(&status, "VmRSS:") * 1024.0 / 1e6,
        cpu_s: (ticks(11) + ticks(12)) / clock_ticks(),
    })
}

/// Host-wide CPU time from `/proc/stat`: (busy, total) in clock ticks, all cores.
pub fn host_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Busy share of all cores between two [`host_cpu`] readings, percent.
pub fn busy_pct(a: (u64, u64), b: (u64, u64)) -> f64 {
    let total = b.1.saturating_sub(a.1).max(1) as f64;
    b.0.saturating_sub(a.0) as f64 / total * 100.0
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

pub fn self_pid() -> u32 {
    std::process::id()
}

/// Ends one measured run: points at the controller's log when it failed, then stops the
/// daemon, the simulator and the database, and hands the run's result back.
pub async fn finish<T>(
    result: anyhow::Result<T>,
    daemon: Daemon,
    sim: &fly_sim::SimHandle,
    db: super::db::BenchDb,
) -> anyhow::Result<T> {
    if result.is_err() {
        eprintln!("bench: controller log: {}", daemon.log_path.display());
    }
    daemon.stop().await?;
    sim.shutdown().await;
    db.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums() {
        let text = "# TYPE x counter\nx_total{result=\"ok\"} 3\nx_total{result=\"error\"} 2\nx_total_other 9\ny 1\n";
        assert_eq!(metric_sum(text, "x_total", None), 5.0);
        assert_eq!(metric_sum(text, "x_total", Some("error")), 2.0);
        assert_eq!(metric_sum(text, "y", None), 1.0);
        assert_eq!(metric_sum(text, "z", None), 0.0);
    }

    #[test]
    fn own_process_is_readable() {
        let p = proc_stats(self_pid()).unwrap_or_default();
        assert!(p.peak_rss_mb > 0.0 && p.peak_rss_mb >= p.rss_mb * 0.99, "{p:?}");
    }
}
