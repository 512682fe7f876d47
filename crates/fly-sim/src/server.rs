//! The HTTP front: auth, latency, faults, rate limits, request ids and the request log.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::LoggedRequest;
use super::error::{ApiError, ApiResult, Reply};
use super::fault::{Action, Fault, FaultPlan};
use super::query::Query;
use super::routes::{Call, Route, classify, dispatch, rate_key};
use super::shared::{Shared, lock};

const LOG_CAPACITY: usize = 100_000;
const BODY_LIMIT: usize = 4 * 1024 * 1024;
const JSON: &str = "application/json; charset=utf-8";

/// How a request ends.
enum Answer {
    Reply(Reply),
    Error(ApiError),
    /// Close the connection without a response.
    Drop,
}

impl From<ApiResult> for Answer {
    fn from(result: ApiResult) -> Self {
        result.map_or_else(Answer::Error, Answer::Reply)
    }
}

/// Spawns the HTTP server; it stops when `shared.shutdown` turns true.
pub(crate) fn spawn(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    let mut stop = shared.shutdown.subscribe();
    let app = Router::new().fallback(entry).with_state(shared);
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::warn!(error = %err, "fly simulator server stopped with an error");
        }
    })
}

async fn entry(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let arrived = Instant::now();
    let request_id = {
        let ulid = lock(&shared.request_ids).ulid(shared.clock.unix_ms(arrived));
        format!("{ulid}-sim")
    };
    let (parts, body) = request.into_parts();
    let route = classify(&parts.method, parts.uri.path());
    let action = route.as_ref().map_or("unknown", |r| r.action.as_str());
    let (answer, created) = match route {
        Ok(route) => match read_json(&parts.method, body).await {
            Ok(body) => {
                let created = created_app(&route, &body);
                (process(&shared, &route, &parts, &body, created.as_deref()).await, created)
            }
            Err(err) => (Answer::Error(err), None),
        },
        Err(err) => (Answer::Error(err), None),
    };
    let status = match &answer {
        Answer::Reply(reply) => reply.status,
        Answer::Error(err) => err.status,
        Answer::Drop => 0,
    };
    shared.requests_total.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(method = %parts.method, path = parts.uri.path(), status, action, %request_id, "fly sim");
    record(&shared, &parts, status, action, arrived, created);
    render(answer, &request_id, shared.retry_after)
}

fn record(
    shared: &Shared,
    parts: &Parts,
    status: u16,
    action: &'static str,
    at: Instant,
    created_app: Option<String>,
) {
    let mut log = lock(&shared.log);
    if log.len() >= LOG_CAPACITY {
        log.pop_front();
    }
    log.push_back(LoggedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        status,
        action,
        at_ms: shared.clock.rel_ms(at),
        created_app,
    });
}

/// The app an app create names in its body (its path names none).
fn created_app(route: &Route, body: &Value) -> Option<String> {
    (route.action == Action::CreateApp)
        .then(|| body.get("name").or_else(|| body.get("app_name")).and_then(Value::as_str))
        .flatten()
        .map(str::to_owned)
}

/// Auth, latency, faults and rate limits, then the handler. `app_key`: the app an app
/// create names (app creation is limited per app, its future id, like every other per-app
/// action).
async fn process(
    shared: &Shared,
    route: &Route,
    parts: &Parts,
    body: &Value,
    app_key: Option<&str>,
) -> Answer {
    let plan = match admit(shared, route, &parts.headers, app_key).await {
        Ok(plan) => plan,
        Err(answer) => return answer,
    };
    let query = Query::parse(parts.uri.query().unwrap_or_default());
    let nonce = parts.headers.get("fly-machine-lease-nonce").and_then(|v| v.to_str().ok());
    let call = Call { route, method: &parts.method, query: &query, nonce, body };
    match dispatch(shared, &call).await {
        Ok(_) if plan.after_commit => Answer::Error(ApiError::new(
            408,
            "deadline_exceeded: context deadline exceeded while waiting for the machine",
        )),
        result => result.into(),
    }
}

