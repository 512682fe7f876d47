#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Request-shape and error-classification tests for `FlyClient` against a scripted axum mock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fly_preview_controller::fly::{
    CreateMachineRequest, FlyClient, FlyClientConfig, FlyError, IpType, MachineConfig, Secret,
    WaitOutcome,
};
use fly_preview_controller::machine_config::{self, PreviewSpec, RunnerSettings};
use fly_preview_controller::metrics::Metrics;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const TOKEN: &str = "fm2_lkjhgfdsa_secret_token_0123456789";

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    let body = match body {
        Value::Null => String::new(),
        Value::String(raw) => raw, // a raw (possibly non-JSON) body
        v => v.to_string(),
    };
    Reply { status, body, headers: Vec::new(), delay: Duration::ZERO }
}

fn err(status: u16, msg: &str) -> Reply {
    reply(status, json!({ "error": msg }))
}

impl Reply {
    fn header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.to_owned()));
        self
    }
    fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Default)]
struct MockState {
    queue: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

struct Mock {
    url: String,
    state: Arc<MockState>,
}

impl Mock {
    async fn start(replies: impl IntoIterator<Item = Reply>) -> Mock {
        let state = Arc::new(MockState {
            queue: Mutex::new(replies.into_iter().collect()),
            ..Default::default()
        });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock { url, state }
    }
    fn fallback(&self, r: Reply) {
        *self.state.fallback.lock().unwrap() = Some(r);
    }
    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
    fn last(&self) -> Seen {
        self.seen().pop().unwrap()
    }
}

async fn handle(
    State(st): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = {
        let mut seen = st.seen.lock().unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.push(Seen {
            method,
            path: uri.path().into(),
            query: uri.query().unwrap_or("").into(),
            headers,
            body,
        });
        seen.len()
    };
    let next = st.queue.lock().unwrap().pop_front();
    let r = next
        .or_else(|| st.fallback.lock().unwrap().clone())
        .unwrap_or_else(|| reply(200, json!({})));
    tokio::time::sleep(r.delay).await;
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    let h = resp.headers_mut();
    h.insert("fly-request-id", format!("01JNRQ9VVKJ7HZFMJWJB3M3R{n:02}-yyz").parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in r.headers {
        h.insert(k, v.parse().unwrap());
    }
    resp
}

fn client_with(
    url: &str,
    token: &str,
    rate_limit: bool,
    timeout: Duration,
) -> (FlyClient, Metrics) {
    let metrics = Metrics::new();
    let cfg = FlyClientConfig {
        base_url: url.into(),
        token: Secret::new(token),
        request_timeout: timeout,
        rate_limit,
    };
    (FlyClient::new(cfg, Some(metrics.clone())).unwrap(), metrics)
}

fn client(m: &Mock) -> FlyClient {
    client_with(&m.url, TOKEN, false, Duration::from_secs(5)).0
}

fn machine_json(id: &str, state: &str) -> Value {
    json!({"id": id, "name": "aged-thunder-7371", "state": state, "region": "ams",
           "instance_id": "01HEPA330HZ37A78TK080NAK1M", "config": {"image": "img", "metadata": {"k": "v"}},
           "events": [{"type": "launch", "status": "created", "source": "user", "timestamp": 1700000000000i64}],
           "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:01Z"})
}

fn create_req() -> CreateMachineRequest {
    let spec = PreviewSpec {
        preview_id: uuid::Uuid::nil(),
        generation: 1,
        repo_url: "https://github.com/a/b",
        branch: "main",
        launch_marker: "01HMARK",
    };
    CreateMachineRequest {
        region: Some("ams".into()),
        config: machine_config::build(&RunnerSettings::default(), &spec),
        ..Default::default()
    }
}

fn counter(m: &Metrics, action: &str, class: &str) -> u64 {
    m.fly_requests.with_label_values(&[action, class]).get()
}

// ---------------------------------------------------------------- auth & secrecy

#[tokio::test]
async fn auth_header_forms() {
    let cases = [
        ("fm2_abc", "FlyV1 fm2_abc"),
        ("fm1r_abc", "FlyV1 fm1r_abc"),
        ("fm1a_abc", "FlyV1 fm1a_abc"),
        ("FlyV1 fm2_xyz", "FlyV1 fm2_xyz"),
        ("plain-org-token", "Bearer plain-org-token"),
    ];
    for (token, header) in cases {
        let m = Mock::start([reply(200, json!({"name": "a"}))]).await;
        let (c, _) = client_with(&m.url, token, false, Duration::from_secs(5));
        c.get_app("a").await.unwrap();
        assert_eq!(m.last().headers["authorization"], header);
    }
}

#[tokio::test]
async fn token_never_in_debug_or_errors() {
    let m = Mock::start([]).await;
    m.fallback(err(400, &format!("bad header: FlyV1 {TOKEN} / {TOKEN}")).header("x-echo", TOKEN));
    let (c, _) = client_with(&m.url, TOKEN, true, Duration::from_secs(5));
    let e = c.get_app("a").await.unwrap_err();
    for text in [format!("{e}"), format!("{e:?}"), format!("{c:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains("lkjhgfdsa"), "{text}");
    }
    let cfg = FlyClientConfig { token: Secret::new(TOKEN), ..Default::default() };
    assert!(!format!("{cfg:?}").contains("lkjhgfdsa"));
    let body = json!({"message": format!("token {TOKEN} rejected"), "error": TOKEN});
    m.fallback(reply(401, body));
    let e = c.get_app("a").await.unwrap_err();
    assert!(matches!(e, FlyError::Unauthorized(_)));
    assert!(!format!("{e} {e:?}").contains("lkjhgfdsa"), "{e:?}");
}

// ---------------------------------------------------------------- apps

#[tokio::test]
async fn create_app_request_shape_and_response() {
    let app = json!({"id": "z4k69dxd8r31p5mx", "name": "roseram-5aacab32", "status": "pending",
                     "organization": {"slug": "personal", "name": "Me"}, "created_at": 1700000000000i64});
    let m = Mock::start([reply(201, app), reply(201, Value::Null)]).await;
    let c = client(&m);
    let got = c.create_app("roseram-5aacab32", "personal").await.unwrap();
    assert_eq!(got.id.as_deref(), Some("z4k69dxd8r31p5mx"));
    assert_eq!(got.organization.unwrap().slug.as_deref(), Some("personal"));
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/apps"));
    assert_eq!(s.body, json!({"name": "roseram-5aacab32", "org_slug": "personal"}));
    assert_eq!(s.headers["content-type"], "application/json");
    // A 2xx without a body is fine.
    assert_eq!(c.create_app("other", "personal").await.unwrap().name, "other");
}

#[tokio::test]
async fn create_app_name_taken_forms() {
    let m = Mock::start([
        reply(422, json!({"error": "Validation failed: Name has already been taken", "status": "name_taken"})),
        reply(422, json!({"error": "Validation failed: Name has already been taken"})),
        reply(422, json!({"error": "Validation failed", "status": "name_taken"})),
        err(409, "duplicate key value violates unique constraint"),
        err(422, "Validation failed: Name under 63 chars using numbers, lowercase letters and dashes"),
        err(503, "unavailable"),
    ])
    .await;
    let c = client(&m);
    for _ in 0..4 {
        let e = c.create_app("a", "personal").await.unwrap_err();
        assert!(matches!(e, FlyError::NameTaken(_)), "{e:?}");
        assert_eq!(e.kind(), "name_taken");
        assert!(e.request_id().unwrap().ends_with("-yyz"));
    }
    let e = c.create_app("A!", "personal").await.unwrap_err();
    assert!(matches!(e, FlyError::Permanent(_)), "{e:?}");
    let e = c.create_app("a", "personal").await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "{e:?}");
    assert_eq!(m.count(), 6, "create_app is never retried");
}

#[tokio::test]
async fn get_app_errors_carry_status_message_and_request_id() {
    let m = Mock::start([
        err(404, "app not found"),
        err(403, "unauthorized"),
        err(401, "Authenticate: token validation error"),
    ])
    .await;
    let c = client(&m);
    let e = c.get_app("missing").await.unwrap_err();
    assert!(matches!(e, FlyError::NotFound(_)));
    assert_eq!((e.status(), e.message()), (Some(404), "app not found"));
    assert_eq!(e.request_id(), Some("01JNRQ9VVKJ7HZFMJWJB3M3R01-yyz"));
    assert_eq!(m.last().path, "/v1/apps/missing");
    assert!(matches!(c.get_app("theirs").await.unwrap_err(), FlyError::Forbidden(_)));
    assert!(matches!(c.get_app("x").await.unwrap_err(), FlyError::Unauthorized(_)));
    assert_eq!(m.count(), 3, "4xx are not retried");
}

#[tokio::test]
async fn delete_app_list_apps_and_ips() {
    let m = Mock::start([
        reply(202, Value::Null),
        err(404, "app not found"),
        reply(200, json!({"total_apps": 2, "apps": [{"name": "a", "status": "deployed"}, {"name": "b", "mystery": 1}]})),
        reply(200, json!({"ips": [{"ip": "1.2.3.4", "shared": true, "region": "global"}, {"ip": "2a09:8280::1", "shared": false}]})),
        reply(200, json!({"ip": "2a09:8280::2", "region": "global", "shared": false, "service_name": "", "created_at": "x"})),
        err(503, "try again"),
    ])
    .await;
    let c = client(&m);
    c.delete_app("a").await.unwrap();
    assert_eq!((m.last().method, m.last().path), (Method::DELETE, "/v1/apps/a".into()));
    assert!(matches!(c.delete_app("a").await.unwrap_err(), FlyError::NotFound(_)));
    let apps = c.list_apps("personal").await.unwrap();
    assert_eq!(apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        (m.last().path.as_str(), m.last().query.as_str()),
        ("/v1/apps", "org_slug=personal")
    );
    let ips = c.list_ips("a").await.unwrap();
    assert!(ips[0].is_shared_v4() && ips[1].is_v6());
    assert_eq!(m.last().path, "/v1/apps/a/ip_assignments");
    let ip = c.assign_ip("a", IpType::V6).await.unwrap();
    assert!(ip.is_v6());
    assert_eq!((m.last().method, m.last().body), (Method::POST, json!({"type": "v6"})));
    let e = c.assign_ip("a", IpType::SharedV4).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)));
    assert_eq!(m.last().body, json!({"type": "shared_v4"}));
    assert_eq!(m.count(), 6, "assign_ip is not retried");
}

