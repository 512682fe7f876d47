//! The Grafana dashboard's targets, Grafana's variable substitution and a small PromQL
//! scanner for metric names; shared by the `observability*` test modules.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

pub const DASHBOARD: &str = "deploy/grafana/fly-preview-controller.json";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---- the dashboard ------------------------------------------------------------------------

pub struct Target {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

pub fn dashboard() -> Value {
    let path = root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("dashboard is valid JSON")
}

/// Every panel target with an `expr`, including panels nested in (collapsed) rows.
pub fn targets(dash: &Value) -> Vec<Target> {
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
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
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
pub fn grafana_regex_escape(value: &str) -> String {
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

/// Metric names a (substituted) PromQL expression selects; an identifier followed by `(`
/// that is no known function is an error. One scanner serves the dashboard and alert tests:
/// it lives in `deploy_support`.
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    crate::support::deploy_support::promql_metric_names(expr)
}

/// Series names in a text exposition (histograms as their `_bucket`/`_sum`/`_count`).
pub fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect()
        })
        .collect()
}
