#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Grafana dashboard against a real Prometheus scraping a real replica.
//!
//! A controller replica (real Postgres + the in-process Fly simulator) serves its admin
//! endpoint; a real `prometheus` server scrapes `/metrics` every second under job
//! `fly-preview-controller` and loads `deploy/prometheus/alerts.yaml`. While the replica
//! converges a few rows (running, a permanent error, a teardown), the test evaluates the
//! dashboard's variable queries and **every** panel target through Prometheus' HTTP API, with
//! the Grafana variables substituted the way Grafana does, and fails listing each target that
//! errors, returns nothing, or references a metric the daemon does not export. It also checks
//! that the alert rules load and evaluate cleanly.
//!
//! Without a `prometheus` binary the test is skipped locally and fails when `CI` is set
//! (install it with `.ci/install-tools.sh`).

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::harness::{Harness, is_running};
use common::*;
use fly_preview_controller::admin;
use fly_preview_controller::sim::SimConfig;
use serde_json::Value;
use sqlx::PgPool;

const DASHBOARD: &str = "deploy/grafana/fly-preview-controller.json";
const ALERTS: &str = "deploy/prometheus/alerts.yaml";
const JOB: &str = "fly-preview-controller";
const REPO: &str = "https://github.com/acme/site";
/// What Grafana's `$__rate_interval` comes to for a 15 s scrape interval (its default):
/// max($__interval + scrape interval, 4 × scrape interval) = 1m.
const RATE_INTERVAL: &str = "1m";
/// Bounds the whole wait for queries to return data (a healthy run needs a few seconds).
const QUERY_DEADLINE: Duration = Duration::from_secs(45);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn which(tool: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|dir| dir.join(tool)).find(|p| p.is_file()));
    on_path.or_else(|| Some(Path::new("/usr/bin").join(tool)).filter(|p| p.is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---- a Prometheus server ------------------------------------------------------------------

/// A `prometheus` child with its own config and TSDB in a temp dir; killed and cleaned up on
/// drop (also when the test panics).
struct Prometheus {
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
    async fn start(bin: &Path, target: SocketAddr, rules: &Path) -> Self {
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

    fn log(&self) -> String {
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
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
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

    async fn query(&self, expr: &str) -> Result<Value, String> {
        self.api("/api/v1/query", &[("query", expr)]).await
    }

    /// The value of a single-sample instant query, if there is exactly one sample.
    async fn scalar(&self, expr: &str) -> Option<f64> {
        let data = self.query(expr).await.ok()?;
        let result = data["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    async fn wait_for(&self, what: &str, expr: &str, want: impl Fn(f64) -> bool) {
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

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

// ---- the dashboard ------------------------------------------------------------------------

struct Target {
    panel: String,
    ref_id: String,
    expr: String,
}

fn dashboard() -> Value {
    let path = root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("dashboard is valid JSON")
}

/// Every panel target with an `expr`, including panels nested in (collapsed) rows.
fn targets(dash: &Value) -> Vec<Target> {
    fn walk(panels: &Value, out: &mut Vec<Target>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("<untitled>");
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(Target {
                    panel: format!("#{} {title}", p["id"]),
                    ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Replaces `$name` / `${name}` / `[[name]]`-free Grafana variables; unknown ones stay.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                // `${name:format}`: the format does not matter for these variables
                Some(end) => (braced[..end].split(':').next().unwrap_or(""), end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match vars.iter().find(|(n, _)| *n == name) {
            Some((_, value)) if consumed > 0 => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Grafana's escaping of a multi-value variable's value for a Prometheus regex matcher
/// (`prometheusSpecialRegexEscape`): regex metacharacters get a backslash, doubled because
/// the value lands inside a double-quoted PromQL string.
fn grafana_regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c == '\\' {
            out.push_str("\\\\\\\\");
        } else if "$^*{}[]'+?.()|".contains(c) {
            out.push_str("\\\\");
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

// ---- metric names referenced by PromQL ----------------------------------------------------

const FUNCTIONS_AND_AGGREGATIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg",
    "avg_over_time",
    "bottomk",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count",
    "count_over_time",
    "count_values",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "delta",
    "deriv",
    "exp",
    "floor",
    "group",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "minute",
    "month",
    "predict_linear",
    "present_over_time",
    "quantile",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev",
    "stddev_over_time",
    "stdvar",
    "stdvar_over_time",
    "sum",
    "sum_over_time",
    "time",
    "timestamp",
    "topk",
    "vector",
    "year",
];
const LABEL_LIST_KEYWORDS: &[&str] =
    &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];

fn skip_quoted(b: &[u8], mut i: usize) -> usize {
    let q = b[i];
    i += 1;
    while i < b.len() && b[i] != q {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

fn skip_group(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_quoted(b, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Metric names a (substituted) PromQL expression selects; an identifier followed by `(`
/// that is no known function is reported as an error.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let b = expr.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = skip_quoted(b, i),
            b'{' => i = skip_group(b, i, b'{', b'}'),
            b'[' => i = skip_group(b, i, b'[', b']'),
            c if c.is_ascii_digit() || c == b'.' => {
                // numbers and durations (1e-9, 0.95, 5m)
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let mut next = i;
                while next < b.len() && b[next].is_ascii_whitespace() {
                    next += 1;
                }
                let lower = word.to_ascii_lowercase();
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if b.get(next) == Some(&b'(') {
                        i = skip_group(b, next, b'(', b')');
                    }
                } else if KEYWORDS.contains(&lower.as_str())
                    || FUNCTIONS_AND_AGGREGATIONS.contains(&word)
                {
                } else if b.get(next) == Some(&b'(') {
                    return Err(format!("unknown function `{word}`"));
                } else {
                    names.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

/// Series names in a text exposition (histograms as their `_bucket`/`_sum`/`_count`).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect()
        })
        .collect()
}

// ---- evaluating -----------------------------------------------------------------------------

/// What an instant query returned: series count and how many of them are NaN.
enum Outcome {
    Data { series: usize, nan: usize },
    Empty(String),
    Failed(String),
}

async fn evaluate(prom: &Prometheus, expr: &str) -> Outcome {
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
async fn label_values(prom: &Prometheus, query: &str) -> Result<Vec<String>, String> {
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
async fn panel_problems(
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

// ---- the test -------------------------------------------------------------------------------

#[sqlx::test]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus(pool: PgPool) {
    let Some(bin) = which("prometheus") else {
        assert!(!ci(), "CI is set but the prometheus binary is missing (run .ci/install-tools.sh)");
        eprintln!(
            "SKIP every_dashboard_panel_returns_data_from_a_real_prometheus: prometheus not installed (run .ci/install-tools.sh)"
        );
        return;
    };
    let started = Instant::now();
    let dash = dashboard();
    let targets = targets(&dash);
    assert!(targets.len() >= 20, "only {} dashboard targets found", targets.len());

    // A replica and its admin server. Note: the test timings (drift check every 500 ms) make
    // the client-side rate limiter delay `list_org_machines`, so `fly_preview_fly_throttled_total`
    // has series here; with production timings it has none until something is throttled.
    // Production drift timing: nothing gets throttled, so every throttling series must exist
    // from the start (pre-initialised), not only once a request waited.
    let mut settings = fly_preview_controller::settings::Settings::for_tests("personal");
    settings.drift_interval = std::time::Duration::from_secs(15);
    let h = Harness::with_settings(pool.clone(), SimConfig::default(), settings).await;
    let replica = h.start("observability");
    let (admin_addr, admin_task) = admin::serve(
        "127.0.0.1:0".parse().unwrap(),
        replica.health.clone(),
        replica.metrics.clone(),
    )
    .await
    .unwrap();
    let instance = admin_addr.to_string();

    // Prometheus scrapes it before any row exists, so counters are seen rising from zero.
    let prom = Prometheus::start(&bin, admin_addr, &root().join(ALERTS)).await;
    prom.wait_for("the target to be up", &format!("up{{job=\"{JOB}\"}}"), |v| v == 1.0).await;
    // (Prometheus applies scrape targets on its first 5 s reload tick.)
    println!("prometheus scraping after {:?}", started.elapsed());

    // Rows: three that run, one invalid (permanent error), one torn down.
    let mut ok = Vec::new();
    for i in 0..3 {
        ok.push(insert_row(&pool, USER_A, &format!("obs-{i}"), Some(REPO), "main").await);
    }
    let invalid =
        insert_row(&pool, USER_A, "obs-bad", Some("https://gitlab.com/acme/site"), "main").await;
    let torn = insert_row(&pool, USER_B, "obs-down", Some(REPO), "main").await;
    for id in ok.iter().chain([&torn]) {
        h.wait_row(*id, "running", is_running).await;
    }
    sqlx::query("UPDATE public.fly_preview_apps SET desired_state = 'stopped' WHERE id = $1")
        .bind(torn)
        .execute(&pool)
        .await
        .unwrap();
    let bad = h.wait_row(invalid, "error", |r| r.status == "error").await;
    assert!(bad.error_message.as_deref().unwrap_or("").contains("not allowed"), "{bad:#?}");
    h.wait_row(torn, "stopped", |r| r.status == "stopped").await;
    println!("rows converged after {:?}", started.elapsed());

    // Prometheus sees the same state as the database.
    for (status, n) in [("running", 3.0), ("error", 1.0), ("stopped", 1.0), ("pending", 0.0)] {
        let expr = format!("fly_preview_previews{{job=\"{JOB}\", status=\"{status}\"}}");
        prom.wait_for(&format!("{n} {status} previews"), &expr, |v| v == n).await;
    }
    prom.wait_for(
        "time_to_running observations",
        &format!("fly_preview_time_to_running_seconds_count{{job=\"{JOB}\"}}"),
        |v| v >= 4.0,
    )
    .await;

    println!("prometheus agrees after {:?}", started.elapsed());

    // The dashboard's variables resolve to this target.
    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    let var_query = |name: &str| -> String {
        let v = vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no ${name}"));
        v["query"]["query"].as_str().or_else(|| v["query"].as_str()).unwrap_or("").to_owned()
    };
    let jobs = label_values(&prom, &var_query("job")).await.unwrap();
    assert!(jobs.contains(&JOB.to_owned()), "$job offers {jobs:?}, not {JOB}");
    let instance_query = substitute(&var_query("instance"), &[("job", JOB)]);
    let instances = label_values(&prom, &instance_query).await.unwrap();
    assert!(instances.contains(&instance), "$instance offers {instances:?}, not {instance}");

    // Every panel target, with one instance selected and with "All".
    let common_vars = |instance: String| {
        vec![
            ("job", JOB.to_owned()),
            ("instance", instance),
            ("__rate_interval", RATE_INTERVAL.to_owned()),
            ("__interval", "15s".to_owned()),
            ("__interval_ms", "15000".to_owned()),
            ("__range", "5m".to_owned()),
            ("__range_s", "300".to_owned()),
            ("__range_ms", "300000".to_owned()),
        ]
    };
    let assignments = [
        ("instance selected", common_vars(grafana_regex_escape(&instance))),
        ("instance All", common_vars(".*".to_owned())),
    ];
    let deadline = Instant::now() + QUERY_DEADLINE;
    let mut report = String::new();
    let mut rounds = 0;
    let problems = loop {
        rounds += 1;
        let exported = exported_names(&replica.metrics.encode())
            .into_iter()
            .chain(["up".to_owned()])
            .collect();
        let problems = panel_problems(&prom, &targets, &assignments, &exported, &mut report).await;
        if problems.is_empty() || Instant::now() > deadline {
            break problems;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!(
        "dashboard targets after {rounds} round(s), {:?} into the test:\n{report}",
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "{} dashboard target(s) without data:\n{}\n\nall targets:\n{report}",
        problems.len(),
        problems.join("\n")
    );

    // The alert rules load and evaluate without errors.
    let alert_count = std::fs::read_to_string(root().join(ALERTS))
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    let deadline = Instant::now() + QUERY_DEADLINE;
    loop {
        let data = prom.api("/api/v1/rules", &[]).await.unwrap();
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let unhealthy: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: health {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if rules.len() == alert_count && unhealthy.is_empty() {
            let firing: Vec<&Value> = rules.iter().filter(|r| r["state"] == "firing").collect();
            assert!(firing.is_empty(), "alerts firing on a healthy replica: {firing:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert rules: {} loaded (want {alert_count}), unhealthy: {unhealthy:#?}\nprometheus log:\n{}",
            rules.len(),
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    drop(prom);
    admin_task.abort();
    replica.stop().await;
    println!("observability test took {:?}", started.elapsed());
}

#[test]
fn substitution_and_metric_names() {
    let vars = [("job", "j"), ("instance", "a\\\\.b"), ("__rate_interval", "1m")];
    assert_eq!(
        substitute("rate(x{job=~\"$job\", instance=~\"${instance}\"}[$__rate_interval])", &vars),
        "rate(x{job=~\"j\", instance=~\"a\\\\.b\"}[1m])"
    );
    assert_eq!(substitute("$unknown + ${job:regex}", &vars), "$unknown + j");
    assert_eq!(grafana_regex_escape("127.0.0.1:80"), "127\\\\.0\\\\.0\\\\.1:80");
    let names = |e: &str| metric_names(e).unwrap().into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            "histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=\"y\"}[1h]))) / clamp_min(b, 1e-9)"
        ),
        ["a_bucket", "b"]
    );
    assert_eq!(names("time() - max by (job) (c offset 5m) > 600 and on (job) d"), ["c", "d"]);
    assert!(metric_names("sum(rat(x[5m]))").is_err());
}