// ---------------------------------------------------------------- machines

#[tokio::test]
async fn list_machines_with_metadata_filters_and_lenient_decoding() {
    let odd = json!({"id": "m2", "state": "hibernating", "private_ip": "fdaa::2", "host_status": "ok",
        "config": {"image": "i", "services": [{"protocol": "tcp", "internal_port": 3000, "autostop": true,
                   "ports": [{"port": 443, "handlers": ["tls", "http"], "tls_options": {}}]}],
                   "init": {"cmd": ["x"]}, "metadata": {"preview-id": "p"}},
        "events": null, "checks": null, "nonce": "abc", "image_ref": {"tag": "latest"}});
    let m = Mock::start([
        reply(200, json!([machine_json("m1", "started"), odd])),
        reply(200, json!([])),
    ])
    .await;
    let c = client(&m);
    let ms = c
        .list_machines("app", &[("managed-by", "fly-preview-controller"), ("preview-id", "p 1")])
        .await
        .unwrap();
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::GET, "/v1/apps/app/machines"));
    assert_eq!(s.query, "metadata.managed-by=fly-preview-controller&metadata.preview-id=p+1");
    assert_eq!(ms[1].state, "hibernating");
    let cfg = ms[1].config.as_ref().unwrap();
    assert_eq!(cfg.services[0].autostop, Some(json!(true)));
    assert_eq!(cfg.services[0].autostop_mode(), Some("stop"));
    assert!(cfg.extra.contains_key("init"));
    assert_eq!(ms[0].events[0].kind, "launch");
    assert!(c.list_machines("app", &[]).await.unwrap().is_empty());
    assert_eq!(m.last().query, "");
}

