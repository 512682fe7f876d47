//! Shared by the `deploy_*` test modules: artifact paths, the series the daemon exports, and a
//! small PromQL scanner that finds the metric names an expression references.

use std::collections::BTreeSet;
use std::path::PathBuf;

use fly_preview_controller::ops::metrics::Metrics;

pub const DASHBOARD: &str = "deploy/grafana/fly-preview-controller.json";
pub const ALERTS: &str = "deploy/prometheus/alerts.yaml";
pub const ALERTS_TEST: &str = "deploy/prometheus/alerts_test.yaml";
pub const CHART: &str = "charts/fly-preview-controller";
pub const DS_UID: &str = "${DS_PROMETHEUS}";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every series name the daemon exports: counters and gauges by name, histograms as
/// `_bucket`/`_sum`/`_count`, plus Prometheus' own `up`.
pub fn exported_series() -> BTreeSet<String> {
    let m = Metrics::new();
    // A label vector shows up in the exposition only once it has a child. Most are
    // pre-initialised by the daemon; touch the Fly API ones (their `action` values are open)
    // so every family is listed.
    m.fly_requests.with_label_values(&["probe", "2xx"]);
    m.fly_request_duration.with_label_values(&["probe"]);
    m.fly_throttled.with_label_values(&["probe"]);
    m.fleet.machines.with_label_values(&["started", "shared-cpu-1x-2048mb"]);
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
pub fn promql_metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
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
pub fn unknown_metrics(context: &str, expr: &str, exported: &BTreeSet<String>) -> Vec<String> {
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
