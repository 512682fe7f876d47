//! A scripted axum mock of the Fly Machines API and `FlyClient` helpers, shared by the
//! `fly_client*` test modules.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fly_preview_controller::fly::{CreateMachineRequest, FlyClient, FlyClientConfig, Secret};
use fly_preview_controller::ops::metrics::Metrics;
use fly_preview_controller::preview::machine_config::{self, PreviewSpec, RunnerSettings};
use serde_json::{Value, json};

pub const TOKEN: &str = "fm2_lkjhgfdsa_secret_token_0123456789";

#[derive(Clone)]
pub struct Reply {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

pub fn reply(status: u16, body: Value) -> Reply {
    let body = match body {
        Value::Null => String::new(),
        Value::String(raw) => raw, // a raw (possibly non-JSON) body
        v => v.to_string(),
    };
    Reply { status, body, headers: Vec::new(), delay: Duration::ZERO }
}

pub fn err(status: u16, msg: &str) -> Reply {
    reply(status, json!({ "error": msg }))
}

impl Reply {
    pub fn header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.to_owned()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct MockState {
    queue: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

pub struct Mock {
    pub url: String,
    state: Arc<MockState>,
}

impl Mock {
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> Mock {
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
    pub fn fallback(&self, r: Reply) {
        *self.state.fallback.lock().unwrap() = Some(r);
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
    pub fn last(&self) -> Seen {
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

pub fn client_with(
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

pub fn client(m: &Mock) -> FlyClient {
    client_with(&m.url, TOKEN, false, Duration::from_secs(5)).0
}

pub fn machine_json(id: &str, state: &str) -> Value {
    json!({"id": id, "name": "aged-thunder-7371", "state": state, "region": "ams",
           "instance_id": "01HEPA330HZ37A78TK080NAK1M", "config": {"image": "img", "metadata": {"k": "v"}},
           "events": [{"type": "launch", "status": "created", "source": "user", "timestamp": 1700000000000i64}],
           "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:01Z"})
}

pub fn create_req() -> CreateMachineRequest {
    let spec = PreviewSpec {
        preview_id: uuid::Uuid::nil(),
        generation: 1,
        repo_url: "https://github.com/a/b",
        branch: "main",
        root_directory: None,
        launch_marker: "01HMARK",
    };
    CreateMachineRequest {
        region: Some("ams".into()),
        config: machine_config::build(&RunnerSettings::default(), &spec),
        ..Default::default()
    }
}

pub fn counter(m: &Metrics, action: &str, class: &str) -> u64 {
    m.fly_requests.with_label_values(&[action, class]).get()
}

/// The values of query parameter `key` in a recorded request.
pub fn q(s: &Seen, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(s.query.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}
