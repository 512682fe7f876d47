//! One HTTP exchange with the Machines API: token bucket, auth, timeout, metrics, error
//! classification, and (for idempotent actions only) bounded jittered retries.

use std::time::Duration;

use backon::Retryable;

use crate::runtime::backoff::Backoff;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::Secret;
pub(crate) use super::action::Action;
use super::breaker::{Breaker, Signal};
use super::error::{Classify, FlyError, parse_retry_after};
use super::ratelimit::RateLimiter;
use super::streamed::{Sink, Streamed};
use crate::ops::metrics::Metrics;

/// A `Retry-After` longer than this is not slept on inside the client; the error goes
/// back to the caller, whose own backoff (persisted in the row) takes over.
/// Retries of one idempotent request: 100 ms doubling to 2 s, full jitter.
const REQUEST_BACKOFF: Backoff =
    Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(2) };
const MAX_INLINE_RETRY_AFTER: Duration = Duration::from_secs(10);

tokio::task_local! {
    /// The longest a request of this task may wait for Fly's budget (a client-side bucket or
    /// a 429's `Retry-After`) before it gives up with [`FlyError::RateLimited`] unsent.
    static MAX_WAIT: Duration;
}

/// Runs `f` (a pass in a worker slot) so that none of its Fly requests waits for a rate
/// limit longer than `max`: a longer wait is not slept on but returned as
/// [`FlyError::RateLimited`] with `retry_after` = when the budget has room (no token taken,
/// nothing sent), so the caller can give its slot back and come back then.
pub async fn bounded_waits<F: std::future::Future>(max: Duration, f: F) -> F::Output {
    MAX_WAIT.scope(max, f).await
}

fn max_wait() -> Option<Duration> {
    MAX_WAIT.try_with(|d| *d).ok()
}
const MACAROON_PREFIXES: [&str; 3] = ["fm1r_", "fm1a_", "fm2_"];

/// A request description; cheap to re-send on retry.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub action: Action,
    pub method: Method,
    pub path: Vec<&'a str>,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Rate-limit identifier: the app, machine or org the call is about.
    pub key: &'a str,
    pub timeout: Option<Duration>,
    /// A health probe: sent even while the breaker is open.
    pub probe: bool,
}

impl<'a> Request<'a> {
    pub fn new(action: Action, method: Method, path: &[&'a str], key: &'a str) -> Self {
        Request {
            action,
            method,
            path: path.to_vec(),
            query: Vec::new(),
            body: None,
            key,
            timeout: None,
            probe: false,
        }
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub fn json<T: serde::Serialize>(mut self, body: &T) -> Result<Self, FlyError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| FlyError::config(format!("encoding request body: {e}")))?;
        self.body = Some(bytes);
        Ok(self)
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub request_id: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// Decode the body; an empty body yields `T::default()`.
    pub fn json<T: DeserializeOwned + Default>(&self, what: &str) -> Result<T, FlyError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| FlyError::decode(self.status, self.request_id.clone(), what, &e))
    }
}

/// `FlyV1 <token>` for macaroons (as flyctl does), otherwise `Bearer <token>`; a token
/// that already names its scheme is sent unchanged.
pub(crate) fn auth_value(token: &str) -> String {
    let t = token.trim();
    if t.starts_with("FlyV1 ") || t.starts_with("Bearer ") {
        t.to_owned()
    } else if MACAROON_PREFIXES.iter().any(|p| t.starts_with(p)) {
        format!("FlyV1 {t}")
    } else {
        format!("Bearer {t}")
    }
}

pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    auth: Option<HeaderValue>,
    token: Secret,
    limiter: Option<RateLimiter>,
    metrics: Option<Metrics>,
    pub breaker: Breaker,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .finish()
    }
}

