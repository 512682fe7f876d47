//! Machine endpoints on the world: create, list, get, update, lifecycle actions, org listing.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult, Reply};
use super::fault::Action;
use super::lifecycle::NewMachine;
use super::machine::{MState, Machine};
use super::query::Query;
use super::world::{App, World};

const DEFAULT_REGION: &str = "iad";
const ORG_PAGE_MAX: usize = 1000;
/// An image whose reference contains this cannot be pulled: create/update answer 422.
pub(crate) const UNPULLABLE: &str = "sim-unpullable";

fn config_of(body: &Value) -> Result<Value, ApiError> {
    let config = body.get("config").filter(|c| c.is_object()).cloned();
    let config = config.ok_or_else(|| ApiError::invalid("config is required"))?;
    let image = config.get("image").and_then(Value::as_str).unwrap_or_default();
    if image.is_empty() {
        return Err(ApiError::invalid("config.image is required"));
    }
    if image.contains(UNPULLABLE) {
        return Err(ApiError::new(
            422,
            format!("failed to resolve image {image:?}: manifest unknown (image not found)"),
        ));
    }
    Ok(config)
}

/// 409 if an active machine of the app already has this name.
fn name_clash(app: &App, name: &str) -> Option<ApiError> {
    let clash = app.machines.values().find(|m| m.is_active() && m.name == name)?;
    Some(ApiError::new(
        409,
        format!(
            "unique machine name violation, machine ID {} already exists with name {:?}",
            clash.id, clash.name
        ),
    ))
}

fn lease_ttl(body: &Value) -> Option<u64> {
    body.get("lease_ttl").and_then(Value::as_u64).filter(|ttl| *ttl > 0)
}

impl World {
    /// `POST /v1/apps/{app}/machines` → 200 with the machine in `created`.
    pub(crate) fn create_machine(&mut self, app: &str, body: &Value, now: Instant) -> ApiResult {
        let config = config_of(body)?;
        let field = |k: &str| body.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let requested = field("name").map(str::to_owned);
        let region = field("region").unwrap_or(DEFAULT_REGION).to_owned();
        let env = self.env;
        let target = self.app(app, now)?;
        if let Some(clash) = requested.as_deref().and_then(|n| name_clash(target, n)) {
            return Err(clash);
        }
        let name = requested.unwrap_or_else(|| self.ids.machine_name());
        let new = NewMachine {
            app: app.to_owned(),
            name,
            region,
            config,
            skip_launch: body.get("skip_launch").and_then(Value::as_bool).unwrap_or(false),
        };
        let mut machine = Machine::launch(new, now, &env, &mut self.ids);
        let nonce = lease_ttl(body).map(|ttl| {
            let nonce = self.ids.hex(12);
            machine.grant_lease(nonce.clone(), ttl, "", now);
            nonce
        });
        let mut json = machine.to_json(&env, false);
        if let Some(nonce) = nonce {
            json["nonce"] = Value::from(nonce);
        }
        self.app(app, now)?.machines.insert(machine.id.clone(), machine);
        self.counters.machines_created_total += 1;
        Ok(Reply::ok(json))
    }

    /// `GET /v1/apps/{app}/machines` with `include_deleted`, `state`, `region`, `summary` and
    /// `metadata.<k>=<v>` filters. Recently destroyed machines still show up, as on Fly.
    pub(crate) fn list_machines(&mut self, app: &str, q: &Query, now: Instant) -> ApiResult {
        let env = self.env;
        let include_deleted = q.flag("include_deleted");
        let states = q.list("state");
        let region = q.get("region").filter(|r| !r.is_empty());
        let metadata = q.metadata_filters();
        let app = self.app(app, now)?;
        let mut machines: Vec<&mut Machine> = app.machines.values_mut().collect();
        machines.iter_mut().for_each(|m| m.settle(now, &env));
        machines.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let list: Vec<Value> = machines
            .iter()
            .filter(|m| include_deleted || !m.is_gone(now))
            .filter(|m| states.is_empty() || states.iter().any(|s| s == m.state.as_str()))
            .filter(|m| region.is_none_or(|r| r == m.region))
            .filter(|m| {
                metadata.iter().all(|(k, v)| {
                    m.config.pointer(&format!("/metadata/{k}")).and_then(Value::as_str) == Some(v)
                })
            })
            .map(|m| m.to_json(&env, q.flag("summary")))
            .collect();
        Ok(Reply::ok(Value::Array(list)))
    }

    /// `GET /v1/apps/{app}/machines/{id}`.
    pub(crate) fn get_machine(&mut self, app: &str, id: &str, now: Instant) -> ApiResult {
        let env = self.env;
        Ok(Reply::ok(self.machine(app, id, now)?.to_json(&env, false)))
    }

    /// `POST /v1/apps/{app}/machines/{id}`: whole new config, new `instance_id`, same id.
    pub(crate) fn update_machine(
        &mut self,
        (app, id): (&str, &str),
        body: &Value,
        nonce: Option<&str>,
        now: Instant,
    ) -> ApiResult {
        let env = self.env;
        let config = config_of(body)?;
        let skip_launch = body.get("skip_launch").and_then(Value::as_bool).unwrap_or(false);
        let machine = self.machine(app, id, now)?;
        if machine.state == MState::Destroyed {
            return Err(ApiError::machine_not_found());
        }
        machine.check_lease(nonce, &env)?;
        let expected =
            body.get("current_version").and_then(Value::as_str).filter(|v| !v.is_empty());
        if let Some(expected) = expected.filter(|v| *v != machine.instance_id) {
            return Err(ApiError::precondition(format!(
                "machine version mismatch: current_version {expected} is not the machine's \
                 current version {}",
                machine.instance_id
            )));
        }
        machine.update(now, config, skip_launch, &env)?;
        Ok(Reply::ok(machine.to_json(&env, false)))
    }

