//! Routing: classify `(method, path)` into an [`Action`] with its ids, then dispatch.

use axum::http::Method;
use serde_json::Value;
use tokio::time::Instant;

use super::error::{ApiError, ApiResult};
use super::fault::Action;
use super::query::{Query, percent_decode};
use super::shared::{Shared, lock};
use super::wait;

/// A classified request: the action plus app name, machine id, and IP or org slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub action: Action,
    pub app: String,
    pub id: String,
    pub extra: String,
}

fn route(action: Action, app: &str, id: &str, extra: &str) -> Route {
    Route { action, app: app.to_owned(), id: id.to_owned(), extra: extra.to_owned() }
}

fn not_found() -> ApiError {
    ApiError::new(404, "not found")
}

fn not_allowed() -> ApiError {
    ApiError::new(405, "method not allowed")
}

/// Maps a request onto an action; 404 for unknown paths, 405 for unknown methods.
pub(crate) fn classify(method: &Method, path: &str) -> Result<Route, ApiError> {
    let rest = path.strip_prefix("/v1/").ok_or_else(not_found)?;
    let segs: Vec<String> = rest.trim_end_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let action = match (segs.as_slice(), m) {
        (["apps"], "GET") => route(Action::ListApps, "", "", ""),
        (["apps"], "POST") => route(Action::CreateApp, "", "", ""),
        (["apps", a], "GET") => route(Action::GetApp, a, "", ""),
        (["apps", a], "DELETE") => route(Action::DeleteApp, a, "", ""),
        (["apps", a, "ip_assignments"], "GET") => route(Action::ListIps, a, "", ""),
        (["apps", a, "ip_assignments"], "POST") => route(Action::AssignIp, a, "", ""),
        (["apps", a, "ip_assignments", ip], "DELETE") => route(Action::DeleteIp, a, "", ip),
        (["apps", a, "machines"], "GET") => route(Action::ListMachines, a, "", ""),
        (["apps", a, "machines"], "POST") => route(Action::CreateMachine, a, "", ""),
        (["apps", a, "machines", id], "GET") => route(Action::GetMachine, a, id, ""),
        (["apps", a, "machines", id], "POST") => route(Action::UpdateMachine, a, id, ""),
        (["apps", a, "machines", id], "DELETE") => route(Action::DestroyMachine, a, id, ""),
        (["apps", a, "machines", id, verb], _) => {
            machine_verb(verb, m).map(|v| route(v, a, id, ""))?
        }
        (["orgs", org, "machines"], "GET") => route(Action::OrgMachines, "", "", org),
        (["apps", a, "secrets"], "GET") => route(Action::ListSecrets, a, "", ""),
        (["apps", a, "secrets"], "POST") => route(Action::UpdateSecrets, a, "", ""),
        (["apps", a, "secrets", name], "GET") => route(Action::GetSecret, a, "", name),
        (["apps", a, "secrets", name], "POST") => route(Action::SetSecret, a, "", name),
        (["apps", a, "secrets", name], "DELETE") => route(Action::DeleteSecret, a, "", name),
        (["apps"] | ["apps", _] | ["apps", _, "ip_assignments" | "machines" | "secrets"], _)
        | (
            ["apps", _, "ip_assignments" | "machines" | "secrets", _] | ["orgs", _, "machines"],
            _,
        ) => {
            return Err(not_allowed());
        }
        _ => return Err(not_found()),
    };
    Ok(action)
}

fn machine_verb(verb: &str, method: &str) -> Result<Action, ApiError> {
    match (verb, method) {
        ("start", "POST") => Ok(Action::StartMachine),
        ("stop", "POST") => Ok(Action::StopMachine),
        ("suspend", "POST") => Ok(Action::SuspendMachine),
        ("restart", "POST") => Ok(Action::RestartMachine),
        ("wait", "GET") => Ok(Action::WaitMachine),
        ("exec", "POST") => Ok(Action::ExecMachine),
        ("lease", "GET" | "POST" | "DELETE") => Ok(Action::Lease),
        ("start" | "stop" | "suspend" | "restart" | "wait" | "lease" | "exec", _) => {
            Err(not_allowed())
        }
        _ => Err(not_found()),
    }
}

/// The identifier Fly's per-action limits are counted against.
pub(crate) fn rate_key<'a>(route: &'a Route, org: &'a str) -> &'a str {
    match route.action {
        Action::CreateApp | Action::ListApps | Action::DeleteApp => org,
        Action::OrgMachines => &route.extra,
        _ if !route.id.is_empty() => &route.id,
        _ => &route.app,
    }
}

/// The request, decoded, as handlers see it.
pub(crate) struct Call<'a> {
    pub route: &'a Route,
    pub method: &'a Method,
    pub query: &'a Query,
    pub nonce: Option<&'a str>,
    pub body: &'a Value,
}

