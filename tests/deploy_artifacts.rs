#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Deployment and observability artifacts stay consistent with the daemon:
//! - every PromQL expression in the Grafana dashboard and in the alert rules only uses metrics
//!   the daemon really exports (`Metrics::new().encode()`), plus `up`;
//! - the dashboard is provisioning-safe (every panel and target on `${DS_PROMETHEUS}`);
//! - the Helm chart's copies of the dashboard and the alert rules equal the originals;
//! - `.ci/check-deploy.sh` (yamllint, promtool, helm lint/render, kubernetes-validate) passes.
//!   Without its tools the check is skipped locally, but fails when `CI` is set.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use fly_preview_controller::metrics::Metrics;
use serde_json::Value;

const DASHBOARD: &str = "deploy/grafana/fly-preview-controller.json";
const ALERTS: &str = "deploy/prometheus/alerts.yaml";
const ALERTS_TEST: &str = "deploy/prometheus/alerts_test.yaml";
const CHART: &str = "charts/fly-preview-controller";
const DS_UID: &str = "${DS_PROMETHEUS}";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Every series name the daemon exports: counters and gauges by name, histograms as
/// `_bucket`/`_sum`/`_count`, plus Prometheus' own `up`.
fn exported_series() -> BTreeSet<String> {
    let m = Metrics::new();
    // A label vector shows up in the exposition only once it has a child. Most are
    // pre-initialised by the daemon; touch the Fly API ones (their `action` values are open)
    // so every family is listed.
    m.fly_requests.with_label_values(&["probe", "2xx"]);
    m.fly_request_duration.with_label_values(&["probe"]);
    m.fly_throttled.with_label_values(&["probe"]);
    let text = m.encode();
    let mut names = BTreeSet::from(["up".to_owned()]);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            match kind {
                "histogram" | "summary" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            names.insert(name);
        }
    }
    assert!(names.contains("fly_preview_reconciles_total"), "unexpected exposition:\n{text}");
    assert!(names.contains("process_cpu_seconds_total"), "process metrics missing:\n{text}");
    names
}

// ---- a small PromQL scanner -----------------------------------------------------------------

/// PromQL functions and aggregations (plus Grafana's `label_values`); an identifier followed
/// by `(` must be one of these, so a misspelt function fails here instead of in Grafana.
const FUNCTIONS: &[&str] = &[
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
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "label_values",
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
/// Aggregation operators, which may take `by (...)` / `without (...)` before their argument.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a parenthesised label list.
const LABEL_LIST_KEYWORDS: &[&str] =
    &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];

/// Skips from an opening delimiter at `i` to just past its matching closer, stepping over
/// quoted strings.
fn skip_group(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => i = skip_string(b, i, q),
            c if c == open => {
                depth += 1;
                i += 1;
            }
            c if c == close => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    i
}

