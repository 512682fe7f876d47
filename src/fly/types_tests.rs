use super::*;
use serde_json::json;

fn machine(v: Value) -> Machine {
    serde_json::from_value(v).unwrap()
}

#[test]
fn machine_decodes_leniently() {
    let m = machine(json!({
        "id": "1857156b526dd8", "state": "hibernating", "region": "ams",
        "instance_id": "01HEPA330HZ37A78TK080NAK1M", "private_ip": "fdaa::1",
        "config": {
            "image": "nginx", "env": null, "init": {"cmd": ["x"]},
            "services": [{"protocol": "tcp", "internal_port": 8080, "autostop": true,
                          "ports": [{"port": 80, "handlers": ["http"], "http_options": {}}],
                          "checks": null}],
            "metadata": {"preview-id": "p", "n": 3}
        },
        "events": null, "checks": [{"name": "c", "status": "passing", "updated_at": "x"}],
        "host_status": "ok", "brand_new_field": {"a": 1}
    }));
    assert_eq!(m.state, MachineState::from("hibernating"));
    let cfg = m.config.as_ref().unwrap();
    assert!(cfg.env.is_empty());
    assert_eq!(cfg.services[0].autostop_mode(), Some("stop"));
    assert_eq!(cfg.extra.get("init"), Some(&json!({"cmd": ["x"]})));
    assert_eq!(m.metadata().unwrap().get("n").map(String::as_str), Some("3"));
    assert!(m.events.is_empty());
    assert!(m.checks_passing());
    assert!(m.is_active());
}

#[test]
fn config_with_odd_shapes_falls_back() {
    let m = machine(json!({
        "id": "m", "state": "started",
        "config": {"image": "img", "metadata": {"managed-by": "x"}, "services": "weird",
                   "guest": {"cpus": "two"}}
    }));
    let cfg = m.config.unwrap();
    assert_eq!(cfg.image, "img");
    assert_eq!(cfg.metadata.get("managed-by").map(String::as_str), Some("x"));
    assert_eq!(cfg.extra.get("services"), Some(&json!("weird")));
}

#[test]
fn config_round_trips_unknown_fields() {
    let v = json!({"image": "i", "init": {"exec": ["a"]}, "mounts": [{"volume": "v"}],
                   "services": [{"protocol": "tcp", "internal_port": 1, "ports": [], "autostop": "suspend"}]});
    let cfg: MachineConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), v);
}

#[test]
fn last_exit_code_uses_newest_exit_event() {
    let m = machine(json!({"id": "m", "state": "stopped", "events": [
        {"type": "exit", "timestamp": 300, "request": {"exit_event": {"exit_code": 1}}},
        {"type": "start", "timestamp": 250},
        {"type": "exit", "timestamp": 200, "request": {"exit_event": {"exit_code": 0}}}
    ]}));
    assert_eq!(m.last_exit_code(), Some(1));
    let m = machine(json!({"id": "m", "events": [
        {"type": "exit", "timestamp": 100, "request": {"exit_event": {"exit_code": 0}}},
        {"type": "exit", "timestamp": 900, "request": {"exit_event": {"exit_code": 137}}}
    ]}));
    assert_eq!(m.last_exit_code(), Some(137));
    let m = machine(json!({"id": "m", "events": [{"type": "exit", "timestamp": 1}]}));
    assert_eq!(m.last_exit_code(), None);
    assert_eq!(machine(json!({"id": "m"})).last_exit_code(), None);
}

#[test]
fn oom_kill_is_read_from_the_newest_exit_event() {
    let m = machine(json!({"id": "m", "events": [
        {"type": "exit", "timestamp": 100, "request": {"exit_event": {"exit_code": 1, "oom_killed": false}}},
        {"type": "exit", "timestamp": 900, "request": {"exit_event": {"exit_code": 137, "oom_killed": true}}}
    ]}));
    assert!(m.last_exit_oom_killed());
    let m = machine(json!({"id": "m", "events": [
        {"type": "exit", "timestamp": 900, "request": {"exit_event": {"exit_code": 0, "oom_killed": false}}},
        {"type": "exit", "timestamp": 100, "request": {"exit_event": {"exit_code": 137, "oom_killed": true}}}
    ]}));
    assert!(!m.last_exit_oom_killed(), "an older OOM kill does not count");
    assert!(!machine(json!({"id": "m"})).last_exit_oom_killed());
}

#[test]
fn activity_and_checks() {
    assert!(!machine(json!({"id": "m", "state": "destroying"})).is_active());
    assert!(!machine(json!({"id": "m", "state": "destroyed"})).is_active());
    let odd = machine(json!({"id": "m", "state": 7}));
    assert_eq!((odd.state.as_str(), odd.is_active()), ("7", true), "any scalar, kept verbatim");
    assert_eq!(machine(json!({"id": "m", "state": null})).state, MachineState::default());
    assert!(!machine(json!({"id": "m", "checks": []})).checks_passing());
    let m = machine(json!({"id": "m", "checks": [
        {"name": "a", "status": "passing"}, {"name": "b", "status": "critical"}]}));
    assert!(!m.checks_passing());
    assert_eq!(machine(json!({"id": "m"})).metadata(), None);
}

#[test]
fn ip_assignment_kinds() {
    let ips: Vec<IpAssignment> = serde_json::from_value(json!([
        {"ip": "1.2.3.4", "shared": true, "region": "global", "created_at": "x"},
        {"ip": "2a09::1", "shared": false},
        {"ip": "5.6.7.8", "shared": false}
    ]))
    .unwrap();
    assert!(ips[0].is_shared_v4() && !ips[0].is_v6());
    assert!(ips[1].is_v6() && !ips[1].is_shared_v4());
    assert!(!ips[2].is_shared_v4() && !ips[2].is_v6());
    assert_eq!(serde_json::to_value(IpType::SharedV4).unwrap(), json!("shared_v4"));
    assert_eq!(serde_json::to_value(IpType::V6).unwrap(), json!("v6"));
    assert_eq!(IpType::SharedV4.as_str(), "shared_v4");
}

#[test]
fn app_and_org_page_decode() {
    let app: App = serde_json::from_value(json!({"id": "z4k", "name": "a", "status": "pending",
        "organization": {"slug": "personal", "name": "P", "internal_numeric_id": 1}}))
    .unwrap();
    assert_eq!(app.organization.unwrap().slug.as_deref(), Some("personal"));
    let app: App =
        serde_json::from_value(json!({"id": "z", "created_at": 1700, "organization": "x"}))
            .unwrap();
    assert_eq!(app.name, "");
    assert_eq!(app.organization, None);
    let page: OrgMachinesPage = serde_json::from_value(json!({
        "machines": [{"id": "m1", "app_name": "a", "state": "started", "config": {"image": "i"}}, 7],
        "next_cursor": "c", "last_updated_at": "2024-01-01T00:00:00Z", "error_regions": null
    }))
    .unwrap();
    assert_eq!(page.machines.len(), 1);
    assert_eq!(page.machines[0].state, MachineState::Started);
    assert_eq!(page.next_cursor.as_deref(), Some("c"));
}

#[test]
fn create_request_skips_none() {
    let req = CreateMachineRequest {
        config: MachineConfig { image: "i".into(), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(serde_json::to_value(&req).unwrap(), json!({"config": {"image": "i"}}));
    let req =
        CreateMachineRequest { current_version: Some("v".into()), skip_launch: Some(true), ..req };
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({"config": {"image": "i"}, "skip_launch": true, "current_version": "v"})
    );
}
