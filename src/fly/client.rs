//! [`FlyClient`]: one typed method per Machines API endpoint the controller uses.
//!
//! Retries: reads, deletes, start/stop and waits are retried (≤ 3 times, jittered
//! 100 ms → 2 s, honouring short `Retry-After`s) on transient errors, timeouts and 429s.
//! `create_app`, `create_machine`, `update_machine` and `assign_ip` are sent exactly once;
//! a failed machine create whose outcome is unknown is reported as
//! [`FlyError::AmbiguousCreate`] so the caller can look for its launch marker first.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use crate::runtime::backoff::Backoff;

use super::app_list::SharedNetworkApps;
use super::lenient::{nullable, opt_string};
use super::transport::{Action, Request, Transport};
use super::types::{App, CreateMachineRequest, IpAssignment, IpType, Machine, OrgMachinesPage};
use super::{FlyError, Secret};
use crate::model::MachineState;
use crate::ops::metrics::Metrics;

/// Longest single `/wait` the API accepts (seconds).
const MAX_WAIT_SECS: u64 = 60;
/// Extra HTTP timeout on top of the requested wait.
const WAIT_SLACK: Duration = Duration::from_secs(15);
/// Pause after a 408 that came back early, so a misbehaving server can't make us spin.
const WAIT_PAUSE_MIN: Duration = Duration::from_millis(500);
const WAIT_PAUSE_MAX: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct FlyClientConfig {
    /// e.g. `https://api.machines.dev`; the client appends `/v1`.
    pub base_url: String,
    pub token: Secret,
    pub request_timeout: Duration,
    /// Client-side token buckets on/off.
    pub rate_limit: bool,
}

