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

use std::time::{Duration, Instant};

use crate::support::dashboard_promql::{
    dashboard, exported_names, grafana_regex_escape, root, substitute, targets,
};
use crate::support::harness::{Harness, is_running};
use crate::support::prom_server::{JOB, Prometheus, QUERY_DEADLINE, label_values, panel_problems};
use crate::support::*;
use fly_preview_controller::ops::admin;
use fly_sim::SimConfig;
use serde_json::Value;
use sqlx::PgPool;

const ALERTS: &str = "deploy/prometheus/alerts.yaml";
const REPO: &str = "https://github.com/acme/site";
/// What Grafana's `$__rate_interval` comes to for a 15 s scrape interval (its default):
/// max($__interval + scrape interval, 4 × scrape interval) = 1m.
const RATE_INTERVAL: &str = "1m";

// ---- the test -------------------------------------------------------------------------------

#[sqlx::test]
#[ignore = "needs prometheus: bash .ci/install-tools.sh"]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus(pool: PgPool) {
    let bin = require_tool("prometheus");
    let started = Instant::now();
    let dash = dashboard();
    let targets = targets(&dash);
    assert!(targets.len() >= 20, "only {} dashboard targets found", targets.len());

    // A replica and its admin server. Note: the test timings (drift check every 500 ms) make
    // the client-side rate limiter delay `list_org_machines`, so `fly_preview_fly_throttled_total`
    // has series here; with production timings it has none until something is throttled.
    // Production drift timing: nothing gets throttled, so every throttling series must exist
    // from the start (pre-initialised), not only once a request waited.
    let mut settings = fly_preview_controller::preview::settings::Settings::for_tests("personal");
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
    let bad = h.wait_row(invalid, "error", |r| r.status == Status::Error).await;
    assert!(bad.error_message.as_deref().unwrap_or("").contains("not allowed"), "{bad:#?}");
    h.wait_row(torn, "stopped", |r| r.status == Status::Stopped).await;
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