#[tokio::test]
async fn create_machine_request_shape() {
    let m = Mock::start([reply(200, machine_json("1857156b526dd8", "created"))]).await;
    let c = client(&m);
    let got = c.create_machine("app", &create_req()).await.unwrap();
    assert_eq!((got.id.as_str(), got.state.as_str()), ("1857156b526dd8", "created"));
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/apps/app/machines"));
    assert_eq!(s.body["region"], "ams");
    assert_eq!(s.body["config"]["services"][0]["autostop"], "suspend");
    assert_eq!(s.body["config"]["metadata"]["launch-marker"], "01HMARK");
    assert!(s.body.get("name").is_none() && s.body.get("skip_launch").is_none());
}

#[tokio::test]
async fn create_machine_failures_are_ambiguous_and_never_retried() {
    let m = Mock::start([
        err(503, "service unavailable"),
        err(408, "deadline_exceeded: context deadline exceeded"),
        err(500, "boom"),
        err(429, "slow down").header("retry-after", "1"),
        err(422, "invalid_argument: image required"),
        reply(200, Value::Null),
        reply(200, json!("not a machine")),
    ])
    .await;
    let c = client(&m);
    for want in
        ["ambiguous_create", "ambiguous_create", "ambiguous_create", "rate_limited", "permanent"]
    {
        let e = c.create_machine("app", &create_req()).await.unwrap_err();
        assert_eq!(e.kind(), want, "{e:?}");
        assert!(e.request_id().is_some());
    }
    for _ in 0..2 {
        let e = c.create_machine("app", &create_req()).await.unwrap_err();
        assert!(matches!(e, FlyError::AmbiguousCreate(_)), "2xx without a usable machine: {e:?}");
    }
    assert_eq!(m.count(), 7, "one request per call");
}

