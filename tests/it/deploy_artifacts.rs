//! Deployment and observability artifacts stay consistent with the daemon:
//! - every PromQL expression in the Grafana dashboard and in the alert rules only uses metrics
//!   the daemon really exports (`Metrics::new().encode()`), plus `up`;
//! - the dashboard is provisioning-safe (every panel and target on `${DS_PROMETHEUS}`);
//! - the Helm chart's copies of the dashboard and the alert rules equal the originals;
//! - `.ci/check-deploy.sh` (yamllint, promtool, helm lint/render, kubernetes-validate) passes.
//!   Without its tools the check is skipped locally, but fails when `CI` is set.
//!
//! The PromQL scanner's own checks and the alert rule checks are in `tests/it/deploy_promql.rs`.

use std::path::Path;
use std::process::Command;

use crate::support::deploy_support::*;
use crate::support::require_tool;
use fly_preview_controller::ops::metrics::Metrics;
use serde_json::Value;

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
#[ignore = "needs promtool, yamllint, helm-python-sdk, kubernetes-validate: bash .ci/install-tools.sh"]
fn check_deploy_script_passes() {
    let script = root().join(".ci/check-deploy.sh");
    let (code, output) = run_script(&script);
    match code {
        Some(0) => println!("{output}"),
        Some(MISSING_TOOLS) => {
            panic!("tools are missing (install them with bash .ci/install-tools.sh):\n{output}")
        }
        other => panic!(".ci/check-deploy.sh failed ({other:?}):\n{output}"),
    }
}

#[test]
#[ignore = "needs promtool: bash .ci/install-tools.sh"]
fn exposition_passes_promtool_check_metrics() {
    let promtool = require_tool("promtool");
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
