//! The Fly Machines API simulator over real HTTP, under paused tokio time.
//!
//! Paused time auto-advances only when the runtime is idle *and* a timer is pending. The
//! simulator arms no timers outside `/wait` and injected latency, and the client below disables
//! reqwest's idle-pool timer, so while an ordinary request is in flight there is nothing to jump
//! to: lifecycle assertions depend only on explicit `tokio::time::advance` calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fly_sim::{Action, Fault, FaultRule, SimConfig, SimHandle, Simulator, Trigger};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::time::{Instant, advance};

struct Api {
    sim: SimHandle,
    http: reqwest::Client,
    auth: Option<String>,
}

struct Resp {
    status: u16,
    body: Value,
    headers: HeaderMap,
}

fn quiet() -> SimConfig {
    SimConfig { rate_limits: false, ..SimConfig::default() }
}

const REPO: &str = "https://github.com/acme/site";

fn machine_config(repo: &str, branch: &str) -> Value {
    json!({"config": {
        "image": "registry.fly.io/runner:v1",
        "env": {"REPO_URL": repo, "REPO_BRANCH": branch, "PORT": "3000"},
        "services": [{"internal_port": 3000, "protocol": "tcp",
                      "checks": [{"type": "http", "path": "/", "interval": "5s"}]}],
        "metadata": {"managed-by": "fly-preview-controller", "preview-id": branch},
    }})
}

impl Api {
    async fn start(cfg: SimConfig) -> Self {
        let sim = Simulator::start(cfg).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().pool_idle_timeout(None).build().unwrap();
        Api { sim, http, auth: Some("Bearer test-token".into()) }
    }