#[tokio::test]
async fn create_machine_connection_dropped_is_ambiguous() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            acc.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 64 * 1024];
            let _ = sock.read(&mut buf).await;
            drop(sock); // request received, no response
        }
    });
    let (c, metrics) = client_with(&url, TOKEN, false, Duration::from_secs(5));
    let e = c.create_machine("app", &create_req()).await.unwrap_err();
    assert!(matches!(e, FlyError::AmbiguousCreate(_)), "{e:?}");
    assert_eq!(e.status(), None);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(counter(&metrics, "create_machine", "transport"), 1);
    // Idempotent reads against the same server are retried: 1 + 3 attempts.
    let e = c.get_machine("app", "m").await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn connection_refused_is_transient_even_for_create() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (c, _) = client_with(&url, TOKEN, false, Duration::from_secs(2));
    let e = c.create_machine("app", &create_req()).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "nothing was sent: {e:?}");
}

#[tokio::test]
async fn get_machine_retries_5xx_then_succeeds() {
    let m = Mock::start([
        err(502, "bad gateway"),
        err(503, "unavailable"),
        reply(200, machine_json("m1", "started")),
    ])
    .await;
    let (c, metrics) = client_with(&m.url, TOKEN, false, Duration::from_secs(5));
    let got = c.get_machine("app", "m1").await.unwrap();
    assert_eq!(got.instance_id.as_deref(), Some("01HEPA330HZ37A78TK080NAK1M"));
    assert_eq!(m.count(), 3);
    assert_eq!(m.last().path, "/v1/apps/app/machines/m1");
    assert_eq!(counter(&metrics, "get_machine", "5xx"), 2);
    assert_eq!(counter(&metrics, "get_machine", "2xx"), 1);
    // Persistent 5xx: 1 + 3 retries, then Transient.
    m.fallback(err(500, "still broken"));
    let e = c.get_machine("app", "m1").await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)) && e.is_retryable());
    assert_eq!(m.count(), 7);
}

#[tokio::test]
async fn get_machine_garbage_2xx_is_decode_error() {
    let m = Mock::start([reply(200, json!("<html>oops"))]).await;
    let e = client(&m).get_machine("app", "m").await.unwrap_err();
    assert!(matches!(e, FlyError::Decode(_)), "{e:?}");
    assert_eq!(e.status(), Some(200));
}

#[tokio::test]
async fn rate_limited_get_honours_retry_after_and_create_does_not_retry() {
    let m = Mock::start([
        err(429, "rate limit exceeded").header("retry-after", "1"),
        reply(200, machine_json("m", "started")),
        err(429, "rate limit exceeded"),
        reply(200, machine_json("m", "started")),
        err(429, "rate limit exceeded").header("retry-after", "120"),
    ])
    .await;
    let (c, metrics) = client_with(&m.url, TOKEN, false, Duration::from_secs(5));
    c.get_machine("app", "m").await.unwrap();
    assert_eq!(m.count(), 2);
    c.get_machine("app", "m").await.unwrap();
    assert_eq!(m.count(), 4);
    // A long Retry-After is handed back to the caller instead of being slept on.
    let e = c.get_machine("app", "m").await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(m.count(), 5);
    assert_eq!(metrics.fly_rate_limited.get(), 3);
    assert_eq!(counter(&metrics, "get_machine", "429"), 3);
}

