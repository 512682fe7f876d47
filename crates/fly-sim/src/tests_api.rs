//! Over HTTP (paused time): leases, IP assignments, list filters, the org listing, the
//! behind-the-back controls and shutdown. See `crates/fly-sim/tests/simulator.rs` for why
//! paused time is safe.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::advance;

use super::{SimConfig, SimHandle, Simulator};

struct Api {
    sim: SimHandle,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        Self::start_with(SimConfig { rate_limits: false, ..SimConfig::default() }).await
    }

    async fn start_with(cfg: SimConfig) -> Self {
        let sim = Simulator::start(cfg).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().pool_idle_timeout(None).build().unwrap();
        Api { sim, http }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        nonce: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}/v1{path}", self.sim.base_url());
        let mut req = self.http.request(method, url).header("authorization", "FlyV1 fm2_test");
        if let Some(nonce) = nonce {
            req = req.header("fly-machine-lease-nonce", nonce);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() },
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body), None).await
    }

    async fn app_with_machine(&self, app: &str, preview: &str) -> String {
        self.post("/apps", json!({"name": app, "org_slug": "personal"})).await;
        let config = json!({"image": "runner", "metadata": {"preview-id": preview},
                            "env": {"REPO_URL": "https://github.com/a/b", "REPO_BRANCH": "main"}});
        let (status, m) =
            self.post(&format!("/apps/{app}/machines"), json!({"config": config})).await;
        assert_eq!(status, 200, "{m}");
        m["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn leases_guard_mutations() {
    let api = Api::start().await;
    let id = api.app_with_machine("l", "1").await;
    let lease_path = format!("/apps/l/machines/{id}/lease");
    assert_eq!(api.get(&lease_path).await, (404, json!({"error": "lease not found"})));
    let (status, lease) = api.call(Method::POST, &format!("{lease_path}?ttl=10"), None, None).await;
    assert_eq!((status, lease["status"].as_str()), (201, Some("success")));
    let nonce = lease["data"]["nonce"].as_str().unwrap().to_owned();
    assert!(lease["data"]["expires_at"].is_i64());
    let (status, conflict) = api.post(&lease_path, json!({"ttl": 10})).await;
    assert_eq!(status, 409);
    assert!(conflict["error"].as_str().unwrap().contains("lease currently held by"), "{conflict}");
    let stop = format!("/apps/l/machines/{id}/stop");
    assert_eq!(api.post(&stop, json!({})).await.0, 409, "mutation without the nonce");
    let refreshed = api.call(Method::POST, &lease_path, None, Some(&nonce)).await;
    assert_eq!(refreshed.1["data"]["nonce"], nonce.as_str(), "refresh keeps the nonce");
    advance(Duration::from_secs(1)).await;
    assert_eq!(api.call(Method::POST, &stop, Some(json!({})), Some(&nonce)).await.0, 200);
    let released = api.call(Method::DELETE, &lease_path, None, Some(&nonce)).await;
    assert_eq!(released, (200, json!({"status": "success", "data": {"ok": true}})));
    let (_, lease) = api.post(&lease_path, json!({"ttl": 5})).await;
    assert!(lease["data"]["nonce"].is_string());
    advance(Duration::from_secs(5)).await;
    assert_eq!(api.get(&lease_path).await.0, 404, "expired");
}

#[tokio::test(start_paused = true)]
async fn ip_assignments() {
    let api = Api::start().await;
    api.post("/apps", json!({"name": "ips", "org_slug": "personal"})).await;
    let (status, v4) = api.post("/apps/ips/ip_assignments", json!({"type": "shared_v4"})).await;
    assert_eq!(status, 200);
    assert_eq!((v4["shared"].as_bool(), v4["region"].as_str()), (Some(true), Some("global")));
    assert!(v4["ip"].as_str().unwrap().parse::<std::net::Ipv4Addr>().is_ok(), "{v4}");
    let (_, v6) = api.post("/apps/ips/ip_assignments", json!({"type": "v6"})).await;
    let v6_ip = v6["ip"].as_str().unwrap().to_owned();
    assert!(v6_ip.starts_with("2a09:") && v6_ip.parse::<std::net::Ipv6Addr>().is_ok());
    assert_eq!(api.post("/apps/ips/ip_assignments", json!({"type": "v5"})).await.0, 400);
    assert_eq!(api.get("/apps/ips/ip_assignments").await.1["ips"].as_array().unwrap().len(), 2);
    let delete = format!("/apps/ips/ip_assignments/{v6_ip}");
    assert_eq!(api.call(Method::DELETE, &delete, None, None).await, (204, Value::Null));
    assert_eq!(api.call(Method::DELETE, &delete, None, None).await.0, 404);
}

#[tokio::test(start_paused = true)]
async fn list_filters_and_org_listing_pages() {
    let api = Api::start().await;
    let a = api.app_with_machine("a", "1").await;
    advance(Duration::from_millis(10)).await;
    let b = api.app_with_machine("b", "2").await;
    let (_, list) = api.get("/apps/a/machines?metadata.preview-id=1&summary=true").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(list[0].get("config").is_none(), "summary drops config");
    assert_eq!(api.get("/apps/a/machines?metadata.preview-id=2").await.1, json!([]));
    assert_eq!(api.get("/apps/a/machines?state=started").await.1, json!([]));
    assert_eq!(api.call(Method::DELETE, &format!("/apps/a/machines/{a}"), None, None).await.0, 200);
    advance(Duration::from_secs(3)).await;
    assert_eq!(api.get("/apps/a/machines").await.1, json!([]));
    assert_eq!(api.get("/apps/a/machines?include_deleted=true").await.1[0]["state"], "destroyed");

    let (_, page1) = api.get("/orgs/personal/machines?limit=1&include_deleted=true").await;
    assert_eq!(page1["machines"][0]["id"], a.as_str(), "a was destroyed (10 ms) before b started");
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = api
        .get(&format!("/orgs/personal/machines?limit=1&include_deleted=true&cursor={cursor}"))
        .await;
    assert_eq!(page2["machines"][0]["id"], b.as_str());
    assert_eq!(page2["machines"][0]["app_name"], "b");
    assert!(page2.get("next_cursor").is_none());
    let after = page1["last_updated_at"].as_str().unwrap().to_owned();
    let (_, newer) = api
        .get(&format!("/orgs/personal/machines?include_deleted=true&updated_after={after}"))
        .await;
    assert_eq!(newer["machines"].as_array().map(Vec::len), Some(1));
    assert_eq!(api.get("/orgs/acme/machines").await, (403, json!({"error": "unauthorized"})));
}

#[tokio::test(start_paused = true)]
async fn behind_the_back_controls() {
    let api = Api::start().await;
    let id = api.app_with_machine("bb", "1").await;
    advance(Duration::from_secs(1)).await;
    assert!(api.sim.idle_stop("bb", &id, true));
    assert_eq!(api.sim.machines("bb")[0]["state"], "suspended");
    assert_eq!(api.post(&format!("/apps/bb/machines/{id}/start"), json!({})).await.0, 200);
    advance(Duration::from_secs(1)).await;
    assert!(api.sim.crash_machine("bb", &id, 1));
    let m = &api.sim.machines("bb")[0];
    assert_eq!(
        (m["state"].as_str(), m["events"][0]["type"].as_str()),
        (Some("stopped"), Some("exit"))
    );
    assert!(!api.sim.crash_machine("bb", "nope", 1));
    assert!(api.sim.destroy_machine_behind_back("bb", &id));
    assert!(api.sim.machines("bb").is_empty());

    api.sim.create_app_direct("by-hand", true);
    let (status, list) = api.get("/apps/by-hand/machines").await;
    assert_eq!((status, list[0]["state"].as_str()), (200, Some("started")));
    assert!(list[0]["config"]["metadata"].get("managed-by").is_none());
    assert!(api.sim.delete_app_behind_back("by-hand"));
    assert_eq!(api.get("/apps/by-hand").await.0, 404);
    let stats = api.sim.stats();
    assert_eq!(
        (stats.apps_created_total, stats.apps_alive, stats.machines_created_total),
        (1, 1, 1)
    );
    assert_eq!(stats.apps_with_multiple_machines, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_pending_waits() {
    let api = Api::start().await;
    let id = api.app_with_machine("s", "1").await;
    let path = format!("/apps/s/machines/{id}/wait?state=destroyed&timeout=60");
    let waiter = api.get(&path);
    let stopper = async {
        advance(Duration::from_secs(1)).await;
        api.sim.shutdown().await;
    };
    let ((status, _), ()) = tokio::join!(waiter, stopper);
    assert_eq!(status, 503);
    let request_log = api.sim.request_log();
    assert_eq!(request_log.last().map(|l| (l.action, l.status)), Some(("wait_machine", 503)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_header_is_opt_in() {
    let api = Api::start_with(SimConfig { retry_after: Some(2), ..SimConfig::default() }).await;
    api.post("/apps", json!({"name": "ra", "org_slug": "personal"})).await;
    let url = format!("{}/v1/apps/ra/ip_assignments", api.sim.base_url());
    let mut last = None;
    for _ in 0..4 {
        last = Some(api.http.get(&url).bearer_auth("t").send().await.unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.status().as_u16(), 429);
    assert_eq!(last.headers()["retry-after"], "2");
}

const SYNC: &[&str] = &["node", "/usr/local/lib/runner/entrypoint.mjs", "sync", "--timeout", "5s"];

#[tokio::test(start_paused = true)]
async fn exec_runs_the_runner_sync_and_answers_like_fly() {
    let api = Api::start().await;
    let id = api.app_with_machine("x", "1").await;
    let path = format!("/apps/x/machines/{id}/exec");
    // Not started yet: exec never wakes or waits for a machine.
    let (status, body) = api.post(&path, json!({"command": SYNC, "timeout": 10})).await;
    assert_eq!(status, 412, "{body}");
    advance(Duration::from_secs(2)).await;
    api.sim.push_revision("x", "abc1234def");
    let (status, body) = api.post(&path, json!({"command": SYNC, "timeout": 10})).await;
    assert_eq!((status, body["exit_code"].as_i64()), (200, Some(0)), "{body}");
    let line: Value = serde_json::from_str(body["stdout"].as_str().unwrap().trim()).unwrap();
    assert_eq!((&line["ok"], &line["revision"]), (&json!(true), &json!("abc1234def")));
    assert_eq!(
        (&line["dev"]["phase"], &line["dev"]["revision"]),
        (&json!("serving"), &json!("abc1234def"))
    );
    assert_eq!(api.sim.served_revision("x", &id), "abc1234def");
    // The runner's status: exit 0 while serving, 1 once the dev server crash-loops.
    let status_cmd = json!({"command": ["node", "/r/entrypoint.mjs", "status"]});
    let (_, body) = api.post(&path, status_cmd.clone()).await;
    assert_eq!(body["exit_code"].as_i64(), Some(0), "{body}");
    assert!(api.sim.crash_loop_dev_server("x", &id));
    let (_, body) = api.post(&path, status_cmd).await;
    let st: Value = serde_json::from_str(body["stdout"].as_str().unwrap().trim()).unwrap();
    assert_eq!((body["exit_code"].as_i64(), &st["phase"]), (Some(1), &json!("crashloop")), "{st}");
    assert!(st["lines"].as_array().is_some_and(|l| !l.is_empty()), "{st}");
    // A failing sync is still HTTP 200, with the runner's exit code and JSON line.
    api.sim.set_sync_fault("x", Some(crate::SyncFault::FetchFailed));
    let (status, body) = api.post(&path, json!({"command": SYNC, "timeout": 10})).await;
    assert_eq!((status, body["exit_code"].as_i64()), (200, Some(1)), "{body}");
    assert!(body["stdout"].as_str().unwrap().contains("fetch_failed"));
    // Hanging: the runner's own --timeout (5 s) answers before the exec timeout (10 s)...
    api.sim.set_sync_fault("x", Some(crate::SyncFault::Hang));
    let (status, body) = api.post(&path, json!({"command": SYNC, "timeout": 10})).await;
    assert_eq!((status, body["exit_code"].as_i64()), (200, Some(1)), "{body}");
    // ...else the exec deadline is a 408.
    let (status, body) = api.post(&path, json!({"command": SYNC, "timeout": 2})).await;
    assert_eq!(status, 408, "{body}");
    let (status, body) = api.post(&path, json!({"cmd": "echo hi"})).await;
    assert_eq!((status, body["stdout"].as_str()), (200, Some("hi\n")));
    let (status, _) = api.post(&path, json!({"timeout": 1})).await;
    assert_eq!(status, 400);
    api.post(&format!("/apps/x/machines/{id}/suspend"), json!({})).await;
    advance(Duration::from_secs(2)).await;
    let (status, body) = api.post(&path, json!({"command": SYNC})).await;
    assert_eq!(status, 412, "{body}");
}

#[tokio::test(start_paused = true)]
async fn app_secrets_are_versioned_never_returned_and_read_at_boot() {
    let api = Api::start().await;
    api.post("/apps", json!({"name": "s", "org_slug": "personal"})).await;
    let set = json!({"values": {"GIT_TOKEN": "ghp_canary", "API_KEY": "k1"}});
    let (status, r) = api.post("/apps/s/secrets", set).await;
    assert_eq!((status, r["version"].as_u64()), (200, Some(1)), "{r}");
    let (_, listed) = api.get("/apps/s/secrets").await;
    assert_eq!(listed["secrets"].as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains("ghp_canary") && !r.to_string().contains("k1\""));
    // a machine asking for a newer version than exists is refused; the current one boots with them
    let config = json!({"image": "runner", "env": {"REPO_URL": "https://github.com/a/b"}});
    let too_new = json!({"config": config, "min_secrets_version": 2});
    assert_eq!(api.post("/apps/s/machines", too_new).await.0, 400);
    let (_, m) =
        api.post("/apps/s/machines", json!({"config": config, "min_secrets_version": 1})).await;
    let id = m["id"].as_str().unwrap().to_owned();
    assert!(!m.to_string().contains("ghp_canary"), "never in the machine: {m}");
    assert_eq!(
        api.sim.machine_secrets("s", &id).get("GIT_TOKEN").map(String::as_str),
        Some("ghp_canary")
    );
    // rotate one and unset the other: one version; the running machine keeps what it booted with
    let change = json!({"values": {"GIT_TOKEN": "ghp_rotated", "API_KEY": null}});
    assert_eq!(api.post("/apps/s/secrets", change).await.1["version"], json!(2));
    assert_eq!(api.sim.machine_secrets("s", &id).len(), 2);
    advance(Duration::from_secs(5)).await;
    let update = json!({"config": config, "min_secrets_version": 2});
    assert_eq!(api.post(&format!("/apps/s/machines/{id}"), update).await.0, 200);
    let booted = api.sim.machine_secrets("s", &id);
    assert_eq!(
        booted.into_iter().collect::<Vec<_>>(),
        [("GIT_TOKEN".into(), "ghp_rotated".into())]
    );
    // one by one
    let (status, one) = api.post("/apps/s/secrets/NPM_TOKEN", json!({"value": "npm_x"})).await;
    assert_eq!((status, one["version"].as_u64(), one.get("value")), (201, Some(3), None));
    assert_eq!(api.get("/apps/s/secrets/NPM_TOKEN").await.1["name"], json!("NPM_TOKEN"));
    let deleted = api.call(Method::DELETE, "/apps/s/secrets/NPM_TOKEN", None, None).await;
    assert_eq!(deleted, (200, json!({"version": 4})));
    assert_eq!(api.get("/apps/s/secrets/NPM_TOKEN").await.0, 404);
    assert_eq!(api.post("/apps/s/secrets", json!({"values": {"1BAD": "x"}})).await.0, 400);
}