    async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<Resp> {
        let url = format!("{}/v1{path}", self.sim.base_url());
        let mut req = self.http.request(method, url);
        if let Some(auth) = &self.auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let bytes = resp.bytes().await?;
        let body =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Ok(Resp { status, body, headers })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.try_call(method, path, body).await.unwrap()
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    async fn app(&self, name: &str) {
        let r = self.post("/apps?wait=true", json!({"name": name, "org_slug": "personal"})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    async fn machine(&self, app: &str, body: Value) -> String {
        let r = self.post(&format!("/apps/{app}/machines"), body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    async fn machine_json(&self, app: &str, id: &str) -> Value {
        let r = self.get(&format!("/apps/{app}/machines/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

fn error(r: &Resp) -> &str {
    r.body["error"].as_str().unwrap_or_else(|| panic!("no error in {}", r.body))
}

#[tokio::test(start_paused = true)]
async fn machine_lifecycle_created_starting_started_passing() {
    let api = Api::start(quiet()).await;
    api.app("roseram-5aacab32").await;
    let r = api.post("/apps/roseram-5aacab32/machines", machine_config(REPO, "main")).await;
    assert_eq!(r.status, 200);
    let m = &r.body;
    assert_eq!(m["state"], "created");
    let id = m["id"].as_str().unwrap();
    assert!(id.len() == 14 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(m["instance_id"].as_str().unwrap().len(), 26);
    assert_eq!(m["events"][0]["type"], "launch");
    assert_eq!(m["config"]["env"]["REPO_BRANCH"], "main", "config is stored as given");

    let mut seen = vec![m["updated_at"].clone()];
    for (step, state, check) in [
        (25, "created", "critical"),
        (50, "starting", "critical"),
        (100, "started", "critical"),
        (100, "started", "passing"),
    ] {
        advance(Duration::from_millis(step)).await;
        let m = api.machine_json("roseram-5aacab32", id).await;
        assert_eq!(m["state"], state);
        assert_eq!(m["checks"][0]["name"], "servicecheck-00-http-3000");
        assert_eq!(m["checks"][0]["status"], check, "{m}");
        if check == "critical" {
            assert_eq!(m["checks"][0]["output"], "connection refused");
        }
        if seen.last() != Some(&m["updated_at"]) {
            seen.push(m["updated_at"].clone());
        }
    }
    assert_eq!(seen.len(), 3, "updated_at changes on created→starting→started: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn wait_answers_200_408_and_400_with_fly_texts() {
    let api = Api::start(quiet()).await;
    api.app("w").await;
    let id = api.machine("w", machine_config(REPO, "main")).await;
    let t0 = Instant::now();
    let r = api.get(&format!("/apps/w/machines/{id}/wait?state=started&timeout=5")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["state"], "started");
    assert_eq!(r.body["version"].as_str().unwrap().len(), 26);
    assert!(r.body["event_id"].is_string());
    assert_eq!(t0.elapsed(), Duration::from_millis(150), "returns as soon as started");

    let t0 = Instant::now();
    let r = api.get(&format!("/apps/w/machines/{id}/wait?state=stopped&timeout=2")).await;
    assert_eq!(r.status, 408);
    assert_eq!(
        error(&r),
        "deadline_exceeded: machine failed to reach desired state, stopped, currently started"
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(2));

    for timeout in ["0", "61", "abc", "-5"] {
        let r = api.get(&format!("/apps/w/machines/{id}/wait?timeout={timeout}")).await;
        assert_eq!(r.status, 400, "timeout={timeout}");
        assert_eq!(
            error(&r),
            "invalid_argument: invalid WaitMachineRequest.Timeout: value must be inside range [1s, 1m0s]"
        );
    }
    let r = api.get(&format!("/apps/w/machines/{id}/wait?state=stopped&state=started")).await;
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("started")));
    let r = api.get(&format!("/apps/w/machines/{id}/wait?state=suspended,settled")).await;
    assert_eq!((r.status, r.body["state"].as_str()), (200, Some("started")));
    let r = api.get("/apps/w/machines/00000000000000/wait").await;
    assert_eq!((r.status, error(&r)), (404, "machine not found"));
}

#[tokio::test(start_paused = true)]
async fn wait_wakes_on_actions_and_destroy_rules_apply() {
    let api = Api::start(quiet()).await;
    api.app("d").await;
    let id = api.machine("d", machine_config(REPO, "main")).await;
    advance(Duration::from_secs(1)).await;
    let r = api.delete(&format!("/apps/d/machines/{id}")).await;
    assert_eq!(r.status, 412);
    assert_eq!(error(&r), "failed_precondition: unable to destroy machine, not currently stopped");

    let stopper = async {
        advance(Duration::from_millis(300)).await;
        api.post(&format!("/apps/d/machines/{id}/stop"), json!({})).await
    };
    let wait_path = format!("/apps/d/machines/{id}/wait?state=stopped&timeout=10");
    let waiter = api.get(&wait_path);
    let (stop, wait) = tokio::join!(stopper, waiter);
    assert_eq!((stop.status, &stop.body), (200, &json!({"ok": true})));
    assert_eq!((wait.status, wait.body["state"].as_str()), (200, Some("stopped")));
    let r = api.delete(&format!("/apps/d/machines/{id}")).await;
    assert_eq!((r.status, &r.body), (200, &json!({"ok": true})), "stopped: no force needed");

    for flag in ["force=true", "kill=true"] {
        let id = api.machine("d", machine_config(REPO, "main")).await;
        advance(Duration::from_secs(1)).await;
        let r = api.delete(&format!("/apps/d/machines/{id}?{flag}")).await;
        assert_eq!(r.status, 200, "{flag}: {}", r.body);
        let m = api.machine_json("d", &id).await;
        assert_eq!(m["state"], "destroyed", "readable briefly after destroy");
        advance(Duration::from_secs(2)).await;
        let r = api.get(&format!("/apps/d/machines/{id}")).await;
        assert_eq!((r.status, error(&r)), (404, "machine not found"));
    }
}

#[tokio::test(start_paused = true)]
async fn app_delete_cascades_and_names_are_global() {
    let cfg = SimConfig { foreign_app_names: vec!["someone-elses".into()], ..quiet() };
    let api = Api::start(cfg).await;
    api.app("gone").await;
    let r = api.get("/apps/gone").await;
    assert_eq!(r.body["organization"]["slug"], "personal");
    assert_eq!(r.body["status"], "pending");
    api.machine("gone", machine_config(REPO, "main")).await;
    assert_eq!(api.sim.stats().machines_alive, 1);
    let r = api.delete("/apps/gone").await;
    assert_eq!((r.status, &r.body), (202, &Value::Null));
    let r = api.get("/apps/gone").await;
    assert_eq!((r.status, error(&r)), (404, "app not found"));
    assert_eq!(api.get("/apps/gone/machines").await.status, 404);
    assert!(api.sim.machines("gone").is_empty());
    assert_eq!(api.sim.stats().machines_alive, 0);

    api.app("taken").await;
    for name in ["taken", "someone-elses"] {
        let r = api.post("/apps", json!({"app_name": name, "org_slug": "personal"})).await;
        assert_eq!(r.status, 422);
        assert_eq!(
            r.body,
            json!({"error": "Validation failed: Name has already been taken",
                                  "status": "name_taken"})
        );
    }
    let r = api.get("/apps/someone-elses").await;
    assert_eq!((r.status, error(&r)), (403, "unauthorized"));
    let r = api.post("/apps", json!({"name": "Bad_Name", "org_slug": "personal"})).await;
    assert_eq!(
        error(&r),
        "Validation failed: Name under 63 chars using numbers, lowercase letters and dashes"
    );
    let r = api.post("/apps", json!({"name": "elsewhere", "org_slug": "acme"})).await;
    assert_eq!((r.status, error(&r)), (403, "unauthorized"));
    let r = api.get("/apps?org_slug=personal").await;
    assert_eq!(r.body["total_apps"], 1);
    assert_eq!(api.sim.stats().duplicate_apps, 0);
}

#[tokio::test(start_paused = true)]
async fn new_apps_are_invisible_for_the_configured_window() {
    let cfg = SimConfig { app_visibility_delay: Duration::from_millis(200), ..quiet() };
    let api = Api::start(cfg).await;
    api.app("slow").await;
    assert_eq!(api.get("/apps/slow").await.status, 404);
    assert_eq!(api.get("/apps/slow/machines").await.status, 404);
    let r = api.post("/apps", json!({"name": "slow", "org_slug": "personal"})).await;
    assert_eq!(r.body["status"], "name_taken", "the name is taken at once");
    advance(Duration::from_millis(200)).await;
    assert_eq!(api.get("/apps/slow").await.status, 200);
    assert_eq!(api.get("/apps/slow/machines").await.body, json!([]));
}

#[tokio::test(start_paused = true)]
async fn published_rate_limits_answer_429() {
    let api = Api::start(SimConfig::default()).await;
    api.app("rl").await;
    let id = api.machine("rl", machine_config(REPO, "main")).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api.get("/apps/rl/machines").await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = api.get("/apps/rl/machines").await;
    assert_eq!(r.body, json!({"error": "rate limit exceeded"}));
    assert!(r.headers.get("retry-after").is_none());
    advance(Duration::from_secs(1)).await;
    assert_eq!(api.get("/apps/rl/machines").await.status, 200, "1 req/s refill");
    let mut gets = Vec::new();
    for _ in 0..11 {
        gets.push(api.get(&format!("/apps/rl/machines/{id}")).await.status);
    }
    assert_eq!(gets[..10], [200; 10]);
    assert_eq!(gets[10], 429);
    assert_eq!(api.sim.stats().rate_limited_total, 3);
}

#[tokio::test(start_paused = true)]
async fn faults_status_latency_drop_and_first_n() {
    let api = Api::start(quiet()).await;
    api.app("f").await;
    api.sim.add_fault("get_app:503:first=2".parse().unwrap());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(api.get("/apps/f").await.status);
    }
    assert_eq!(statuses, [503, 503, 200]);

    api.sim.add_fault(FaultRule {
        action: Action::ListMachines,
        fault: Fault::Latency(Duration::from_millis(200)),
        when: Trigger::Always,
    });
    let t0 = Instant::now();
    assert_eq!(api.get("/apps/f/machines").await.status, 200);
    assert_eq!(t0.elapsed(), Duration::from_millis(200));

    api.sim.add_fault("create_app:drop:always".parse().unwrap());
    let dropped =
        api.try_call(Method::POST, "/apps", Some(json!({"name": "x", "org_slug": "personal"})));
    assert!(dropped.await.is_err(), "connection closed without a response");
    assert_eq!(api.sim.request_log().last().map(|l| (l.status, l.action)), Some((0, "create_app")));
    assert!(!api.sim.app_names().contains(&"x".to_owned()));

    api.sim.clear_faults();
    api.sim.add_fault("any:capacity:first=1".parse().unwrap());
    let r = api.get("/apps/f").await;
    assert_eq!((r.status, r.body["status"].as_str()), (412, Some("insufficient_capacity")));
    assert_eq!(api.sim.stats().faults_injected_total, 5);
}

#[tokio::test(start_paused = true)]
async fn timeout_after_commit_leaves_the_machine_behind() {
    let cfg = SimConfig {
        faults: vec!["create_machine:408-after-commit:first=1".parse().unwrap()],
        ..quiet()
    };
    let api = Api::start(cfg).await;
    api.app("amb").await;
    let r = api.post("/apps/amb/machines", machine_config(REPO, "main")).await;
    assert_eq!(r.status, 408);
    assert!(error(&r).starts_with("deadline_exceeded"), "{}", r.body);
    let list = api.get("/apps/amb/machines?metadata.preview-id=main").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "the create was committed");
    assert_eq!(api.sim.stats().machines_created_total, 1);
}

async fn probability_run(seed: u64) -> Vec<u16> {
    let cfg = SimConfig { seed, faults: vec!["get_app:503:p=0.5".parse().unwrap()], ..quiet() };
    let api = Api::start(cfg).await;
    api.app("p").await;
    let mut out = Vec::new();
    for _ in 0..32 {
        out.push(api.get("/apps/p").await.status);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn probability_faults_replay_with_the_seed() {
    let (a, b) = (probability_run(42).await, probability_run(42).await);
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
    assert_ne!(a, probability_run(43).await);
}

#[tokio::test(start_paused = true)]
async fn auth_forms_and_request_ids_on_every_response() {
    let mut api = Api::start(SimConfig { token: Some("secret".into()), ..quiet() }).await;
    let mut ids = Vec::new();
    for auth in [None, Some("Bearer wrong"), Some("secret")] {
        api.auth = auth.map(str::to_owned);
        let r = api.get("/apps?org_slug=personal").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body, json!({"error": "Authenticate: token validation error"}));
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("application/json"));
        ids.push(r.headers["fly-request-id"].to_str().unwrap().to_owned());
    }
    for auth in ["Bearer secret", "FlyV1 secret", "Bearer FlyV1 secret"] {
        api.auth = Some(auth.into());
        let r = api.get("/apps?org_slug=personal").await;
        assert_eq!(r.status, 200, "{auth}");
        ids.push(r.headers["fly-request-id"].to_str().unwrap().to_owned());
    }
    for r in [
        api.post("/apps", json!({"name": "ids", "org_slug": "personal"})).await,
        api.get("/apps/nope").await,
        api.call(Method::PUT, "/apps/ids", None).await,
        api.delete("/apps/ids").await,
        api.get("/nothing-here").await,
    ] {
        ids.push(r.headers["fly-request-id"].to_str().unwrap().to_owned());
    }
    for id in &ids {
        assert!(id.ends_with("-sim") && id.len() == 30, "{id}");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 11, "unique");
}