impl Default for FlyClientConfig {
    fn default() -> Self {
        FlyClientConfig {
            base_url: "https://api.machines.dev".to_owned(),
            token: Secret::default(),
            request_timeout: Duration::from_secs(30),
            rate_limit: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The machine reached the state (the server's answer, else the requested state).
    Reached { state: MachineState },
    /// The caller's total deadline passed first.
    TimedOut,
}

#[derive(Clone, Debug)]
pub struct FlyClient {
    inner: Arc<Transport>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpsEnvelope {
    #[serde(deserialize_with = "nullable")]
    ips: Vec<IpAssignment>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WaitResponse {
    #[serde(deserialize_with = "opt_string")]
    state: Option<String>,
}

impl FlyClient {
    pub(super) fn transport(&self) -> &Transport {
        &self.inner
    }

    pub fn new(cfg: FlyClientConfig, metrics: Option<Metrics>) -> Result<Self, FlyError> {
        let t =
            Transport::new(&cfg.base_url, cfg.token, cfg.request_timeout, cfg.rate_limit, metrics)?;
        Ok(FlyClient { inner: Arc::new(t) })
    }

    /// The breaker over this client's requests (Fly's health as this replica sees it).
    pub fn breaker(&self) -> &super::breaker::Breaker {
        &self.inner.breaker
    }

    /// A cheap request that proves the token and the org: one page of the org's machines
    /// changed since now (normally empty). Sent even while the breaker is open; sent once.
    pub async fn probe(&self, org: &str) -> Result<(), FlyError> {
        let mut req =
            Request::new(Action::ListOrgMachines, Method::GET, &["orgs", org, "machines"], org);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        req.query.push(("updated_after".into(), now));
        req.probe = true;
        self.inner.send_probe(&req).await.map(drop)
    }

    /// `POST /apps`. A taken name (422/409) is [`FlyError::NameTaken`]; the caller then
    /// GETs the app to see whether it is its own.
    pub async fn create_app(&self, name: &str, org: &str) -> Result<App, FlyError> {
        self.create_app_in_network(name, org, None).await
    }

    /// `POST /apps` with `network`: the app gets its own 6PN private network, so its machines
    /// cannot reach the org's other apps privately. Fly cannot move an existing app to
    /// another network.
    pub async fn create_app_in_network(
        &self,
        name: &str,
        org: &str,
        network: Option<&str>,
    ) -> Result<App, FlyError> {
        let mut body = json!({ "name": name, "org_slug": org });
        if let Some(net) = network {
            body["network"] = json!(net);
        }
        let req = Request::new(Action::CreateApp, Method::POST, &["apps"], name).json(&body)?;
        let mut app: App = self.inner.send(&req).await?.json("app")?;
        if app.name.is_empty() {
            name.clone_into(&mut app.name);
        }
        Ok(app)
    }

    pub async fn get_app(&self, name: &str) -> Result<App, FlyError> {
        let req = Request::new(Action::GetApp, Method::GET, &["apps", name], name);
        let mut app: App = self.inner.send(&req).await?.json("app")?;
        if app.name.is_empty() {
            name.clone_into(&mut app.name);
        }
        Ok(app)
    }

    /// `DELETE /apps/{name}` (202): cascades to machines and IPs.
    pub async fn delete_app(&self, name: &str) -> Result<(), FlyError> {
        let req = Request::new(Action::DeleteApp, Method::DELETE, &["apps", name], name);
        self.inner.send(&req).await.map(drop)
    }

    /// `GET /apps`: the names of the org's apps on its shared private network (created
    /// without a network of their own). The body (every app of the org) is decoded as it
    /// arrives, one app at a time, and never held whole.
    pub async fn list_apps_on_shared_network(&self, org: &str) -> Result<Vec<String>, FlyError> {
        let mut req = Request::new(Action::ListApps, Method::GET, &["apps"], org);
        req.query.push(("org_slug".into(), org.to_owned()));
        let mut apps = SharedNetworkApps::default();
        self.inner.send_streamed(&req, &mut apps, "app list").await?;
        Ok(apps.into_names())
    }

    pub async fn list_ips(&self, app: &str) -> Result<Vec<IpAssignment>, FlyError> {
        let req = Request::new(Action::ListIps, Method::GET, &["apps", app, "ip_assignments"], app);
        Ok(self.inner.send(&req).await?.json::<IpsEnvelope>("IP list")?.ips)
    }

    /// Not idempotent (each call allocates), so never retried.
    pub async fn assign_ip(&self, app: &str, kind: IpType) -> Result<IpAssignment, FlyError> {
        let body = json!({ "type": kind });
        let req =
            Request::new(Action::AssignIp, Method::POST, &["apps", app, "ip_assignments"], app)
                .json(&body)?;
        self.inner.send(&req).await?.json("IP assignment")
    }

    /// `GET /apps/{app}/machines` with `metadata.<k>=<v>` filters. Includes machines
    /// that are `destroying`/`destroyed`; see [`Machine::is_active`].
    pub async fn list_machines(
        &self,
        app: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Vec<Machine>, FlyError> {
        let mut req =
            Request::new(Action::ListMachines, Method::GET, &["apps", app, "machines"], app);
        for (k, v) in metadata {
            req = req.query(&format!("metadata.{k}"), *v);
        }
        self.inner.send(&req).await?.json("machine list")
    }

    /// Sent exactly once. 408/5xx/lost connection/timeout/undecodable 2xx all become
    /// [`FlyError::AmbiguousCreate`]: the machine may exist.
    pub async fn create_machine(
        &self,
        app: &str,
        req: &CreateMachineRequest,
    ) -> Result<Machine, FlyError> {
        let r = Request::new(Action::CreateMachine, Method::POST, &["apps", app, "machines"], app)
            .json(req)?;
        let resp = self.inner.send(&r).await?;
        match resp.json::<Machine>("machine") {
            Ok(m) if !m.id.is_empty() => Ok(m),
            Ok(_) => Err(ambiguous(
                resp.status,
                resp.request_id,
                "create succeeded but returned no machine id",
            )),
            Err(e) => Err(ambiguous(resp.status, resp.request_id, e.message())),
        }
    }

    pub async fn get_machine(&self, app: &str, id: &str) -> Result<Machine, FlyError> {
        let req = Request::new(Action::GetMachine, Method::GET, &["apps", app, "machines", id], id);
        machine_with_id(&self.inner.send(&req).await?, id)
    }

    /// Replaces the whole config (set `current_version` for optimistic concurrency).
    pub async fn update_machine(
        &self,
        app: &str,
        id: &str,
        req: &CreateMachineRequest,
    ) -> Result<Machine, FlyError> {
        let r =
            Request::new(Action::UpdateMachine, Method::POST, &["apps", app, "machines", id], id)
                .json(req)?;
        machine_with_id(&self.inner.send(&r).await?, id)
    }

    pub async fn start_machine(&self, app: &str, id: &str) -> Result<(), FlyError> {
        let req = Request::new(
            Action::StartMachine,
            Method::POST,
            &["apps", app, "machines", id, "start"],
            id,
        );
        self.inner.send(&req).await.map(drop)
    }

    pub async fn stop_machine(&self, app: &str, id: &str) -> Result<(), FlyError> {
        let req = Request::new(
            Action::StopMachine,
            Method::POST,
            &["apps", app, "machines", id, "stop"],
            id,
        );
        self.inner.send(&req).await.map(drop)
    }

    /// `force=true` kills a running machine (the spec's flag; fly-go sends `kill=true`).
    pub async fn destroy_machine(&self, app: &str, id: &str, force: bool) -> Result<(), FlyError> {
        let mut req = Request::new(
            Action::DestroyMachine,
            Method::DELETE,
            &["apps", app, "machines", id],
            id,
        );
        if force {
            req.query.push(("force".into(), "true".to_owned()));
        }
        self.inner.send(&req).await.map(drop)
    }

    /// Wait until the machine is in `state`, looping `/wait` calls of at most 60 s each
    /// until `total` has passed. A 408 means "not yet". At least one call is made.
    /// Waiting for `destroyed` on a machine that is gone (404) counts as reached.
    pub async fn wait_machine(
        &self,
        app: &str,
        id: &str,
        state: &MachineState,
        instance_id: Option<&str>,
        total: Duration,
    ) -> Result<WaitOutcome, FlyError> {
        let far = Duration::from_secs(365 * 24 * 3600);
        let deadline = Instant::now() + total.min(far);
        let pauses = Backoff { base: WAIT_PAUSE_MIN, cap: WAIT_PAUSE_MAX };
        let mut waited = 0;
        loop {
            let secs = wait_secs(deadline.saturating_duration_since(Instant::now()));
            let started = Instant::now();
            match self.wait_once(app, id, state, instance_id, secs).await {
                Ok(reached) => return Ok(WaitOutcome::Reached { state: reached }),
                Err(FlyError::NotFound(_)) if *state == MachineState::Destroyed => {
                    return Ok(WaitOutcome::Reached { state: MachineState::Destroyed });
                }
                Err(FlyError::Timeout(_)) => {}
                Err(e) => return Err(e),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(WaitOutcome::TimedOut);
            }
            if started.elapsed() < Duration::from_secs(secs) {
                tokio::time::sleep(pauses.ceiling(waited).min(remaining)).await;
                waited += 1;
            }
        }
    }

    async fn wait_once(
        &self,
        app: &str,
        id: &str,
        state: &MachineState,
        instance_id: Option<&str>,
        secs: u64,
    ) -> Result<MachineState, FlyError> {
        let mut req = Request::new(
            Action::WaitMachine,
            Method::GET,
            &["apps", app, "machines", id, "wait"],
            id,
        );
        req.query.push(("state".into(), state.to_string()));
        req.query.push(("timeout".into(), secs.to_string()));
        if let Some(v) = instance_id {
            // `version` is the current name, `instance_id` the deprecated one.
            req.query.push(("version".into(), v.to_owned()));
            req.query.push(("instance_id".into(), v.to_owned()));
        }
        req.timeout = Some(Duration::from_secs(secs) + WAIT_SLACK);
        let resp: WaitResponse = self.inner.send(&req).await?.json("wait response")?;
        Ok(resp.state.filter(|s| !s.is_empty()).map_or_else(|| state.clone(), MachineState::from))
    }

    /// `GET /orgs/{org}/machines`: one page of machines across every app of the org.
    pub async fn list_org_machines(
        &self,
        org: &str,
        updated_after: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<OrgMachinesPage, FlyError> {
        let mut req =
            Request::new(Action::ListOrgMachines, Method::GET, &["orgs", org, "machines"], org);
        if let Some(t) = updated_after {
            req.query
                .push(("updated_after".into(), t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
        }
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            req.query.push(("cursor".into(), c.to_owned()));
        }
        // Destroyed machines are exactly the drift a controller must see.
        req.query.push(("include_deleted".into(), "true".into()));
        self.inner.send(&req).await?.json("org machine page")
    }
}

/// The `/wait` timeout for the remaining budget: whole seconds rounded up, within 1..=60.
fn wait_secs(remaining: Duration) -> u64 {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    secs.clamp(1, MAX_WAIT_SECS)
}

fn machine_with_id(resp: &super::transport::Response, id: &str) -> Result<Machine, FlyError> {
    let mut m: Machine = resp.json("machine")?;
    if m.id.is_empty() {
        id.clone_into(&mut m.id);
    }
    Ok(m)
}

fn ambiguous(status: u16, request_id: Option<String>, message: &str) -> FlyError {
    FlyError::AmbiguousCreate(super::ErrorInfo {
        status: Some(status),
        request_id,
        code: None,
        call: Some("create_machine"),
        message: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_seconds_are_clamped_and_rounded_up() {
        assert_eq!(wait_secs(Duration::ZERO), 1);
        assert_eq!(wait_secs(Duration::from_millis(1)), 1);
        assert_eq!(wait_secs(Duration::from_millis(1500)), 2);
        assert_eq!(wait_secs(Duration::from_secs(60)), 60);
        assert_eq!(wait_secs(Duration::from_secs(300)), 60);
    }

    #[test]
    fn config_default_and_debug_hide_token() {
        let cfg = FlyClientConfig {
            token: Secret::new("fm2_do_not_print"),
            ..FlyClientConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("fm2_do_not_print"));
        let client = FlyClient::new(cfg, None).unwrap();
        assert!(!format!("{client:?}").contains("fm2_do_not_print"));
    }
}