    /// start / stop / suspend / restart / destroy, honouring leases.
    pub(crate) fn machine_action(
        &mut self,
        (app, id): (&str, &str),
        action: Action,
        q: &Query,
        nonce: Option<&str>,
        now: Instant,
    ) -> ApiResult {
        let env = self.env;
        let machine = self.machine(app, id, now)?;
        if action == Action::DestroyMachine && machine.state == MState::Destroyed {
            return Err(ApiError::machine_not_found());
        }
        machine.check_lease(nonce, &env)?;
        let body = match action {
            Action::StartMachine => machine.start(now, &env),
            Action::StopMachine => machine.stop(now, &env),
            Action::SuspendMachine => machine.suspend(now, &env),
            Action::RestartMachine => machine.restart(now, &env),
            Action::DestroyMachine => {
                let force = q.flag("force") || q.flag("kill");
                machine.destroy(now, force, &env)
            }
            _ => Err(ApiError::new(405, "method not allowed")),
        }?;
        Ok(Reply::ok(body))
    }

    /// `GET /v1/orgs/{org}/machines`: every machine of the org, sorted by `updated_at` then id,
    /// paged with an opaque `cursor`.
    pub(crate) fn org_machines(&mut self, org: &str, q: &Query, now: Instant) -> ApiResult {
        self.check_org(org)?;
        let page = OrgPage::parse(q)?;
        self.settle_all(now);
        let clock = self.env.clock;
        let mut all: Vec<(u128, &Machine)> = self
            .apps
            .values()
            .flat_map(|a| a.machines.values())
            .filter(|m| page.include_deleted || m.is_active())
            .filter(|m| page.states.is_empty() || page.states.iter().any(|s| s == m.state.as_str()))
            .filter(|m| {
                let updated_ms = clock.unix_ms(m.updated);
                page.after.is_none_or(|t| updated_ms > t.timestamp_millis())
            })
            .map(|m| (clock.rel_nanos(m.updated), m))
            .collect();
        all.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        let start = page.cursor.as_ref().map_or(0, |(n, id)| {
            all.partition_point(|(t, m)| (*t, m.id.as_str()) <= (*n, id.as_str()))
        });
        let items: Vec<&(u128, &Machine)> = all.iter().skip(start).take(page.limit).collect();
        let more = start + items.len() < all.len();
        let machines: Vec<Value> =
            items.iter().map(|(_, m)| org_item(m, &clock, page.summary)).collect();
        let last = items.last();
        let mut body = json!({
            "machines": machines,
            "last_machine_id": last.map(|(_, m)| m.id.clone()),
            "last_updated_at": last.map(|(_, m)| clock.rfc3339(m.updated)),
            "error_regions": [],
        });
        if let (true, Some((nanos, m))) = (more, last) {
            body["next_cursor"] = Value::from(format!("{nanos}:{}", m.id));
        }
        Ok(Reply::ok(body))
    }
}

/// Query parameters of the org-wide machine listing.
struct OrgPage {
    after: Option<chrono::DateTime<chrono::FixedOffset>>,
    cursor: Option<(u128, String)>,
    limit: usize,
    states: Vec<String>,
    include_deleted: bool,
    summary: bool,
}

impl OrgPage {
    fn parse(q: &Query) -> Result<Self, ApiError> {
        let nonempty = |k: &str| q.get(k).filter(|s| !s.is_empty());
        let after = nonempty("updated_after")
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(s).map_err(|_| {
                    ApiError::invalid(format!("invalid updated_after {s:?}: expected RFC 3339"))
                })
            })
            .transpose()?;
        let cursor = nonempty("cursor")
            .map(|c| parse_cursor(c).ok_or_else(|| ApiError::invalid("invalid cursor")))
            .transpose()?;
        let limit = nonempty("limit")
            .map(|l| l.parse::<usize>().map_err(|_| ApiError::invalid("invalid limit")))
            .transpose()?
            .unwrap_or(ORG_PAGE_MAX)
            .clamp(1, ORG_PAGE_MAX);
        Ok(Self {
            after,
            cursor,
            limit,
            states: q.list("state"),
            include_deleted: q.flag("include_deleted"),
            summary: q.flag("summary"),
        })
    }
}

fn parse_cursor(cursor: &str) -> Option<(u128, String)> {
    let (nanos, id) = cursor.split_once(':')?;
    Some((nanos.parse().ok()?, id.to_owned()))
}

fn org_item(m: &Machine, clock: &super::ids::SimClock, summary: bool) -> Value {
    let mut item = json!({
        "id": m.id, "name": m.name, "app_name": m.app, "state": m.state.as_str(),
        "region": m.region, "instance_id": m.instance_id, "version": m.instance_id,
        "private_ip": m.private_ip, "created_at": clock.rfc3339(m.created),
        "updated_at": clock.rfc3339(m.updated),
    });
    if !summary {
        item["config"] = m.config.clone();
    }
    item
}
