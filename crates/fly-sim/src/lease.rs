//! Machine leases: `{status, data}` envelope, refresh by nonce, 409 on conflict, expiry.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult, Reply};
use super::machine::{Env, Lease, Machine};
use super::query::Query;
use super::world::World;

/// Who holds leases taken through the simulator (Fly reports the token's owner).
pub(crate) const LEASE_OWNER: &str = "sim-user@tokens.fly.io";
const DEFAULT_TTL_SECS: u64 = 30;

fn lease_json(lease: &Lease, env: &Env) -> Value {
    json!({"status": "success", "data": {
        "nonce": lease.nonce,
        "expires_at": env.clock.wall(lease.expires).timestamp(),
        "owner": lease.owner,
        "description": lease.description,
        "version": lease.version,
    }})
}

fn lease_not_found() -> ApiError {
    ApiError::new(404, "lease not found")
}

impl Machine {
    /// Gives this machine a fresh lease with `nonce`.
    pub(crate) fn grant_lease(&mut self, nonce: String, ttl: u64, description: &str, now: Instant) {
        self.lease = Some(Lease {
            nonce,
            expires: now + Duration::from_secs(ttl),
            owner: LEASE_OWNER.to_owned(),
            description: description.to_owned(),
            version: self.instance_id.clone(),
        });
    }
}

impl World {
    /// `POST …/lease` (`ttl` in the query or body; with the current nonce header: refresh).
    pub(crate) fn acquire_lease(
        &mut self,
        (app, id): (&str, &str),
        q: &Query,
        body: &Value,
        nonce: Option<&str>,
        now: Instant,
    ) -> ApiResult {
        let env = self.env;
        let ttl = match q.get("ttl").filter(|t| !t.is_empty()) {
            Some(t) => {
                t.parse::<u64>().map_err(|_| ApiError::invalid(format!("invalid ttl {t:?}")))?
            }
            None => body.get("ttl").and_then(Value::as_u64).unwrap_or(DEFAULT_TTL_SECS),
        }
        .max(1);
        let description = body.get("description").and_then(Value::as_str).unwrap_or_default();
        let fresh_nonce = self.ids.hex(12);
        let machine = self.machine(app, id, now)?;
        machine.check_lease(nonce, &env)?;
        match machine.lease.as_mut() {
            Some(lease) => {
                lease.expires = now + Duration::from_secs(ttl);
                lease.version = machine.instance_id.clone();
            }
            None => machine.grant_lease(fresh_nonce, ttl, description, now),
        }
        let json = machine.lease.as_ref().map(|l| lease_json(l, &env)).unwrap_or(Value::Null);
        Ok(Reply::with_status(201, json))
    }

    /// `GET …/lease`.
    pub(crate) fn get_lease(&mut self, (app, id): (&str, &str), now: Instant) -> ApiResult {
        let env = self.env;
        let machine = self.machine(app, id, now)?;
        let lease = machine.lease.as_ref().ok_or_else(lease_not_found)?;
        Ok(Reply::ok(lease_json(lease, &env)))
    }

    /// `DELETE …/lease` with the nonce header.
    pub(crate) fn release_lease(
        &mut self,
        (app, id): (&str, &str),
        nonce: Option<&str>,
        now: Instant,
    ) -> ApiResult {
        let env = self.env;
        let machine = self.machine(app, id, now)?;
        if machine.lease.is_none() {
            return Err(lease_not_found());
        }
        machine.check_lease(nonce, &env)?;
        machine.lease = None;
        Ok(Reply::ok(json!({"status": "success", "data": {"ok": true}})))
    }
}
