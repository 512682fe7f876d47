//! The PromQL scanner of `tests/it/support/deploy_support.rs`, and the Prometheus alert rules (and their
//! unit-test inputs) only using metrics the daemon exports. The dashboard, chart copies and
//! tool-based checks are in `tests/it/deploy_artifacts.rs`.

use std::collections::BTreeSet;

use crate::support::deploy_support::*;

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