/// Runs the handler for a classified, authenticated, non-faulted request.
pub(crate) async fn dispatch(shared: &Shared, call: &Call<'_>) -> ApiResult {
    let r = call.route;
    if r.action == Action::WaitMachine {
        return wait::wait(shared, &r.app, &r.id, call.query).await;
    }
    if r.action == Action::ExecMachine {
        return super::exec::exec(shared, &r.app, &r.id, call.body).await;
    }
    let result = dispatch_sync(shared, call, Instant::now());
    if let Ok(reply) = &result {
        boot_secrets(shared, r, reply);
    }
    shared.changed.notify_waiters();
    result
}

/// A machine (re)booted by this call takes the app's current secrets.
fn boot_secrets(shared: &Shared, r: &Route, reply: &super::error::Reply) {
    use Action::{CreateMachine, RestartMachine, StartMachine, UpdateMachine};
    if !matches!(r.action, CreateMachine | UpdateMachine | StartMachine | RestartMachine) {
        return;
    }
    let id = reply.body.as_ref().and_then(|b| b.get("id")).and_then(Value::as_str);
    let id = id.unwrap_or(&r.id).to_owned();
    if let Some(app) = lock(&shared.world).apps.get_mut(&r.app) {
        app.secrets.boot(&id);
    }
}

fn dispatch_sync(shared: &Shared, call: &Call<'_>, now: Instant) -> ApiResult {
    let (r, q, nonce) = (call.route, call.query, call.nonce);
    let mut world = lock(&shared.world);
    let ids = (r.app.as_str(), r.id.as_str());
    match r.action {
        Action::CreateApp => world.create_app(call.body, now),
        Action::GetApp => world.get_app(&r.app, now),
        Action::ListApps => world.list_apps(q.get("org_slug"), now),
        Action::DeleteApp => world.delete_app(&r.app, now),
        Action::ListIps => world.list_ips(&r.app, now),
        Action::AssignIp => world.assign_ip(&r.app, call.body, now),
        Action::DeleteIp => world.delete_ip(&r.app, &r.extra, now),
        Action::ListMachines => world.list_machines(&r.app, q, now),
        Action::CreateMachine => world
            .check_secrets_version(&r.app, call.body, now)
            .and_then(|()| world.create_machine(&r.app, call.body, now)),
        Action::GetMachine => world.get_machine(&r.app, &r.id, now),
        Action::UpdateMachine => world
            .check_secrets_version(&r.app, call.body, now)
            .and_then(|()| world.update_machine(ids, call.body, nonce, now)),
        Action::ListSecrets => world.list_secrets(&r.app, now),
        Action::UpdateSecrets => world.update_secrets(&r.app, call.body, now),
        Action::GetSecret => world.get_secret((&r.app, &r.extra), now),
        Action::SetSecret => world.set_secret((&r.app, &r.extra), call.body, now),
        Action::DeleteSecret => world.delete_secret((&r.app, &r.extra), now),
        Action::Lease if *call.method == Method::POST => {
            world.acquire_lease(ids, q, call.body, nonce, now)
        }
        Action::Lease if *call.method == Method::DELETE => world.release_lease(ids, nonce, now),
        Action::Lease => world.get_lease(ids, now),
        Action::OrgMachines => world.org_machines(&r.extra, q, now),
        action => world.machine_action(ids, action, q, nonce, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(method: &Method, path: &str) -> Result<Action, u16> {
        classify(method, path).map(|r| r.action).map_err(|e| e.status)
    }

    #[test]
    fn classifies_fly_paths() {
        assert_eq!(action(&Method::POST, "/v1/apps"), Ok(Action::CreateApp));
        assert_eq!(action(&Method::GET, "/v1/apps/a/machines/m1/wait"), Ok(Action::WaitMachine));
        assert_eq!(action(&Method::DELETE, "/v1/apps/a/machines/m1/lease"), Ok(Action::Lease));
        assert_eq!(action(&Method::GET, "/v1/orgs/personal/machines"), Ok(Action::OrgMachines));
        let ip = classify(&Method::DELETE, "/v1/apps/a/ip_assignments/2a09%3A8280%3A1%3A%3A1");
        assert_eq!(ip.map(|r| r.extra), Ok("2a09:8280:1::1".to_owned()));
        assert_eq!(action(&Method::PUT, "/v1/apps/a"), Err(405));
        assert_eq!(action(&Method::GET, "/v1/apps/a/machines/m1/start"), Err(405));
        assert_eq!(action(&Method::GET, "/v1/volumes"), Err(404));
        assert_eq!(action(&Method::GET, "/apps"), Err(404));
    }
}
