//! Builds the Fly machine config for one preview: the runner image, the repo to serve (as
//! environment values only, never in shell text), a public HTTP(S) service whose check asks
//! the runner whether it is alive (`/__preview/health`), the top-level `dev` check that asks
//! whether the dev server serves (`/__preview/ready`; its output is the runner's report),
//! scale-to-zero, no Fly restarts (the runner supervises the dev server itself), and the
//! ownership metadata the reconciler relies on.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fly::{Guest, MachineConfig, MachineService, RestartPolicy, ServiceCheck, ServicePort};

pub const MANAGED_BY_KEY: &str = "managed-by";
pub const MANAGED_BY: &str = "fly-preview-controller";
pub const PREVIEW_ID_KEY: &str = "preview-id";
pub const GENERATION_KEY: &str = "generation";
pub const LAUNCH_MARKER_KEY: &str = "launch-marker";

/// How preview machines are sized and what they run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerSettings {
    pub image: String,
    pub port: u16,
    pub cpu_kind: String,
    pub cpus: u32,
    pub memory_mb: u32,
    /// The runner's fallback periodic fetch, as a duration string (`"60s"`). Saves reach a
    /// running preview through the sync lane (`preview::sync`, exec of the runner's `sync`)
    /// within a second; this slow pull only catches what that path missed.
    pub sync_interval: String,
    /// Longest a dependency install may run in the runner (`INSTALL_TIMEOUT`, runner syntax).
    pub install_timeout: String,
    /// How long the runner keeps its status page up after a terminal failure before it exits
    /// (`FAILURE_LINGER`, runner syntax).
    pub failure_linger: String,
}

/// The runner's own paths on `$PORT` (deploy/runner), never proxied to the dev server.
pub const HEALTH_PATH: &str = "/__preview/health";
pub const READY_PATH: &str = "/__preview/ready";
/// The top-level check whose output is the runner's readiness report.
pub const DEV_CHECK: &str = "dev";

/// The runner's duration syntax (`500ms`, `5s`, `1m`): the shortest exact form.
pub fn runner_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            image: "ghcr.io/roseram/fly-preview-runner:latest".to_owned(),
            port: 3000,
            cpu_kind: "shared".to_owned(),
            cpus: 1,
            // A small Next.js app: dev server ~0.9 GiB RSS; 1.5 GiB PSS for the whole machine
            // while a dependency change installs beside the running server (BENCHMARKS.md,
            // "Runner on real projects"). 2048 is also the most a shared-cpu-1x machine takes.
            memory_mb: 2048,
            sync_interval: "60s".to_owned(),
            install_timeout: "5m".to_owned(),
            failure_linger: "20s".to_owned(),
        }
    }
}

/// What one preview row asks for.
#[derive(Clone, Copy, Debug)]
pub struct PreviewSpec<'a> {
    pub preview_id: uuid::Uuid,
    pub generation: i64,
    pub repo_url: &'a str,
    pub branch: &'a str,
    /// The app's folder inside the repository (validated), when the row names one.
    pub root_directory: Option<&'a str>,
    /// Unique per create attempt; lets an ambiguous create be resolved by listing.
    pub launch_marker: &'a str,
}

pub fn build(settings: &RunnerSettings, spec: &PreviewSpec<'_>) -> MachineConfig {
    MachineConfig {
        image: settings.image.clone(),
        env: env(settings, spec),
        services: vec![service(settings.port, autostop(settings.memory_mb))],
        checks: BTreeMap::from([(DEV_CHECK.to_owned(), dev_check(settings.port))]),
        restart: Some(RestartPolicy { policy: "no".to_owned(), max_retries: None }),
        guest: Some(Guest {
            cpu_kind: settings.cpu_kind.clone(),
            cpus: settings.cpus,
            memory_mb: settings.memory_mb,
        }),
        metadata: metadata(spec),
        ..MachineConfig::default()
    }
}

/// True when the metadata marks the machine as ours and for this preview.
pub fn is_ours(metadata: &BTreeMap<String, String>, preview_id: uuid::Uuid) -> bool {
    metadata.get(MANAGED_BY_KEY).is_some_and(|v| v == MANAGED_BY)
        && metadata
            .get(PREVIEW_ID_KEY)
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .is_some_and(|id| id == preview_id)
}