#[tokio::test]
async fn update_start_stop_destroy_shapes_and_conflicts() {
    let m = Mock::start([
        reply(200, machine_json("m1", "updating")),
        err(409, "machine ID m1 lease currently held by x@y, expires at 2024-01-01T00:00:00Z"),
        err(412, "failed_precondition: machine getting replaced, refusing to start"),
        reply(200, json!({"previous_state": "stopped"})),
        err(503, "flaky"),
        reply(200, json!({"ok": true})),
        reply(200, json!({"ok": true})),
        reply(200, json!({"ok": true})),
        err(503, "no"),
    ])
    .await;
    let c = client(&m);
    let mut req = create_req();
    req.current_version = Some("01HV".into());
    req.skip_launch = Some(true);
    c.update_machine("app", "m1", &req).await.unwrap();
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/apps/app/machines/m1"));
    assert_eq!(
        (&s.body["current_version"], &s.body["skip_launch"]),
        (&json!("01HV"), &json!(true))
    );
    let e = c.update_machine("app", "m1", &req).await.unwrap_err();
    assert!(matches!(e, FlyError::LeaseConflict(_)) && e.status() == Some(409));
    let e = c.start_machine("app", "m1").await.unwrap_err();
    assert!(matches!(e, FlyError::LeaseConflict(_)) && e.status() == Some(412));
    c.start_machine("app", "m1").await.unwrap();
    assert_eq!(
        (m.last().method, m.last().path),
        (Method::POST, "/v1/apps/app/machines/m1/start".into())
    );
    c.stop_machine("app", "m1").await.unwrap(); // 503 then 200: retried
    assert_eq!(m.last().path, "/v1/apps/app/machines/m1/stop");
    c.destroy_machine("app", "m1", true).await.unwrap();
    assert_eq!((m.last().method, m.last().query), (Method::DELETE, "force=true".into()));
    c.destroy_machine("app", "m1", false).await.unwrap();
    assert_eq!(m.last().query, "");
    let e = c.update_machine("app", "m1", &req).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)));
    assert_eq!(m.count(), 9, "update is not retried");
}

// ---------------------------------------------------------------- wait

