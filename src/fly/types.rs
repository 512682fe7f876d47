//! Request and response types. Decoding is lenient throughout: every field has a default,
//! unknown fields are ignored (or kept in `extra` where a config must round-trip), states
//! and autostop values are free-form, and Go-style `null` collections decode as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::lenient::{bool_like, machine_state, nullable, opt_i64, opt_string, string, string_map};
use crate::model::MachineState;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct App {
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(deserialize_with = "string")]
    pub name: String,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient_object", skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
    /// The app's 6PN private network (`default` or empty: the org's shared network).
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl App {
    /// On the org's shared private network (created without a `network` of its own).
    pub fn on_shared_network(&self) -> bool {
        self.network.as_deref().is_none_or(|n| n.is_empty() || n == "default")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Organization {
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Kind of public IP to allocate; only the free kinds are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpType {
    SharedV4,
    V6,
}

impl IpType {
    pub fn as_str(self) -> &'static str {
        match self {
            IpType::SharedV4 => "shared_v4",
            IpType::V6 => "v6",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpAssignment {
    #[serde(deserialize_with = "string")]
    pub ip: String,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(deserialize_with = "bool_like")]
    pub shared: bool,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

impl IpAssignment {
    pub fn is_v6(&self) -> bool {
        self.ip.contains(':')
    }

    pub fn is_shared_v4(&self) -> bool {
        self.shared && self.ip.contains('.')
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    #[serde(deserialize_with = "string")]
    pub id: String,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unknown states are kept verbatim (`MachineState::Other`).
    #[serde(deserialize_with = "machine_state")]
    pub state: MachineState,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(deserialize_with = "lenient_config", skip_serializing_if = "Option::is_none")]
    pub config: Option<MachineConfig>,
    #[serde(deserialize_with = "lenient_vec")]
    pub events: Vec<MachineEvent>,
    #[serde(deserialize_with = "lenient_vec")]
    pub checks: Vec<CheckStatus>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl Machine {
    pub fn metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.config.as_ref().map(|c| &c.metadata)
    }

    /// Neither `destroying` nor `destroyed` (what fly-go's `ListActive` keeps).
    pub fn is_active(&self) -> bool {
        self.state.is_active()
    }

    /// `request.exit_event` of the newest `exit` event.
    fn last_exit_event(&self) -> Option<&Value> {
        let newest = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == "exit")
            // Newest by timestamp; on ties prefer the earlier entry (Fly lists newest first).
            .max_by_key(|(i, e)| (e.timestamp.unwrap_or(i64::MIN), std::cmp::Reverse(*i)))?
            .1;
        newest.request.as_ref()?.get("exit_event")
    }

    /// Exit code of the newest `exit` event (`request.exit_event.exit_code`).
    pub fn last_exit_code(&self) -> Option<i64> {
        let code = self.last_exit_event()?.get("exit_code")?;
        code.as_i64().or_else(|| code.as_f64().map(|f| f as i64))
    }

    /// The newest `exit` event says the kernel killed the machine's process for memory
    /// (`request.exit_event.oom_killed`).
    pub fn last_exit_oom_killed(&self) -> bool {
        self.last_exit_event()
            .and_then(|e| e.get("oom_killed"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// At least one check result and every one `passing`.
    pub fn checks_passing(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.status == "passing")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineEvent {
    #[serde(rename = "type", deserialize_with = "string")]
    pub kind: String,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Unix milliseconds.
    #[serde(deserialize_with = "opt_i64", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckStatus {
    #[serde(deserialize_with = "string")]
    pub name: String,
    #[serde(deserialize_with = "string")]
    pub status: String,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineConfig {
    #[serde(deserialize_with = "string")]
    pub image: String,
    #[serde(deserialize_with = "string_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<MachineService>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Value>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub guest: Option<Guest>,
    #[serde(deserialize_with = "string_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_destroy: Option<bool>,
    /// Every other config field (init, mounts, files, …), kept so a config round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl MachineConfig {
    /// Decode a config; if some field has an unexpected shape, keep image, env and
    /// metadata typed and everything else verbatim in `extra`.
    pub fn from_value_lenient(value: Value) -> Option<MachineConfig> {
        let Value::Object(mut obj) = value else { return None };
        if let Ok(cfg) = serde_json::from_value(Value::Object(obj.clone())) {
            return Some(cfg);
        }
        let mut take = |k: &str| obj.remove(k).unwrap_or(Value::Null);
        let image = take("image").as_str().unwrap_or_default().to_owned();
        let env = string_map(take("env")).unwrap_or_default();
        let metadata = string_map(take("metadata")).unwrap_or_default();
        Some(MachineConfig { image, env, metadata, extra: obj, ..MachineConfig::default() })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineService {
    #[serde(deserialize_with = "string")]
    pub protocol: String,
    #[serde(deserialize_with = "nullable")]
    pub internal_port: u16,
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ServicePort>,
    /// `"off" | "stop" | "suspend"` or a legacy boolean; see [`MachineService::autostop_mode`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostop: Option<Value>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub min_machines_running: Option<u32>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ServiceCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Value>,
}

impl MachineService {
    /// Normalised autostop: `true` → `stop`, `false` → `off`, strings as sent.
    pub fn autostop_mode(&self) -> Option<&str> {
        match self.autostop.as_ref()? {
            Value::Bool(true) => Some("stop"),
            Value::Bool(false) => Some("off"),
            Value::String(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServicePort {
    /// 0 when the port is given as a `start_port`/`end_port` range (not modelled).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub port: u16,
    #[serde(deserialize_with = "nullable")]
    pub handlers: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub force_https: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceCheck {
    #[serde(rename = "type", deserialize_with = "string")]
    pub type_: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Headers sent with an http check (`fly.MachineHTTPHeader`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// One header of an http service check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpHeader {
    #[serde(deserialize_with = "string")]
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "string")]
    pub policy: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guest {
    #[serde(deserialize_with = "string")]
    pub cpu_kind: String,
    #[serde(deserialize_with = "nullable")]
    pub cpus: u32,
    #[serde(deserialize_with = "nullable")]
    pub memory_mb: u32,
}

/// Body of machine create and update (`current_version` is for updates only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateMachineRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub config: MachineConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_launch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The machine waits for at least this secrets version (the one a secrets update returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_secrets_version: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgMachinesPage {
    #[serde(deserialize_with = "lenient_vec")]
    pub machines: Vec<OrgMachine>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgMachine {
    #[serde(deserialize_with = "string")]
    pub id: String,
    #[serde(deserialize_with = "string")]
    pub app_name: String,
    #[serde(deserialize_with = "machine_state")]
    pub state: MachineState,
    #[serde(deserialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(deserialize_with = "lenient_config", skip_serializing_if = "Option::is_none")]
    pub config: Option<MachineConfig>,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

fn lenient_config<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MachineConfig>, D::Error> {
    Ok(MachineConfig::from_value_lenient(Value::deserialize(d)?))
}

/// An object that fails to decode becomes `None` instead of failing the parent.
fn lenient_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// A list whose undecodable elements are skipped; `null` or a non-list is empty.
pub(crate) fn lenient_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let Value::Array(items) = Value::deserialize(d)? else { return Ok(Vec::new()) };
    Ok(items.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect())
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