fn env(settings: &RunnerSettings, spec: &PreviewSpec<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("REPO_URL".to_owned(), spec.repo_url.to_owned()),
        ("REPO_BRANCH".to_owned(), spec.branch.to_owned()),
        ("PORT".to_owned(), settings.port.to_string()),
        ("SYNC_INTERVAL".to_owned(), settings.sync_interval.clone()),
        ("INSTALL_TIMEOUT".to_owned(), settings.install_timeout.clone()),
        ("FAILURE_LINGER".to_owned(), settings.failure_linger.clone()),
    ]);
    if let Some(dir) = spec.root_directory {
        env.insert("ROOT_DIRECTORY".to_owned(), dir.to_owned());
    }
    env
}

/// Readiness: the runner answers 200 only while the dev server serves, else 503 with its
/// report (phase, sentence, last output lines), which Fly keeps as the check's output.
fn dev_check(port: u16) -> Value {
    serde_json::json!({
        "type": "http", "port": port, "method": "GET", "path": READY_PATH,
        "interval": "5s", "timeout": "3s", "grace_period": "5s", "kind": "readiness",
    })
}

fn metadata(spec: &PreviewSpec<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_KEY.to_owned(), MANAGED_BY.to_owned()),
        (PREVIEW_ID_KEY.to_owned(), spec.preview_id.to_string()),
        (GENERATION_KEY.to_owned(), spec.generation.to_string()),
        (LAUNCH_MARKER_KEY.to_owned(), spec.launch_marker.to_owned()),
    ])
}

/// Fly can suspend (snapshot memory, resume in well under a second) only machines with at
/// most this much memory; larger ones must stop (a cold boot on the next request).
pub const SUSPEND_MAX_MEMORY_MB: u32 = 2048;

/// The proxy's idle action for a machine of `memory_mb`: `suspend` when Fly can suspend it,
/// else `stop`.
pub fn autostop(memory_mb: u32) -> &'static str {
    if memory_mb > SUSPEND_MAX_MEMORY_MB { "stop" } else { "suspend" }
}

