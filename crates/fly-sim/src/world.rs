//! The simulated Fly state: apps (global name namespace), their IPs and machines.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult, Reply};
use super::ids::IdGen;
use super::machine::{Env, Machine};
use super::secret_store::Secrets;

#[derive(Debug)]
pub(crate) struct IpAssignment {
    pub ip: String,
    pub kind: String,
    pub region: String,
    pub shared: bool,
    pub created: Instant,
    pub service_name: String,
    pub network: Option<String>,
}

#[derive(Debug)]
pub(crate) struct App {
    pub id: String,
    pub name: String,
    pub numeric_id: u64,
    pub created: Instant,
    pub visible_at: Instant,
    pub network: String,
    pub machines: BTreeMap<String, Machine>,
    pub ips: Vec<IpAssignment>,
    pub secrets: Secrets,
}

impl App {
    pub(crate) fn active_machines(&self) -> usize {
        self.machines.values().filter(|m| m.is_active()).count()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counters {
    pub apps_created_total: u64,
    pub machines_created_total: u64,
    pub duplicate_apps: u64,
}

#[derive(Debug)]
pub(crate) struct World {
    pub org: String,
    pub foreign: HashSet<String>,
    pub apps: BTreeMap<String, App>,
    pub env: Env,
    pub visibility: Duration,
    pub ids: IdGen,
    pub counters: Counters,
    next_numeric: u64,
}

const ORG_NUMERIC_ID: u64 = 718_200;
const NAME_RULE: &str =
    "Validation failed: Name under 63 chars using numbers, lowercase letters and dashes";

/// Fly app names: lowercase letters, digits and dashes, under 63 characters.
pub(crate) fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 63
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl World {
    pub(crate) fn new(
        org: String,
        foreign: HashSet<String>,
        env: Env,
        visibility: Duration,
        seed: u64,
    ) -> Self {
        Self {
            org,
            foreign,
            apps: BTreeMap::new(),
            env,
            visibility,
            ids: IdGen::new(seed),
            counters: Counters::default(),
            next_numeric: 1_000_000,
        }
    }

    pub(crate) fn check_org(&self, slug: &str) -> Result<(), ApiError> {
        if slug == self.org { Ok(()) } else { Err(ApiError::unauthorized()) }
    }

    /// An app visible to us: 403 for another org's name, 404 if missing or not visible yet.
    pub(crate) fn app(&mut self, name: &str, now: Instant) -> Result<&mut App, ApiError> {
        if self.foreign.contains(name) {
            return Err(ApiError::unauthorized());
        }
        match self.apps.get_mut(name) {
            Some(app) if app.visible_at <= now => Ok(app),
            _ => Err(ApiError::app_not_found()),
        }
    }

    /// A machine (settled to `now`); 404 once it has been destroyed for a while.
    pub(crate) fn machine(
        &mut self,
        app: &str,
        id: &str,
        now: Instant,
    ) -> Result<&mut Machine, ApiError> {
        let env = self.env;
        let machine =
            self.app(app, now)?.machines.get_mut(id).ok_or_else(ApiError::machine_not_found)?;
        machine.settle(now, &env);
        if machine.is_gone(now) {
            return Err(ApiError::machine_not_found());
        }
        Ok(machine)
    }

    pub(crate) fn settle_all(&mut self, now: Instant) {
        let env = self.env;
        for machine in self.apps.values_mut().flat_map(|a| a.machines.values_mut()) {
            machine.settle(now, &env);
        }
    }

    pub(crate) fn app_json(&self, app: &App) -> Value {
        let org_name =
            if self.org == "personal" { "Personal".to_owned() } else { self.org.clone() };
        let machine_count = app.active_machines();
        json!({
            "id": app.id,
            "name": app.name,
            "status": if machine_count == 0 { "pending" } else { "deployed" },
            "organization": {"name": org_name, "slug": self.org, "internal_numeric_id": ORG_NUMERIC_ID},
            "network": app.network,
            "machine_count": machine_count,
            "volume_count": 0,
            "internal_numeric_id": app.numeric_id,
            "created_at": self.env.clock.unix_ms(app.created),
        })
    }

    /// Inserts a new app in our org (the name must already be checked free).
    pub(crate) fn insert_app(
        &mut self,
        name: &str,
        network: &str,
        now: Instant,
        visible_at: Instant,
    ) {
        self.next_numeric += 1;
        let app = App {
            id: self.ids.app_id(),
            name: name.to_owned(),
            numeric_id: self.next_numeric,
            created: now,
            visible_at,
            network: network.to_owned(),
            machines: BTreeMap::new(),
            ips: Vec::new(),
            secrets: Secrets::default(),
        };
        if self.apps.insert(name.to_owned(), app).is_some() {
            self.counters.duplicate_apps += 1;
        }
    }

    /// `POST /v1/apps`.
    pub(crate) fn create_app(&mut self, body: &Value, now: Instant) -> ApiResult {
        let field = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = field("name").or_else(|| field("app_name")).unwrap_or_default().to_owned();
        let Some(org) = field("org_slug") else {
            return Err(ApiError::invalid("org_slug is required"));
        };
        self.check_org(org)?;
        if !valid_app_name(&name) {
            return Err(ApiError::new(422, NAME_RULE));
        }
        if self.foreign.contains(&name) || self.apps.contains_key(&name) {
            return Err(ApiError::with_code(
                422,
                "Validation failed: Name has already been taken",
                "name_taken",
            ));
        }
        let network = field("network").unwrap_or("default").to_owned();
        self.insert_app(&name, &network, now, now + self.visibility);
        self.counters.apps_created_total += 1;
        let app = self.apps.get(&name).ok_or_else(ApiError::app_not_found)?;
        Ok(Reply::with_status(201, self.app_json(app)))
    }

    /// `GET /v1/apps/{name}`.
    pub(crate) fn get_app(&mut self, name: &str, now: Instant) -> ApiResult {
        self.settle_all(now);
        self.app(name, now)?;
        let app = self.apps.get(name).ok_or_else(ApiError::app_not_found)?;
        Ok(Reply::ok(self.app_json(app)))
    }

    /// `GET /v1/apps?org_slug=…` (apps still inside their visibility window are not listed).
    pub(crate) fn list_apps(&mut self, org: Option<&str>, now: Instant) -> ApiResult {
        let org = org
            .filter(|o| !o.is_empty())
            .ok_or_else(|| ApiError::invalid("org_slug is required"))?;
        self.check_org(org)?;
        self.settle_all(now);
        let apps: Vec<Value> =
            self.apps.values().filter(|a| a.visible_at <= now).map(|a| self.app_json(a)).collect();
        Ok(Reply::ok(json!({"total_apps": apps.len(), "apps": apps})))
    }

    /// `DELETE /v1/apps/{name}`: 202, every machine destroyed, the name free again.
    pub(crate) fn delete_app(&mut self, name: &str, now: Instant) -> ApiResult {
        self.app(name, now)?;
        self.remove_app(name, now);
        Ok(Reply::empty(202))
    }

    pub(crate) fn remove_app(&mut self, name: &str, now: Instant) -> bool {
        let env = self.env;
        let Some(mut app) = self.apps.remove(name) else { return false };
        for machine in app.machines.values_mut() {
            machine.settle(now, &env);
            if machine.is_active() {
                machine.destroy_now(now, "user", &env);
            }
        }
        true
    }

    /// `GET /v1/apps/{app}/ip_assignments`.
    pub(crate) fn list_ips(&mut self, app: &str, now: Instant) -> ApiResult {
        let clock = self.env.clock;
        let app = self.app(app, now)?;
        let ips: Vec<Value> = app.ips.iter().map(|ip| ip_json(ip, &clock)).collect();
        Ok(Reply::ok(json!({"ips": ips})))
    }

    /// `POST /v1/apps/{app}/ip_assignments`.
    pub(crate) fn assign_ip(&mut self, app: &str, body: &Value, now: Instant) -> ApiResult {
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = field("type");
        let (shared, ip) = self.new_ip(&kind)?;
        let org = self.org.clone();
        let clock = self.env.clock;
        let target = self.app(app, now)?;
        if shared && let Some(existing) = target.ips.iter().find(|i| i.shared) {
            return Ok(Reply::ok(ip_json(existing, &clock)));
        }
        let region = field("region");
        let network = (kind == "private_v6").then(|| {
            let net = field("network");
            if net.is_empty() { target.network.clone() } else { net }
        });
        let assignment = IpAssignment {
            ip,
            region: if region.is_empty() || kind != "private_v6" {
                "global".into()
            } else {
                region
            },
            kind,
            shared,
            created: now,
            service_name: field("service_name"),
            network,
        };
        let mut json = ip_json(&assignment, &clock);
        if let Some(net) = &assignment.network {
            json["network"] = json!({"name": net, "org_slug": org});
        }
        target.ips.push(assignment);
        Ok(Reply::ok(json))
    }

    fn new_ip(&mut self, kind: &str) -> Result<(bool, String), ApiError> {
        Ok(match kind {
            "v6" => (false, self.ids.public_v6()),
            "shared_v4" => (true, self.ids.public_v4(true)),
            "v4" => (false, self.ids.public_v4(false)),
            "private_v6" => (false, self.ids.private_ip()),
            other => return Err(ApiError::invalid(format!("unsupported ip type {other:?}"))),
        })
    }

    /// `DELETE /v1/apps/{app}/ip_assignments/{ip}` → 204.
    pub(crate) fn delete_ip(&mut self, app: &str, ip: &str, now: Instant) -> ApiResult {
        let app = self.app(app, now)?;
        let before = app.ips.len();
        app.ips.retain(|i| i.ip != ip);
        if app.ips.len() == before {
            return Err(ApiError::new(404, "ip assignment not found"));
        }
        Ok(Reply::empty(204))
    }
}

fn ip_json(ip: &IpAssignment, clock: &super::ids::SimClock) -> Value {
    json!({"ip": ip.ip, "type": ip.kind, "region": ip.region, "service_name": ip.service_name,
           "shared": ip.shared, "created_at": clock.rfc3339(ip.created)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_name_rules() {
        assert!(valid_app_name("roseram-5aacab32"));
        assert!(valid_app_name(&"a".repeat(62)));
        assert!(!valid_app_name(&"a".repeat(63)));
        assert!(!valid_app_name("Upper"));
        assert!(!valid_app_name("under_score"));
        assert!(!valid_app_name(""));
        assert!(!valid_app_name("-leading"));
    }
}