impl Transport {
    pub fn new(
        base_url: &str,
        token: Secret,
        request_timeout: Duration,
        rate_limit: bool,
        metrics: Option<Metrics>,
    ) -> Result<Self, FlyError> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("fly-preview-controller/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FlyError::config(format!("building HTTP client: {e}")))?;
        let auth = if token.is_empty() {
            None
        } else {
            let mut v = HeaderValue::from_str(&auth_value(token.expose())).map_err(|_| {
                FlyError::config("API token contains characters not allowed in an HTTP header")
            })?;
            v.set_sensitive(true);
            Some(v)
        };
        let limiter = rate_limit.then(RateLimiter::new);
        let breaker = Breaker::default();
        Ok(Transport { http, base: api_base(base_url)?, auth, token, limiter, metrics, breaker })
    }

    fn url(&self, req: &Request<'_>) -> Result<Url, FlyError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| FlyError::config("base URL cannot have a path"))?
            .extend(&req.path);
        if !req.query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &req.query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Send, retrying idempotent actions on transient failures (honouring short
    /// `Retry-After`s); non-idempotent actions are sent exactly once.
    pub async fn send(&self, req: &Request<'_>) -> Result<Response, FlyError> {
        self.send_to(req, None).await
    }

    /// As [`Self::send`], a 2xx body fed to `sink` as it arrives, never held whole (the
    /// returned response's `body` is empty); `what` names it in a decoding error.
    pub async fn send_streamed(
        &self,
        req: &Request<'_>,
        sink: &mut dyn Sink,
        what: &'static str,
    ) -> Result<Response, FlyError> {
        self.send_to(req, Some(&Streamed::new(sink, what))).await
    }

    async fn send_to(
        &self,
        req: &Request<'_>,
        to: Option<&Streamed<'_>>,
    ) -> Result<Response, FlyError> {
        if !req.action.idempotent() {
            return self.send_once(req, to).await;
        }
        (|| self.send_once(req, to))
            .retry(REQUEST_BACKOFF.retries(3))
            .sleep(tokio::time::sleep)
            .when(|e| req.action.should_retry(e) && !e.is_unsent_throttle())
            .adjust(honour_retry_after)
            .notify(|e, after| {
                tracing::debug!(action = req.action.as_str(), kind = e.kind(), error = %e, ?after, "retrying Fly request");
            })
            .await
    }

    /// One attempt, no retries (health probes).
    pub async fn send_probe(&self, req: &Request<'_>) -> Result<Response, FlyError> {
        self.send_once(req, None).await
    }

    async fn send_once(
        &self,
        req: &Request<'_>,
        to: Option<&Streamed<'_>>,
    ) -> Result<Response, FlyError> {
        if !self.breaker.admit(req.probe) {
            let mut e = FlyError::unavailable();
            e.info_mut().call = Some(req.action.as_str());
            return Err(e);
        }
        self.throttle(req).await?;
        let mut rb = self.http.request(req.method.clone(), self.url(req)?);
        if let Some(auth) = &self.auth {
            rb = rb.header(AUTHORIZATION, auth.clone());
        }
        if let Some(body) = &req.body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        if let Some(t) = req.timeout {
            rb = rb.timeout(t);
        }
        let started = Instant::now();
        let result = self.execute(rb, req.action.classify(), to).await.map_err(|mut e| {
            e.info_mut().call = Some(req.action.as_str());
            e
        });
        let signal = match &result {
            Ok(_) => Signal::Answered,
            Err(e) if req.action == Action::ExecMachine => Signal::of_exec(e),
            Err(e) => Signal::of(e, req.action == Action::WaitMachine),
        };
        if self.breaker.record(signal)
            && let Some(m) = &self.metrics
        {
            m.fly_breaker_trips.inc();
        }
        self.record(req.action, &result, started.elapsed());
        result
    }

    async fn execute(
        &self,
        rb: reqwest::RequestBuilder,
        how: Classify,
        to: Option<&Streamed<'_>>,
    ) -> Result<Response, FlyError> {
        let token = self.token.expose();
        let resp = rb.send().await.map_err(|e| FlyError::from_transport(&e, how, token))?;
        let status = resp.status().as_u16();
        let header = |name| {
            resp.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned)
        };
        let request_id = header("fly-request-id");
        let retry_after = header(RETRY_AFTER.as_str()).as_deref().and_then(parse_retry_after);
        if let Some(to) = to
            && (200..300).contains(&status)
        {
            to.read(resp, status, request_id.as_deref(), how, token).await?;
            return Ok(Response { status, request_id, body: Vec::new() });
        }
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                let err = FlyError::from_transport(&e, how, token);
                return Err(err.with_response(status, request_id));
            }
        };
        if (200..300).contains(&status) {
            return Ok(Response { status, request_id, body });
        }
        Err(FlyError::from_response(status, request_id, retry_after, &body, how, token))
    }

    /// Waits for the request's client-side token, or (in [`bounded_waits`]) refuses a wait
    /// longer than allowed.
    async fn throttle(&self, req: &Request<'_>) -> Result<(), FlyError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let key = if req.action == Action::DeleteApp { "" } else { req.key };
        let (name, limits) = (req.action.as_str(), req.action.limits());
        let throttled = match max_wait() {
            None => limiter.acquire(name, key, limits).await,
            Some(max) => match limiter.reserve_within(name, key, limits, Instant::now(), max) {
                Ok(wait) if wait.is_zero() => false,
                Ok(wait) => {
                    tokio::time::sleep(wait).await;
                    true
                }
                Err(wait) => {
                    tracing::debug!(action = name, ?wait, "Fly budget spent; request not sent");
                    self.count_throttled(name);
                    return Err(FlyError::budget_spent(name, wait));
                }
            },
        };
        if throttled {
            tracing::debug!(action = name, "Fly request delayed by client-side rate limit");
            self.count_throttled(name);
        }
        Ok(())
    }

    fn count_throttled(&self, action: &str) {
        if let Some(m) = &self.metrics {
            m.fly_throttled.with_label_values(&[action]).inc();
        }
    }

    fn record(&self, action: Action, result: &Result<Response, FlyError>, elapsed: Duration) {
        let status = match result {
            Ok(r) => Some(r.status),
            Err(e) => e.status(),
        };
        if let Err(e) = result {
            tracing::debug!(action = action.as_str(), kind = e.kind(), error = %e, "Fly request failed");
        }
        let Some(m) = &self.metrics else { return };
        m.fly_requests.with_label_values(&[action.as_str(), Metrics::status_class(status)]).inc();
        m.fly_request_duration.with_label_values(&[action.as_str()]).observe(elapsed.as_secs_f64());
        if status == Some(429) {
            m.fly_rate_limited.inc();
        }
    }
}

/// `base_url` + `/v1` (not doubled if already present).
fn api_base(base_url: &str) -> Result<Url, FlyError> {
    let mut url = Url::parse(base_url.trim())
        .map_err(|e| FlyError::config(format!("invalid Fly API URL: {e}")))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(FlyError::config("Fly API URL must be an http(s) URL"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let has_v1 = url.path().trim_end_matches('/').ends_with("/v1");
    let mut segs = url.path_segments_mut().map_err(|()| FlyError::config("invalid Fly API URL"))?;
    segs.pop_if_empty();
    if !has_v1 {
        segs.push("v1");
    }
    drop(segs);
    Ok(url)
}

/// Sleep at least `Retry-After` when one was sent, but give up (return to the caller)
/// rather than sleep longer than [`MAX_INLINE_RETRY_AFTER`] (or the task's [`bounded_waits`]).
fn honour_retry_after(err: &FlyError, next: Option<Duration>) -> Option<Duration> {
    let next = next?;
    let most = max_wait().unwrap_or(MAX_INLINE_RETRY_AFTER).min(MAX_INLINE_RETRY_AFTER);
    match err.retry_after() {
        Some(ra) if ra > most => None,
        Some(ra) => Some(ra.max(next)),
        None => Some(next),
    }
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