fn service(port: u16, autostop: &str) -> MachineService {
    let handlers = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect();
    MachineService {
        protocol: "tcp".to_owned(),
        internal_port: port,
        ports: vec![
            ServicePort { port: 80, handlers: handlers(&["http"]), force_https: Some(true) },
            ServicePort { port: 443, handlers: handlers(&["tls", "http"]), force_https: None },
        ],
        autostop: Some(Value::String(autostop.to_owned())),
        autostart: Some(true),
        min_machines_running: Some(0),
        // The runner answers this itself while it runs, so routing to the machine (and its
        // status page) never waits for the dev server.
        checks: vec![ServiceCheck {
            type_: "http".to_owned(),
            port: None,
            interval: Some("15s".to_owned()),
            timeout: Some("5s".to_owned()),
            grace_period: Some("10s".to_owned()),
            method: Some("GET".to_owned()),
            path: Some(HEALTH_PATH.to_owned()),
            headers: Vec::new(),
        }],
        concurrency: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "6f1c0b1e-2a7b-4b8e-9a51-1c2d3e4f5a6b";

    fn spec(marker: &str) -> PreviewSpec<'_> {
        PreviewSpec {
            preview_id: uuid::Uuid::parse_str(ID).unwrap(),
            generation: 7,
            repo_url: "https://github.com/acme/site.git",
            branch: "feature/x; rm -rf /",
            root_directory: None,
            launch_marker: marker,
        }
    }

    #[test]
    fn config_json_shape() {
        let cfg = build(&RunnerSettings::default(), &spec("01HMARKER"));
        let expected = json!({
            "image": "ghcr.io/roseram/fly-preview-runner:latest",
            "env": {
                "REPO_URL": "https://github.com/acme/site.git",
                "REPO_BRANCH": "feature/x; rm -rf /",
                "PORT": "3000",
                "SYNC_INTERVAL": "60s",
                "INSTALL_TIMEOUT": "5m",
                "FAILURE_LINGER": "20s"
            },
            "services": [{
                "protocol": "tcp",
                "internal_port": 3000,
                "ports": [
                    {"port": 80, "handlers": ["http"], "force_https": true},
                    {"port": 443, "handlers": ["tls", "http"]}
                ],
                "autostop": "suspend",
                "autostart": true,
                "min_machines_running": 0,
                "checks": [{
                    "type": "http", "interval": "15s", "timeout": "5s",
                    "grace_period": "10s", "method": "GET", "path": "/__preview/health"
                }]
            }],
            "checks": {"dev": {
                "type": "http", "port": 3000, "method": "GET", "path": "/__preview/ready",
                "interval": "5s", "timeout": "3s", "grace_period": "5s", "kind": "readiness"
            }},
            "restart": {"policy": "no"},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 2048},
            "metadata": {
                "managed-by": "fly-preview-controller",
                "preview-id": ID,
                "generation": "7",
                "launch-marker": "01HMARKER"
            }
        });
        assert_eq!(serde_json::to_value(&cfg).unwrap(), expected);
    }

    #[test]
    fn settings_flow_into_config() {
        let s = RunnerSettings {
            image: "img@sha256:abc".into(),
            port: 8080,
            cpu_kind: "performance".into(),
            cpus: 2,
            memory_mb: 4096,
            sync_interval: "10s".into(),
            install_timeout: "90s".into(),
            failure_linger: "1s".into(),
        };
        let v = serde_json::to_value(build(&s, &spec("m"))).unwrap();
        assert_eq!(v["image"], "img@sha256:abc");
        assert_eq!(v["env"]["PORT"], "8080");
        assert_eq!(v["env"]["SYNC_INTERVAL"], "10s");
        assert_eq!(v["env"]["INSTALL_TIMEOUT"], "90s");
        assert_eq!(v["env"]["FAILURE_LINGER"], "1s");
        assert_eq!(v["checks"]["dev"]["port"], 8080);
        assert_eq!(v["services"][0]["internal_port"], 8080);
        assert_eq!(v["guest"], json!({"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}));
    }

    #[test]
    fn machines_above_2_gb_stop_instead_of_suspending() {
        let with = |memory_mb| {
            let s = RunnerSettings { memory_mb, ..RunnerSettings::default() };
            serde_json::to_value(build(&s, &spec("m"))).unwrap()["services"][0]["autostop"].clone()
        };
        assert_eq!(with(1024), "suspend");
        assert_eq!(with(2048), "suspend", "2 GB is the largest Fly suspends");
        assert_eq!(with(2049), "stop");
        assert_eq!(with(4096), "stop");
    }

    #[test]
    fn env_never_contains_a_token() {
        let cfg = build(&RunnerSettings::default(), &spec("m"));
        assert!(cfg.env.keys().all(|k| !k.contains("TOKEN") && !k.contains("SECRET")));
        assert_eq!(cfg.env.len(), 6);
    }

    #[test]
    fn root_directory_reaches_the_runner_only_when_set() {
        let cfg = build(&RunnerSettings::default(), &spec("m"));
        assert!(!cfg.env.contains_key("ROOT_DIRECTORY"));
        let s = PreviewSpec { root_directory: Some("apps/web"), ..spec("m") };
        let cfg = build(&RunnerSettings::default(), &s);
        assert_eq!(cfg.env.get("ROOT_DIRECTORY").map(String::as_str), Some("apps/web"));
    }

    #[test]
    fn durations_in_runner_syntax() {
        use std::time::Duration;
        assert_eq!(runner_duration(Duration::from_secs(300)), "5m");
        assert_eq!(runner_duration(Duration::from_secs(90)), "90s");
        assert_eq!(runner_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn config_round_trips_through_decoding() {
        let cfg = build(&RunnerSettings::default(), &spec("m"));
        let back: MachineConfig =
            serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn ownership() {
        let cfg = build(&RunnerSettings::default(), &spec("m"));
        let id = uuid::Uuid::parse_str(ID).unwrap();
        assert!(is_ours(&cfg.metadata, id));
        assert!(!is_ours(&cfg.metadata, uuid::Uuid::nil()));
        let mut other = cfg.metadata.clone();
        other.insert(MANAGED_BY_KEY.into(), "someone-else".into());
        assert!(!is_ours(&other, id));
        let mut missing = cfg.metadata.clone();
        missing.remove(MANAGED_BY_KEY);
        assert!(!is_ours(&missing, id));
        let mut upper = cfg.metadata;
        upper.insert(PREVIEW_ID_KEY.into(), ID.to_uppercase());
        assert!(is_ours(&upper, id));
    }
}
