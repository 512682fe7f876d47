//! Unit checks of the observability test's helpers: Grafana variable substitution, Grafana's
//! regex escaping and the PromQL metric-name scanner (see `observability.rs`).

use crate::support::dashboard_promql::{grafana_regex_escape, metric_names, substitute};

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