fn q(s: &Seen, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(s.query.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[tokio::test]
async fn wait_loops_through_408_until_reached() {
    let not_yet =
        "deadline_exceeded: machine failed to reach desired state, started, currently starting";
    let m = Mock::start([
        err(408, not_yet),
        err(408, not_yet),
        reply(200, json!({"ok": true, "state": "started"})),
    ])
    .await;
    let c = client(&m);
    let out = c
        .wait_machine("app", "m1", "started", Some("01HV"), Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(out, WaitOutcome::Reached { state: "started".into() });
    assert_eq!(m.count(), 3);
    let s = m.last();
    assert_eq!(s.path, "/v1/apps/app/machines/m1/wait");
    assert_eq!(q(&s, "state"), ["started"]);
    assert_eq!(q(&s, "timeout"), ["60"], "clamped to 60");
    assert_eq!(q(&s, "instance_id"), ["01HV"]);
    assert_eq!(q(&s, "version"), ["01HV"]);
}

#[tokio::test]
async fn wait_total_deadline_stops_looping() {
    let m = Mock::start([]).await;
    m.fallback(err(408, "deadline_exceeded: machine failed to reach desired state"));
    let c = client(&m);
    let out = c.wait_machine("app", "m1", "started", None, Duration::from_secs(2)).await.unwrap();
    assert_eq!(out, WaitOutcome::TimedOut);
    let seen = m.seen();
    assert!((2..=6).contains(&seen.len()), "{}", seen.len());
    for s in &seen {
        let t: u64 = q(s, "timeout")[0].parse().unwrap();
        assert!((1..=2).contains(&t), "{t}");
        assert!(q(s, "instance_id").is_empty());
    }
}

#[tokio::test]
async fn wait_timeout_param_is_at_least_one() {
    let m = Mock::start([reply(200, json!({"ok": true}))]).await;
    let out = client(&m)
        .wait_machine("app", "m", "stopped", None, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        out,
        WaitOutcome::Reached { state: "stopped".into() },
        "falls back to the requested state"
    );
    assert_eq!(q(&m.last(), "timeout"), ["1"]);
}

#[tokio::test]
async fn wait_errors() {
    let bad = "invalid_argument: invalid WaitMachineRequest.Timeout: value must be inside range [1s, 1m0s]";
    let m =
        Mock::start([err(400, bad), err(404, "machine not found"), err(404, "machine not found")])
            .await;
    let c = client(&m);
    let e = c.wait_machine("app", "m", "started", None, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, FlyError::Permanent(_)) && e.message() == bad, "{e:?}");
    let e = c.wait_machine("app", "m", "started", None, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(e, FlyError::NotFound(_)));
    let out = c.wait_machine("app", "m", "destroyed", None, Duration::from_secs(5)).await.unwrap();
    assert_eq!(out, WaitOutcome::Reached { state: "destroyed".into() });
    assert_eq!(m.count(), 3);
}

// ---------------------------------------------------------------- org listing

#[tokio::test]
async fn list_org_machines_shape() {
    let page = json!({"machines": [{"id": "m", "name": "n", "app_name": "roseram-1", "state": "started",
        "updated_at": "2024-05-01T00:00:00Z", "config": {"image": "i", "metadata": {"managed-by": "x"}}}],
        "next_cursor": "c2", "last_machine_id": "m", "last_updated_at": "2024-05-01T00:00:00Z", "error_regions": null});
    let m = Mock::start([reply(200, page), reply(200, json!({}))]).await;
    let c = client(&m);
    let after = chrono::DateTime::parse_from_rfc3339("2024-04-30T12:00:00Z").unwrap().to_utc();
    let p = c.list_org_machines("personal", Some(after), Some("c1")).await.unwrap();
    assert_eq!(
        (p.machines[0].app_name.as_str(), p.next_cursor.as_deref()),
        ("roseram-1", Some("c2"))
    );
    let s = m.last();
    assert_eq!(s.path, "/v1/orgs/personal/machines");
    assert_eq!(
        (q(&s, "updated_after"), q(&s, "cursor"), q(&s, "include_deleted")),
        (vec!["2024-04-30T12:00:00Z".into()], vec!["c1".into()], vec!["true".into()])
    );
    let p = c.list_org_machines("personal", None, None).await.unwrap();
    assert!(p.machines.is_empty() && p.next_cursor.is_none());
    assert_eq!(
        m.last().query,
        "include_deleted=true",
        "drift detection must see destroyed machines"
    );
}

// ---------------------------------------------------------------- timeouts & buckets

#[tokio::test]
async fn request_timeout_classification() {
    let m = Mock::start([]).await;
    m.fallback(reply(200, json!({})).delay(Duration::from_secs(3)));
    let (c, metrics) = client_with(&m.url, TOKEN, false, Duration::from_millis(200));
    let e = c.get_app("slow").await.unwrap_err();
    assert!(matches!(e, FlyError::Timeout(_)) && e.is_retryable(), "{e:?}");
    assert_eq!(m.count(), 4, "timeouts on reads are retried");
    assert_eq!(counter(&metrics, "get_app", "transport"), 4);
    let e = c.create_machine("app", &create_req()).await.unwrap_err();
    assert!(matches!(e, FlyError::AmbiguousCreate(_)), "{e:?}");
    assert_eq!(m.count(), 5);
}

#[tokio::test]
async fn token_bucket_throttles_fourth_rapid_request_per_action_and_id() {
    let m = Mock::start([]).await;
    m.fallback(reply(200, json!({"name": "a"})));
    let (c, metrics) = client_with(&m.url, TOKEN, true, Duration::from_secs(5));
    let throttled = |a: &str| metrics.fly_throttled.with_label_values(&[a]).get();
    for _ in 0..3 {
        c.get_app("a").await.unwrap();
    }
    assert_eq!(throttled("get_app"), 0);
    c.get_app("b").await.unwrap(); // another id: own bucket
    c.list_ips("a").await.unwrap(); // another action: own bucket
    assert_eq!(throttled("get_app"), 0);
    c.get_app("a").await.unwrap();
    assert_eq!(throttled("get_app"), 1);
    assert_eq!(throttled("list_ips"), 0);
    // get_machine allows bursts of 10.
    m.fallback(reply(200, machine_json("m", "started")));
    for _ in 0..10 {
        c.get_machine("app", "m").await.unwrap();
    }
    assert_eq!(throttled("get_machine"), 0);
    c.get_machine("app", "m").await.unwrap();
    assert_eq!(throttled("get_machine"), 1);
}

#[tokio::test]
async fn lenient_config_round_trip_keeps_unknown_fields() {
    let v = json!({"image": "i", "mounts": [{"volume": "vol_1", "path": "/data"}], "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}});
    let m = Mock::start([reply(200, json!({"id": "m", "state": "stopped", "config": v}))]).await;
    let got = client(&m).get_machine("app", "m").await.unwrap();
    let cfg: MachineConfig = got.config.unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), v);
}

// ---------------------------------------------------------------- contract (prism)

/// Drives every client call through a Prism validating proxy in front of the simulator.
/// Run by `.ci/contract-check.sh`, which sets `FLY_CONTRACT_URL` and checks Prism's log.
#[tokio::test]
#[ignore = "needs Prism + the simulator; run .ci/contract-check.sh"]
async fn contract_through_prism() {
    let url = std::env::var("FLY_CONTRACT_URL").expect("FLY_CONTRACT_URL");
    let org = std::env::var("FLY_CONTRACT_ORG").unwrap_or_else(|_| "personal".into());
    let token =
        std::env::var("FLY_CONTRACT_TOKEN").unwrap_or_else(|_| "fm2_contract_check_token".into());
    let (c, _) = client_with(&url, &token, true, Duration::from_secs(30));
    let app = format!("contract-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    contract_apps(&c, &app, &org).await;
    let id = contract_machine_lifecycle(&c, &app).await;
    let page = c
        .list_org_machines(&org, Some(chrono::Utc::now() - chrono::TimeDelta::hours(1)), None)
        .await
        .unwrap();
    assert!(page.machines.iter().any(|m| m.id == id), "{page:?}");
    c.destroy_machine(&app, &id, true).await.unwrap();
    c.delete_app(&app).await.unwrap();
    assert!(matches!(c.get_app(&app).await, Err(FlyError::NotFound(_))));
}

async fn contract_apps(c: &FlyClient, app: &str, org: &str) {
    c.create_app(app, org).await.unwrap();
    assert!(matches!(c.create_app(app, org).await, Err(FlyError::NameTaken(_))));
    assert_eq!(c.get_app(app).await.unwrap().name, app);
    assert!(c.list_apps(org).await.unwrap().iter().any(|a| a.name == app));
    assert!(matches!(c.get_app("contract-does-not-exist").await, Err(FlyError::NotFound(_))));
    assert!(c.assign_ip(app, IpType::V6).await.unwrap().is_v6());
    assert!(c.assign_ip(app, IpType::SharedV4).await.unwrap().is_shared_v4());
    assert_eq!(c.list_ips(app).await.unwrap().len(), 2);
}

async fn contract_machine_lifecycle(c: &FlyClient, app: &str) -> String {
    let long = Duration::from_secs(30);
    let m = c.create_machine(app, &create_req()).await.unwrap();
    let reached =
        c.wait_machine(app, &m.id, "started", m.instance_id.as_deref(), long).await.unwrap();
    assert_eq!(reached, WaitOutcome::Reached { state: "started".into() });
    let got = c.get_machine(app, &m.id).await.unwrap();
    let filter = [(machine_config::LAUNCH_MARKER_KEY, "01HMARK")];
    assert_eq!(c.list_machines(app, &filter).await.unwrap().len(), 1);
    let mut upd = create_req();
    upd.current_version = got.instance_id.clone();
    let updated = c.update_machine(app, &m.id, &upd).await.unwrap();
    c.wait_machine(app, &m.id, "started", updated.instance_id.as_deref(), long).await.unwrap();
    c.stop_machine(app, &m.id).await.unwrap();
    c.wait_machine(app, &m.id, "stopped", None, long).await.unwrap();
    c.start_machine(app, &m.id).await.unwrap();
    c.wait_machine(app, &m.id, "started", None, long).await.unwrap();
    // A started machine never becomes suspended by itself: /wait answers 408 (not yet).
    let out = c.wait_machine(app, &m.id, "suspended", None, Duration::from_secs(1)).await.unwrap();
    assert_eq!(out, WaitOutcome::TimedOut);
    let e = c.wait_machine(app, "00000000000000", "started", None, long).await.unwrap_err();
    assert!(matches!(e, FlyError::NotFound(_)), "{e:?}");
    m.id
}