fn skip_string(b: &[u8], mut i: usize, quote: u8) -> usize {
    i += 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn next_word_is_grouping(b: &[u8], i: usize) -> bool {
    let end = (i..b.len()).find(|&j| !is_ident(b[j])).unwrap_or(b.len());
    matches!(&b[i..end], b"by" | b"without")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Metric names referenced by a PromQL expression (Grafana `$variables` allowed).
/// Errors name unknown functions.
fn promql_metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    if expr.contains("__name__") {
        return Err("selects metrics by __name__; name them directly".into());
    }
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(b, i, c),
            b'{' => i = skip_group(b, i, b'{', b'}'),
            b'[' => i = skip_group(b, i, b'[', b']'),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                i += 1;
                if i < b.len() && b[i] == b'{' {
                    i = skip_group(b, i, b'{', b'}');
                } else {
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                // number or duration: 0.95, 1e-9, 0x1f, 5m
                let hex = b[i..].starts_with(b"0x") || b[i..].starts_with(b"0X");
                while i < b.len() {
                    let d = b[i];
                    let exponent_sign =
                        !hex && (d == b'+' || d == b'-') && matches!(b[i - 1], b'e' | b'E');
                    if exponent_sign || d.is_ascii_alphanumeric() || d == b'.' || d == b'_' {
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let lower = word.to_ascii_lowercase();
                let next = skip_ws(b, i);
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if b.get(next) == Some(&b'(') {
                        i = skip_group(b, next, b'(', b')');
                    }
                } else if lower == "offset" {
                    i = next;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
                        i += 1;
                    }
                } else if KEYWORDS.contains(&lower.as_str()) {
                } else if AGGREGATIONS.contains(&word) && next_word_is_grouping(b, next) {
                    // `sum by (le) (...)`: the label list is skipped on the next round.
                } else if b.get(next) == Some(&b'(') {
                    if !FUNCTIONS.contains(&word) {
                        return Err(format!("unknown function `{word}`"));
                    }
                } else {
                    names.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    Ok(names)
}

/// `(context, metric)` pairs for names the daemon does not export.
fn unknown_metrics(context: &str, expr: &str, exported: &BTreeSet<String>) -> Vec<String> {
    match promql_metric_names(expr) {
        Err(e) => vec![format!("{context}: {e} in `{expr}`")],
        Ok(names) if names.is_empty() => vec![format!("{context}: no metric at all in `{expr}`")],
        Ok(names) => names
            .into_iter()
            .filter(|n| !exported.contains(n))
            .map(|n| {
                format!("{context}: metric `{n}` is not exported by the daemon (expr `{expr}`)")
            })
            .collect(),
    }
}

#[test]
fn promql_scanner_finds_metric_names() {
    let names = |e: &str| promql_metric_names(e).unwrap().into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum by (le, action) (rate(fly_preview_fly_request_duration_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))"#
        ),
        ["fly_preview_fly_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            "sum(rate(a_total{result=\"error\"}[5m])) / clamp_min(sum(rate(a_total[5m])), 1e-9) > 0.2 and on (job) b > 0"
        ),
        ["a_total", "b"]
    );
    assert_eq!(names("time() - max by (job) (last_sync offset 5m) > 600"), ["last_sync"]);
    assert_eq!(names("up{job=~\".*x.*\"} == 0\n  or\nabsent(up{job=~\".*x.*\"})"), ["up"]);
    assert_eq!(names("sum without (instance) (x) * on (job) group_left (version) y"), ["x", "y"]);
    assert!(promql_metric_names("sum(rat(x[5m]))").unwrap_err().contains("rat"));
    assert!(promql_metric_names("{__name__=~\"fly_.*\"}").is_err());
}

// ---- (a) dashboard --------------------------------------------------------------------------

fn all_panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().expect("dashboard has panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

#[test]
fn dashboard_targets_use_ds_prometheus_and_exported_metrics() {
    let dash: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard is valid JSON");
    let exported = exported_series();
    let mut problems = Vec::new();

    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    let ds_var =
        vars.iter().find(|v| v["name"] == "DS_PROMETHEUS").expect("DS_PROMETHEUS variable");
    assert_eq!(ds_var["type"], "datasource", "DS_PROMETHEUS must be a datasource variable");
    assert_eq!(ds_var["query"], "prometheus");
    for name in ["job", "instance"] {
        assert!(vars.iter().any(|v| v["name"] == name), "dashboard lacks the {name} variable");
    }
    for var in vars.iter().filter(|v| v["type"] == "query") {
        let ctx = format!("variable `{}`", var["name"].as_str().unwrap_or("?"));
        if var["datasource"]["uid"] != DS_UID {
            problems.push(format!("{ctx}: datasource is not {DS_UID}"));
        }
        let q =
            var["query"]["query"].as_str().or_else(|| var["query"].as_str()).unwrap_or_default();
        // label_values(<selector>, <label>): only the selector is PromQL.
        let selector = q
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map_or(q, |(sel, _label)| sel);
        problems.extend(unknown_metrics(&ctx, selector, &exported));
    }

    let mut exprs = 0;
    for panel in all_panels(&dash).into_iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or("<untitled>");
        if panel["datasource"]["uid"] != DS_UID || panel["datasource"]["type"] != "prometheus" {
            problems.push(format!(
                "panel `{title}`: datasource is {} (want uid {DS_UID})",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel `{title}`: no targets"));
        }
        for t in targets {
            if t["datasource"]["uid"] != DS_UID {
                problems.push(format!(
                    "panel `{title}` target {}: datasource uid is {} (want {DS_UID})",
                    t["refId"], t["datasource"]["uid"]
                ));
            }
            let expr = t["expr"].as_str().unwrap_or_default();
            exprs += 1;
            problems.extend(unknown_metrics(&format!("panel `{title}`"), expr, &exported));
        }
    }
    assert!(exprs >= 20, "only {exprs} queries in the dashboard");
    assert!(problems.is_empty(), "dashboard problems:\n{}", problems.join("\n"));
}

// ---- (b) alert rules ------------------------------------------------------------------------

/// `(alert name, expr)` for every rule of a Prometheus rules file. A line-based reader (the
/// crate has no YAML dependency) for the layout used in alerts.yaml: `- alert:` / `- record:`
/// items with `expr:` as a plain scalar or a `|` / `>` block scalar. The rule count is
/// cross-checked so an unrecognised layout fails instead of passing silently.
fn rule_exprs(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut current = String::from("<no rule>");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        if let Some(name) = t.strip_prefix("- alert:").or_else(|| t.strip_prefix("- record:")) {
            current = name.trim().to_owned();
        } else if let Some(value) = t.strip_prefix("expr:") {
            let value = value.trim();
            if value.starts_with('|') || value.starts_with('>') {
                let key_indent = indent(line);
                let mut body = Vec::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty() || indent(lines[i]) > key_indent)
                {
                    body.push(lines[i].trim());
                    i += 1;
                }
                out.push((current.clone(), body.join("\n").trim().to_owned()));
                continue;
            }
            let unquoted = value.trim_matches(|c| c == '\'' || c == '"');
            out.push((current.clone(), unquoted.to_owned()));
        }
        i += 1;
    }
    let rules = lines
        .iter()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("- alert:") || t.starts_with("- record:")
        })
        .count();
    assert_eq!(
        out.len(),
        rules,
        "found {} expr for {rules} rules; unsupported YAML layout?",
        out.len()
    );
    out
}

#[test]
fn alert_rules_use_exported_metrics() {
    let exported = exported_series();
    let rules = rule_exprs(&read(ALERTS));
    let names: BTreeSet<&str> = rules.iter().map(|(n, _)| n.as_str()).collect();
    for required in [
        "FlyPreviewControllerDown",
        "ReconcileErrorRatioHigh",
        "PreviewsStuckInitializing",
        "FlyApiThrottling",
        "QueueLagHigh",
        "NoSuccessfulSync",
    ] {
        assert!(names.contains(required), "{ALERTS} lacks alert {required}");
    }
    let problems: Vec<String> = rules
        .iter()
        .flat_map(|(alert, expr)| unknown_metrics(&format!("alert `{alert}`"), expr, &exported))
        .collect();
    assert!(problems.is_empty(), "alert rule problems:\n{}", problems.join("\n"));
}

#[test]
fn alert_unit_tests_feed_exported_series() {
    let exported = exported_series();
    let text = read(ALERTS_TEST);
    let mut problems = Vec::new();
    let mut series = 0;
    for line in text.lines() {
        let Some(value) = line.trim_start().strip_prefix("- series:") else { continue };
        series += 1;
        let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
        let name: String = value
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if !exported.contains(&name) {
            problems.push(format!(
                "{ALERTS_TEST}: input series `{value}` is not a metric the daemon exports"
            ));
        }
    }
    assert!(series > 0, "no input_series found in {ALERTS_TEST}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- (c) chart copies -----------------------------------------------------------------------

#[test]
fn chart_copies_are_identical_to_the_originals() {
    for (original, copy) in [
        (ALERTS, format!("{CHART}/files/alerts.yaml")),
        (DASHBOARD, format!("{CHART}/files/fly-preview-controller.json")),
    ] {
        assert!(
            read(original) == read(&copy),
            "{copy} differs from {original}; Helm cannot read files outside the chart, so refresh the copy: cp {original} {copy}"
        );
    }
}

// ---- (d) the full tool-based check ----------------------------------------------------------

/// Exit status of .ci/check-deploy.sh when one of its tools is missing.
const MISSING_TOOLS: i32 = 3;

fn run_script(script: &Path) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(script)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn check_deploy_script_passes() {
    let script = root().join(".ci/check-deploy.sh");
    let (code, output) = run_script(&script);
    match code {
        Some(0) => println!("{output}"),
        Some(MISSING_TOOLS) if !ci() => {
            eprintln!(
                "SKIP check_deploy_script_passes: tools missing (run .ci/install-tools.sh):\n{output}"
            );
        }
        Some(MISSING_TOOLS) => panic!(
            "CI is set but .ci/check-deploy.sh is missing tools (install them with .ci/install-tools.sh):\n{output}"
        ),
        other => panic!(".ci/check-deploy.sh failed ({other:?}):\n{output}"),
    }
}

#[test]
fn exposition_passes_promtool_check_metrics() {
    let Some(promtool) = which("promtool") else {
        assert!(!ci(), "CI is set but promtool is missing (run .ci/install-tools.sh)");
        eprintln!(
            "SKIP exposition_passes_promtool_check_metrics: promtool not installed (run .ci/install-tools.sh)"
        );
        return;
    };
    let m = Metrics::new();
    m.fly_requests.with_label_values(&["get_machine", "2xx"]).inc();
    m.fly_request_duration.with_label_values(&["get_machine"]).observe(0.1);
    m.fly_throttled.with_label_values(&["get_machine"]).inc();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(m.encode().as_bytes())
            .expect("write exposition");
    }
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
}
