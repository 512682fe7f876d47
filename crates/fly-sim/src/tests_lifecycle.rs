//! The in-memory world driven with explicit instants: lifecycle rules, runner outcomes,
//! updates and `/wait` probing, without HTTP.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::ApiError;
use super::fault::Action;
use super::ids::SimClock;
use super::machine::Env;
use super::query::Query;
use super::wait::{Probe, WaitParams};
use super::world::World;

const MS: Duration = Duration::from_millis(1);

struct Fixture {
    world: World,
    t0: Instant,
}

impl Fixture {
    fn new() -> Self {
        let env = Env {
            create_to_start: 50 * MS,
            boot_time: 100 * MS,
            check_delay: 100 * MS,
            clock: SimClock::start(),
        };
        let world = World::new("personal".into(), HashSet::new(), env, Duration::ZERO, 7);
        let mut f = Fixture { world, t0: Instant::now() };
        let created = f.world.create_app(&json!({"name": "app", "org_slug": "personal"}), f.t0);
        assert_eq!(created.map(|r| r.status), Ok(201));
        f
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn create(&mut self, env: &Value, extra: &Value, ms: u64) -> String {
        let mut body = json!({"config": {"image": "runner", "env": env,
            "services": [{"internal_port": 3000, "checks": [{"type": "http"}]}]}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let reply = self.world.create_machine("app", &body, self.at(ms));
        let json = reply.map(|r| r.body).unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_default();
        json["id"].as_str().unwrap_or_default().to_owned()
    }

    fn get(&mut self, id: &str, ms: u64) -> Value {
        let reply = self.world.get_machine("app", id, self.at(ms));
        reply.map(|r| r.body).unwrap_or_else(|e| panic!("{e:?}")).unwrap_or_default()
    }

    fn act(&mut self, id: &str, action: Action, query: &str, ms: u64) -> Result<Value, ApiError> {
        let q = Query::parse(query);
        let now = self.at(ms);
        let reply = self.world.machine_action(("app", id), action, &q, None, now)?;
        Ok(reply.body.unwrap_or_default())
    }

    fn probe(&mut self, id: &str, query: &str, ms: u64) -> Probe {
        let params = WaitParams::parse(&Query::parse(query)).unwrap_or_else(|e| panic!("{e:?}"));
        let now = self.at(ms);
        self.world.wait_probe("app", id, &params, now).unwrap_or_else(|e| panic!("{e:?}"))
    }
}

fn healthy() -> Value {
    json!({"REPO_URL": "https://github.com/acme/site", "REPO_BRANCH": "main"})
}

#[test]
fn repository_not_found_exits_during_boot() {
    let mut f = Fixture::new();
    let id =
        f.create(&json!({"REPO_URL": "https://github.com/acme/does-not-exist"}), &json!({}), 0);
    assert_eq!(f.get(&id, 60)["state"], "starting");
    let m = f.get(&id, 150);
    assert_eq!(m["state"], "stopped");
    let exit = &m["events"][0];
    assert_eq!((exit["type"].as_str(), exit["status"].as_str()), (Some("exit"), Some("stopped")));
    assert_eq!(exit["request"]["exit_event"]["exit_code"], 128);
    assert_eq!(exit["request"]["exit_event"]["oom_killed"], false);
    assert_eq!(exit["request"]["exit_event"]["restarting"], false);
    assert_eq!(m["checks"][0]["status"], "critical");
    assert_eq!(m["checks"][0]["output"], "fatal: repository not found");
}

#[test]
fn runner_exit_branches_start_then_exit_with_their_code() {
    for (branch, code, oom) in [("sim-install-timeout", 6, false), ("sim-oom", 137, true)] {
        let mut f = Fixture::new();
        let env = json!({"REPO_URL": "https://github.com/acme/site", "REPO_BRANCH": branch});
        let id = f.create(&env, &json!({}), 0);
        assert_eq!(f.get(&id, 150)["state"], "started", "{branch}");
        let m = f.get(&id, 5_000);
        assert_eq!(m["state"], "stopped", "{branch}");
        let exit = &m["events"][0]["request"]["exit_event"];
        assert_eq!(exit["exit_code"], code, "{branch}");
        assert_eq!(exit["oom_killed"], oom, "{branch}");
    }
}

#[test]
fn never_healthy_and_boot_failed_branches() {
    let mut f = Fixture::new();
    let env =
        json!({"REPO_URL": "https://github.com/acme/site", "REPO_BRANCH": "sim-never-healthy"});
    let id = f.create(&env, &json!({}), 0);
    let m = f.get(&id, 60_000);
    assert_eq!(
        (m["state"].as_str(), m["checks"][0]["status"].as_str()),
        (Some("started"), Some("critical"))
    );
    assert_eq!(m["checks"][0]["output"], "connection refused");
    let id = f.create(&json!({"REPO_BRANCH": "sim-boot-failed"}), &json!({"name": "b"}), 0);
    assert_eq!(f.get(&id, 1_000)["state"], "failed");
}

#[test]
fn start_stop_suspend_restart_rules() {
    let mut f = Fixture::new();
    let id = f.create(&healthy(), &json!({}), 0);
    let err = f.act(&id, Action::StartMachine, "", 10).err().map(|e| e.body["error"].clone());
    assert_eq!(
        err,
        Some(json!("failed_precondition: unable to start machine from current state: 'created'"))
    );
    let err = f.act(&id, Action::StopMachine, "", 10).err().map(|e| e.body["error"].clone());
    assert_eq!(
        err,
        Some(json!("failed_precondition: unable to stop machine from current state: 'created'"))
    );
    assert_eq!(f.act(&id, Action::StopMachine, "", 300), Ok(json!({"ok": true})));
    assert_eq!(f.get(&id, 300)["state"], "stopping");
    assert_eq!(f.get(&id, 350)["state"], "stopped");
    let started = f.act(&id, Action::StartMachine, "", 400).map(|b| b["previous_state"].clone());
    assert_eq!(started, Ok(json!("stopped")));
    assert_eq!(f.get(&id, 400)["state"], "starting");
    assert_eq!(f.get(&id, 500)["state"], "started");
    assert!(f.act(&id, Action::SuspendMachine, "", 700).is_ok());
    assert_eq!(f.get(&id, 750)["state"], "suspended");
    assert!(
        f.act(&id, Action::RestartMachine, "", 800).is_err(),
        "restart needs a running machine"
    );
    assert!(f.act(&id, Action::DestroyMachine, "", 800).is_ok(), "suspended may be destroyed");
    assert_eq!(f.get(&id, 800)["state"], "destroyed");
    let gone = f.world.get_machine("app", &id, f.at(2_800)).err().map(|e| e.status);
    assert_eq!(gone, Some(404));
}

#[test]
fn restart_reboots_and_checks_go_critical_then_passing() {
    let mut f = Fixture::new();
    let id = f.create(&healthy(), &json!({}), 0);
    assert_eq!(f.get(&id, 250)["checks"][0]["status"], "passing");
    assert!(f.act(&id, Action::RestartMachine, "", 300).is_ok());
    let m = f.get(&id, 300);
    assert_eq!(
        (m["state"].as_str(), m["checks"][0]["status"].as_str()),
        (Some("restarting"), Some("critical"))
    );
    assert_eq!(f.get(&id, 350)["state"], "starting");
    assert_eq!(f.get(&id, 550)["checks"][0]["status"], "passing");
}

#[test]
fn update_bumps_version_and_reboots_in_place() {
    let mut f = Fixture::new();
    let id = f.create(&healthy(), &json!({}), 0);
    let old = f.get(&id, 300)["instance_id"].clone();
    let body = json!({"config": {"image": "runner", "env": {"REPO_BRANCH": "dev"}}, "current_version": "01STALE"});
    let err = f.world.update_machine(("app", &id), &body, None, f.at(300)).err();
    assert_eq!(err.map(|e| e.status), Some(412));
    let body = json!({"config": {"image": "runner", "env": {"REPO_BRANCH": "dev"}}, "current_version": old});
    let updated = f.world.update_machine(("app", &id), &body, None, f.at(300));
    let m = updated.map(|r| r.body.unwrap_or_default()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((m["id"].as_str(), m["state"].as_str()), (Some(id.as_str()), Some("updating")));
    assert_ne!(m["instance_id"], old);
    assert_eq!(m["config"]["env"]["REPO_BRANCH"], "dev");
    assert_eq!(f.get(&id, 350)["state"], "starting");
    assert_eq!(f.get(&id, 450)["state"], "started");
    let stale = format!("state=started&version={}", old.as_str().unwrap_or_default());
    assert!(matches!(f.probe(&id, &stale, 450), Probe::Waiting("replaced", None)));
}

#[test]
fn skip_launch_stays_created_and_settled_waits() {
    let mut f = Fixture::new();
    let id = f.create(&healthy(), &json!({"skip_launch": true}), 0);
    assert_eq!(f.get(&id, 5_000)["state"], "created");
    assert!(matches!(f.probe(&id, "state=settled", 5_000), Probe::Reached(_)));
    let launching = f.create(&healthy(), &json!({"name": "l"}), 0);
    let probe = f.probe(&launching, "state=settled", 10);
    assert!(matches!(probe, Probe::Waiting("created", Some(_))), "{probe:?}");
    let Probe::Reached(body) = f.probe(&launching, "state=started", 150) else {
        panic!("not started")
    };
    let from =
        format!("state=started&from_event_id={}", body["event_id"].as_str().unwrap_or_default());
    assert!(matches!(f.probe(&launching, &from, 150), Probe::Waiting("started", _)));
}

#[test]
fn crash_and_autostop() {
    let mut f = Fixture::new();
    let id = f.create(&healthy(), &json!({}), 0);
    let (now, later, env) = (f.at(300), f.at(400), f.world.env);
    let machine = f.world.machine("app", &id, now).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(machine.idle_stop(now, true, &env));
    assert_eq!(machine.state.as_str(), "suspended");
    assert!(!machine.crash(now, 1, &env), "a suspended machine has no process to crash");
    assert!(machine.start(now, &env).is_ok());
    machine.settle(later, &env);
    assert!(machine.crash(later, 137, &env));
    let m = f.get(&id, 400);
    assert_eq!(m["state"], "stopped");
    assert_eq!(m["events"][0]["request"]["exit_event"]["exit_code"], 137);
}

#[test]
fn machine_names_are_unique_per_app() {
    let mut f = Fixture::new();
    f.create(&healthy(), &json!({"name": "web"}), 0);
    let body = json!({"name": "web", "config": {"image": "runner"}});
    let clash = f.world.create_machine("app", &body, f.at(1)).err().map(|e| e.status);
    assert_eq!(clash, Some(409));
    let no_image = json!({"config": {"env": {}}});
    let bad = f.world.create_machine("app", &no_image, f.at(1)).err().map(|e| e.status);
    assert_eq!(bad, Some(400));
}

/// A config with the runner's checks: a service check and the top-level `dev` check.
fn runner_config(branch: &str) -> Value {
    json!({"name": branch, "config": {"image": "runner",
        "env": {"REPO_URL": "https://github.com/acme/site", "REPO_BRANCH": branch,
                "FAILURE_LINGER": "2s"},
        "services": [{"internal_port": 3000, "checks": [{"type": "http", "path": "/__preview/health"}]}],
        "checks": {"dev": {"type": "http", "port": 3000, "path": "/__preview/ready"}}}})
}

fn check<'a>(m: &'a Value, name: &str) -> (&'a str, &'a str) {
    let checks = m["checks"].as_array().cloned().unwrap_or_default();
    let c = checks.iter().position(|c| c["name"] == name).map(|i| &m["checks"][i]);
    let c = c.unwrap_or_else(|| panic!("no check {name} in {m}"));
    (c["status"].as_str().unwrap_or_default(), c["output"].as_str().unwrap_or_default())
}

#[test]
fn the_dev_check_keeps_the_runners_output_after_the_machine_stops() {
    let mut f = Fixture::new();
    let id = f.create(&json!({}), &runner_config("sim-install-private"), 0);
    let m = f.get(&id, 160);
    assert_eq!(m["state"], "started");
    assert_eq!(check(&m, "servicecheck-00-http-3000").0, "passing", "the runner answers");
    assert_eq!(check(&m, "dev").0, "critical");
    let m = f.get(&id, 5_000);
    assert_eq!(m["state"], "stopped");
    assert_eq!(m["events"][0]["request"]["exit_event"]["exit_code"], 4);
    let (status, output) = check(&m, "dev");
    assert_eq!(status, "critical");
    assert!(output.starts_with("install_failed: the package @acme/private"), "{output}");
    assert!(output.contains("npm ERR! 404"), "{output}");
    assert_eq!(check(&m, "servicecheck-00-http-3000").0, "critical");
}

#[test]
fn a_crash_loop_after_serving_exits_7_after_the_linger() {
    let mut f = Fixture::new();
    let id = f.create(&json!({}), &runner_config("sim-crashloop"), 0);
    let m = f.get(&id, 260);
    assert_eq!((m["state"].as_str(), check(&m, "dev").0), (Some("started"), "passing"));
    let m = f.get(&id, 400);
    assert_eq!(m["state"], "started", "lingers with the status page up");
    assert!(check(&m, "dev").1.starts_with("crashloop: "), "{m}");
    let m = f.get(&id, 2_400);
    assert_eq!(m["state"], "stopped");
    assert_eq!(m["events"][0]["request"]["exit_event"]["exit_code"], 7);
    assert!(check(&m, "dev").1.starts_with("crashloop: "), "{m}");
}
