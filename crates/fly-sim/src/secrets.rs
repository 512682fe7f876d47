//! App secrets (`/v1/apps/{app}/secrets`), as the spec has them: every change makes a new
//! version, values are never returned (a digest is), and a machine sees the values of the
//! version it booted with (create, update, start or restart), like Fly's machines reading
//! secrets at boot. Machines may ask for at least a version (`min_secrets_version`).

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult, Reply};
use super::secret_store::valid_name;
use super::world::World;

impl World {
    fn secrets_reply(&mut self, app: &str, now: Instant, status: u16) -> ApiResult {
        self.app(app, now)?;
        let secrets = &self.apps.get(app).ok_or_else(ApiError::app_not_found)?.secrets;
        let items: Vec<Value> =
            secrets.values.iter().map(|(k, s)| secrets.json(&self.env.clock, k, s)).collect();
        Ok(Reply::with_status(status, json!({"secrets": items, "version": secrets.version})))
    }

    /// `GET /v1/apps/{app}/secrets`: names and digests, never values.
    pub(crate) fn list_secrets(&mut self, app: &str, now: Instant) -> ApiResult {
        self.secrets_reply(app, now, 200)
    }

    /// `POST /v1/apps/{app}/secrets` `{"values": {"NAME": "value", "OLD": null}}`: one new
    /// version for the whole change (null unsets); nothing changes if any entry is invalid.
    pub(crate) fn update_secrets(&mut self, app: &str, body: &Value, now: Instant) -> ApiResult {
        let Some(values) = body.get("values").and_then(Value::as_object) else {
            return Err(ApiError::invalid("values is required"));
        };
        if let Some(bad) = values.keys().find(|k| !valid_name(k)) {
            return Err(ApiError::invalid(format!("invalid secret name {bad:?}")));
        }
        if values.values().any(|v| !(v.is_null() || v.is_string())) {
            return Err(ApiError::invalid("secret values must be strings or null"));
        }
        let secrets = &mut self.app(app, now)?.secrets;
        for (name, v) in values {
            match v.as_str() {
                Some(value) => secrets.set(name, value, now),
                None => drop(secrets.values.remove(name)),
            }
        }
        secrets.version += 1;
        self.secrets_reply(app, now, 200)
    }

    /// `POST /v1/apps/{app}/secrets/{name}` `{"value": "…"}` → 201 with the new version.
    pub(crate) fn set_secret(
        &mut self,
        ids: (&str, &str),
        body: &Value,
        now: Instant,
    ) -> ApiResult {
        let (app, name) = ids;
        let Some(value) = body.get("value").and_then(Value::as_str) else {
            return Err(ApiError::invalid("value is required"));
        };
        if !valid_name(name) {
            return Err(ApiError::invalid(format!("invalid secret name {name:?}")));
        }
        let secrets = &mut self.app(app, now)?.secrets;
        secrets.set(name, value, now);
        secrets.version += 1;
        let (version, s) = (secrets.version, secrets.values[name].clone());
        let mut reply = self.apps[app].secrets.json(&self.env.clock, name, &s);
        reply["version"] = json!(version);
        Ok(Reply::with_status(201, reply))
    }

    /// `GET /v1/apps/{app}/secrets/{name}`: its digest, never its value.
    pub(crate) fn get_secret(&mut self, ids: (&str, &str), now: Instant) -> ApiResult {
        let (app, name) = ids;
        let s = self.app(app, now)?.secrets.values.get(name).cloned();
        let s = s.ok_or_else(|| ApiError::new(404, "secret not found"))?;
        Ok(Reply::with_status(200, self.apps[app].secrets.json(&self.env.clock, name, &s)))
    }

    /// `DELETE /v1/apps/{app}/secrets/{name}` → the new version.
    pub(crate) fn delete_secret(&mut self, ids: (&str, &str), now: Instant) -> ApiResult {
        let (app, name) = ids;
        let secrets = &mut self.app(app, now)?.secrets;
        if secrets.values.remove(name).is_none() {
            return Err(ApiError::new(404, "secret not found"));
        }
        secrets.version += 1;
        Ok(Reply::with_status(200, json!({"version": secrets.version})))
    }

    /// A machine create/update asking for `min_secrets_version` newer than the app has.
    pub(crate) fn check_secrets_version(
        &mut self,
        app: &str,
        body: &Value,
        now: Instant,
    ) -> Result<(), ApiError> {
        let Some(min) = body.get("min_secrets_version").and_then(Value::as_u64) else {
            return Ok(());
        };
        let have = self.app(app, now)?.secrets.version;
        if min > have {
            let msg = format!(
                "min_secrets_version {min} is newer than the app's secrets (version {have})"
            );
            return Err(ApiError::invalid(msg));
        }
        Ok(())
    }
}
