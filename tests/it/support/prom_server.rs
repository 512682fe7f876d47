//! A real `prometheus` server for the observability tests, and evaluation of dashboard
//! targets through its HTTP API.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::dashboard_promql::{Target, metric_names, substitute};

pub const JOB: &str = "fly-preview-controller";
/// Bounds the whole wait for queries to return data (a healthy run needs a few seconds).
pub const QUERY_DEADLINE: Duration = Duration::from_secs(45);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---- a Prometheus server ------------------------------------------------------------------

/// A `prometheus` child with its own config and TSDB in a temp dir; killed and cleaned up on
/// drop (also when the test panics).
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
    client: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with `rules` as its rule file, and
    /// waits until it is ready. A port taken between picking and binding is retried.
    pub async fn start(bin: &Path, target: SocketAddr, rules: &Path) -> Self {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{rules}'\n\
             scrape_configs:\n  - job_name: '{JOB}'\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    \
             metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n",
            rules = rules.display(),
        );
        let mut failures = String::new();
        for _attempt in 0..3 {
            let dir = std::env::temp_dir().join(format!("fpc-prometheus-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("prometheus.yml"), &config).unwrap();
            let log = File::create(dir.join("prometheus.log")).unwrap();
            let port = free_port();
            let child = Command::new(bin)
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=1h")
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let base = format!("http://127.0.0.1:{port}");
            let mut p = Prometheus { child, dir, base, client: http() };
            match p.wait_ready().await {
                Ok(()) => return p,
                Err(why) => {
                    let _ = writeln!(failures, "{why}\n{}", p.log());
                }
            }
        }
        panic!("prometheus did not start:\n{failures}");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("prometheus exited with {status}"));
            }
            let ready = self.client.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("prometheus not ready after 30s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET an API path; the `data` member of a successful answer.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.base), params).unwrap();
        let resp = self.client.get(url).send().await.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| format!("HTTP {status}, not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "HTTP {status}: {} {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ));
        }
        Ok(body["data"].clone())
    }

    pub async fn query(&self, expr: &str) -> Result<Value, String> {
        self.api("/api/v1/query", &[("query", expr)]).await
    }

    /// The value of a single-sample instant query, if there is exactly one sample.
    pub async fn scalar(&self, expr: &str) -> Option<f64> {
        let data = self.query(expr).await.ok()?;
        let result = data["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    pub async fn wait_for(&self, what: &str, expr: &str, want: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + QUERY_DEADLINE;
        loop {
            let got = self.scalar(expr).await;
            if got.is_some_and(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: `{expr}` is {got:?}\nprometheus log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

// ---- evaluating -----------------------------------------------------------------------------

/// What an instant query returned: series count and how many of them are NaN.
pub enum Outcome {
    Data { series: usize, nan: usize },
    Empty(String),
    Failed(String),
}

pub async fn evaluate(prom: &Prometheus, expr: &str) -> Outcome {
    let data = match prom.query(expr).await {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(e),
    };
    let kind = data["resultType"].as_str().unwrap_or("?").to_owned();
    let is_nan = |v: &Value| v[1].as_str().is_some_and(|s| s.eq_ignore_ascii_case("nan"));
    match kind.as_str() {
        "scalar" | "string" => {
            Outcome::Data { series: 1, nan: usize::from(is_nan(&data["result"])) }
        }
        "vector" | "matrix" => {
            let result = data["result"].as_array().cloned().unwrap_or_default();
            let with_data: Vec<&Value> = result
                .iter()
                .filter(|s| {
                    s.get("value").is_some()
                        || s["values"].as_array().is_some_and(|v| !v.is_empty())
                })
                .collect();
            if with_data.is_empty() {
                return Outcome::Empty(kind);
            }
            let nan = with_data.iter().filter(|s| is_nan(&s["value"])).count();
            Outcome::Data { series: with_data.len(), nan }
        }
        other => Outcome::Failed(format!("unexpected result type {other}")),
    }
}

/// `label_values(<selector>, <label>)` through the label values API.
pub async fn label_values(prom: &Prometheus, query: &str) -> Result<Vec<String>, String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("not a label_values() query: {query}"))?;
    let (selector, label) =
        inner.rsplit_once(',').ok_or_else(|| format!("label_values without label: {query}"))?;
    let data = prom
        .api(&format!("/api/v1/label/{}/values", label.trim()), &[("match[]", selector.trim())])
        .await?;
    Ok(data
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Evaluates every target under each variable assignment (concurrently); one line per
/// problem, and a line per target in `report`.
pub async fn panel_problems(
    prom: &Prometheus,
    targets: &[Target],
    assignments: &[(&str, Vec<(&str, String)>)],
    exported: &BTreeSet<String>,
    report: &mut String,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut queries = Vec::new();
    for (label, vars) in assignments {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for t in targets {
            let ctx = format!("panel `{}` target {} [{label}]", t.panel, t.ref_id);
            if t.expr.trim().is_empty() {
                problems.push(format!("{ctx}: no expr"));
                continue;
            }
            let expr = substitute(&t.expr, &vars);
            if expr.contains('$') {
                problems.push(format!("{ctx}: unsubstituted variable in `{expr}`"));
                continue;
            }
            match metric_names(&expr) {
                Err(e) => problems.push(format!("{ctx}: {e} in `{expr}`")),
                Ok(names) => {
                    for n in names.iter().filter(|n| !exported.contains(*n)) {
                        problems.push(format!(
                            "{ctx}: metric `{n}` is not exported by the daemon (expr `{expr}`)"
                        ));
                    }
                }
            }
            queries.push((ctx, expr));
        }
    }
    let outcomes =
        futures::future::join_all(queries.iter().map(|(_, expr)| evaluate(prom, expr))).await;
    report.clear();
    for ((ctx, expr), outcome) in queries.iter().zip(outcomes) {
        match outcome {
            Outcome::Data { series, nan } => {
                let note = match nan {
                    0 => "",
                    n if n == series => " (all NaN)",
                    _ => " (some NaN)",
                };
                let _ = writeln!(report, "  ok    {ctx}: {series} series{note}");
            }
            Outcome::Empty(kind) => {
                let _ = writeln!(report, "  EMPTY {ctx}");
                problems.push(format!("{ctx}: empty {kind} for `{expr}`"));
            }
            Outcome::Failed(e) => {
                let _ = writeln!(report, "  FAIL  {ctx}: {e}");
                problems.push(format!("{ctx}: query failed: {e} (expr `{expr}`)"));
            }
        }
    }
    problems
}