/// Everything that happens before the handler; `Err` is the final answer.
async fn admit(
    shared: &Shared,
    route: &Route,
    headers: &HeaderMap,
    key: Option<&str>,
) -> Result<FaultPlan, Answer> {
    authenticate(headers, shared.token.as_deref()).map_err(Answer::Error)?;
    if !shared.api_latency.is_zero() {
        tokio::time::sleep(shared.api_latency).await;
    }
    let plan = lock(&shared.faults).evaluate(route.action);
    shared.faults_injected_total.fetch_add(plan.fired, Ordering::Relaxed);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.terminal {
        Some(Fault::Drop) => return Err(Answer::Drop),
        Some(Fault::Status(code)) => return Err(Answer::Error(ApiError::injected(code))),
        Some(_) => return Err(Answer::Error(ApiError::insufficient_capacity())),
        None => {}
    }
    if shared.rate_limits {
        let mut limiter = lock(&shared.limiter);
        let now = Instant::now();
        limiter.prune(now);
        if !limiter.allow(route.action, key.unwrap_or_else(|| rate_key(route, &shared.org)), now) {
            shared.rate_limited_total.fetch_add(1, Ordering::Relaxed);
            return Err(Answer::Error(ApiError::rate_limited()));
        }
    }
    Ok(plan)
}

/// Strips a case-insensitive `scheme ` prefix.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let head = value.get(..scheme.len() + 1)?;
    let (name, space) = head.split_at(scheme.len());
    (name.eq_ignore_ascii_case(scheme) && space == " ").then(|| value[scheme.len() + 1..].trim())
}

/// Accepts `Bearer X`, `FlyV1 X` and `Bearer FlyV1 X`; X may be a comma-separated token list.
pub(crate) fn authenticate(headers: &HeaderMap, expected: Option<&str>) -> Result<(), ApiError> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let value = value.trim();
    let tokens = match strip_scheme(value, "Bearer") {
        Some(rest) => strip_scheme(rest, "FlyV1").unwrap_or(rest),
        None => strip_scheme(value, "FlyV1").ok_or_else(ApiError::unauthenticated)?,
    };
    let expected = expected.map(|t| strip_scheme(t.trim(), "FlyV1").unwrap_or(t.trim()));
    let mut candidates = tokens.split(',').map(str::trim).filter(|t| !t.is_empty());
    let ok = match expected {
        Some(expected) => candidates.any(|t| t == expected),
        None => candidates.next().is_some(),
    };
    if ok { Ok(()) } else { Err(ApiError::unauthenticated()) }
}

async fn read_json(method: &Method, body: Body) -> Result<Value, ApiError> {
    let empty = Value::Object(serde_json::Map::new());
    if *method != Method::POST && *method != Method::PUT && *method != Method::PATCH {
        return Ok(empty);
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| ApiError::invalid(format!("could not read request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty);
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

fn render(answer: Answer, request_id: &str, retry_after: Option<u64>) -> Response {
    let (status, body) = match answer {
        Answer::Reply(reply) => (reply.status, reply.body),
        Answer::Error(err) => (err.status, Some(err.body)),
        Answer::Drop => {
            // A body that fails before its first byte makes hyper abort the connection without
            // flushing the response head: the client sees the connection close, no response.
            let failing = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("injected fault: drop"))
            });
            return Response::new(Body::from_stream(failing));
        }
    };
    let mut response = match body {
        Some(json) => {
            let mut r = Response::new(Body::from(json.to_string()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
            r
        }
        None => Response::new(Body::empty()),
    };
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("fly-request-id", id);
    }
    headers.insert(header::SERVER, HeaderValue::from_static("Fly/sim"));
    headers.insert(header::VIA, HeaderValue::from_static("1.1 fly.io"));
    if let (429, Some(secs)) = (status, retry_after) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: Option<&str>, expected: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        authenticate(&headers, expected).is_ok()
    }

    #[test]
    fn auth_header_forms() {
        for form in ["Bearer tok", "FlyV1 tok", "Bearer FlyV1 tok", "bearer tok", "FlyV1 other,tok"]
        {
            assert!(auth(Some(form), Some("tok")), "{form}");
            assert!(auth(Some(form), None), "{form}");
        }
        assert!(auth(Some("FlyV1 tok"), Some("FlyV1 tok")));
        for bad in [None, Some(""), Some("Bearer "), Some("tok"), Some("Basic tok")] {
            assert!(!auth(bad, None), "{bad:?}");
        }
        assert!(!auth(Some("Bearer wrong"), Some("tok")));
    }
}
