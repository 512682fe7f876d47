//! Request-shape and error-classification tests for `FlyClient` against a scripted axum mock:
//! auth and secrecy, the apps API, and the Prism contract run. Machines are in
//! `fly_client_machines.rs`; wait, org listing, timeouts and buckets in `fly_client_wait.rs`.

use std::time::Duration;

use crate::support::MachineState;
use crate::support::fly_mock::*;
use axum::http::Method;
use fly_preview_controller::fly::{
    FlyClient, FlyClientConfig, FlyError, IpType, Secret, WaitOutcome,
};
use fly_preview_controller::preview::machine_config;
use serde_json::{Value, json};

// ---------------------------------------------------------------- auth & secrecy

#[tokio::test]
async fn auth_header_forms() {
    let cases = [
        ("fm2_abc", "FlyV1 fm2_abc"),
        ("fm1r_abc", "FlyV1 fm1r_abc"),
        ("fm1a_abc", "FlyV1 fm1a_abc"),
        ("FlyV1 fm2_xyz", "FlyV1 fm2_xyz"),
        ("plain-org-token", "Bearer plain-org-token"),
    ];
    for (token, header) in cases {
        let m = Mock::start([reply(200, json!({"name": "a"}))]).await;
        let (c, _) = client_with(&m.url, token, false, Duration::from_secs(5));
        c.get_app("a").await.unwrap();
        assert_eq!(m.last().headers["authorization"], header);
    }
}

#[tokio::test]
async fn token_never_in_debug_or_errors() {
    let m = Mock::start([]).await;
    m.fallback(err(400, &format!("bad header: FlyV1 {TOKEN} / {TOKEN}")).header("x-echo", TOKEN));
    let (c, _) = client_with(&m.url, TOKEN, true, Duration::from_secs(5));
    let e = c.get_app("a").await.unwrap_err();
    for text in [format!("{e}"), format!("{e:?}"), format!("{c:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains("lkjhgfdsa"), "{text}");
    }
    let cfg = FlyClientConfig { token: Secret::new(TOKEN), ..Default::default() };
    assert!(!format!("{cfg:?}").contains("lkjhgfdsa"));
    let body = json!({"message": format!("token {TOKEN} rejected"), "error": TOKEN});
    m.fallback(reply(401, body));
    let e = c.get_app("a").await.unwrap_err();
    assert!(matches!(e, FlyError::Unauthorized(_)));
    assert!(!format!("{e} {e:?}").contains("lkjhgfdsa"), "{e:?}");
}

// ---------------------------------------------------------------- apps

#[tokio::test]
async fn create_app_request_shape_and_response() {
    let app = json!({"id": "z4k69dxd8r31p5mx", "name": "roseram-5aacab32", "status": "pending",
                     "organization": {"slug": "personal", "name": "Me"}, "created_at": 1700000000000i64});
    let m = Mock::start([reply(201, app), reply(201, Value::Null)]).await;
    let c = client(&m);
    let got = c.create_app("roseram-5aacab32", "personal").await.unwrap();
    assert_eq!(got.id.as_deref(), Some("z4k69dxd8r31p5mx"));
    assert_eq!(got.organization.unwrap().slug.as_deref(), Some("personal"));
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/apps"));
    assert_eq!(s.body, json!({"name": "roseram-5aacab32", "org_slug": "personal"}));
    assert_eq!(s.headers["content-type"], "application/json");
    // A 2xx without a body is fine.
    assert_eq!(c.create_app("other", "personal").await.unwrap().name, "other");
}

#[tokio::test]
async fn create_app_name_taken_forms() {
    let m = Mock::start([
        reply(422, json!({"error": "Validation failed: Name has already been taken", "status": "name_taken"})),
        reply(422, json!({"error": "Validation failed: Name has already been taken"})),
        reply(422, json!({"error": "Validation failed", "status": "name_taken"})),
        err(409, "duplicate key value violates unique constraint"),
        err(422, "Validation failed: Name under 63 chars using numbers, lowercase letters and dashes"),
        err(503, "unavailable"),
    ])
    .await;
    let c = client(&m);
    for _ in 0..4 {
        let e = c.create_app("a", "personal").await.unwrap_err();
        assert!(matches!(e, FlyError::NameTaken(_)), "{e:?}");
        assert_eq!(e.kind(), "name_taken");
        assert!(e.request_id().unwrap().ends_with("-yyz"));
    }
    let e = c.create_app("A!", "personal").await.unwrap_err();
    assert!(matches!(e, FlyError::Permanent(_)), "{e:?}");
    let e = c.create_app("a", "personal").await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "{e:?}");
    assert_eq!(m.count(), 6, "create_app is never retried");
}

#[tokio::test]
async fn get_app_errors_carry_status_message_and_request_id() {
    let m = Mock::start([
        err(404, "app not found"),
        err(403, "unauthorized"),
        err(401, "Authenticate: token validation error"),
    ])
    .await;
    let c = client(&m);
    let e = c.get_app("missing").await.unwrap_err();
    assert!(matches!(e, FlyError::NotFound(_)));
    assert_eq!((e.status(), e.message()), (Some(404), "app not found"));
    assert_eq!(e.request_id(), Some("01JNRQ9VVKJ7HZFMJWJB3M3R01-yyz"));
    assert_eq!(m.last().path, "/v1/apps/missing");
    assert!(matches!(c.get_app("theirs").await.unwrap_err(), FlyError::Forbidden(_)));
    assert!(matches!(c.get_app("x").await.unwrap_err(), FlyError::Unauthorized(_)));
    assert_eq!(m.count(), 3, "4xx are not retried");
}

#[tokio::test]
async fn delete_app_list_apps_and_ips() {
    let m = Mock::start([
        reply(202, Value::Null),
        err(404, "app not found"),
        reply(200, json!({"total_apps": 2, "apps": [{"name": "a", "status": "deployed"}, {"name": "b", "mystery": 1}]})),
        reply(200, json!({"ips": [{"ip": "1.2.3.4", "shared": true, "region": "global"}, {"ip": "2a09:8280::1", "shared": false}]})),
        reply(200, json!({"ip": "2a09:8280::2", "region": "global", "shared": false, "service_name": "", "created_at": "x"})),
        err(503, "try again"),
    ])
    .await;
    let c = client(&m);
    c.delete_app("a").await.unwrap();
    assert_eq!((m.last().method, m.last().path), (Method::DELETE, "/v1/apps/a".into()));
    assert!(matches!(c.delete_app("a").await.unwrap_err(), FlyError::NotFound(_)));
    let apps = c.list_apps_on_shared_network("personal").await.unwrap();
    assert_eq!(apps, ["a", "b"], "neither names a network of its own");
    assert_eq!(
        (m.last().path.as_str(), m.last().query.as_str()),
        ("/v1/apps", "org_slug=personal")
    );
    let ips = c.list_ips("a").await.unwrap();
    assert!(ips[0].is_shared_v4() && ips[1].is_v6());
    assert_eq!(m.last().path, "/v1/apps/a/ip_assignments");
    let ip = c.assign_ip("a", IpType::V6).await.unwrap();
    assert!(ip.is_v6());
    assert_eq!((m.last().method, m.last().body), (Method::POST, json!({"type": "v6"})));
    let e = c.assign_ip("a", IpType::SharedV4).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)));
    assert_eq!(m.last().body, json!({"type": "shared_v4"}));
    assert_eq!(m.count(), 6, "assign_ip is not retried");
}

/// The app listing is decoded as it streams in: a retried attempt starts over (no name
/// twice), and a listing that is not one is a decoding error, not an empty list.
#[tokio::test]
async fn list_apps_retried_and_malformed() {
    let listing = json!({"total_apps": 3, "apps": [{"name": "a", "network": "default"},
        {"name": "b", "network": "b-net", "organization": {"slug": "personal"}}, {"name": "c"}]});
    let m = Mock::start([
        err(503, "try again"),
        reply(200, listing),
        reply(200, json!({"apps": [{"name": "a"}, "not-an-app"]})),
    ])
    .await;
    let c = client(&m);
    assert_eq!(c.list_apps_on_shared_network("personal").await.unwrap(), ["a", "c"]);
    assert_eq!(m.count(), 2, "the 503 was retried");
    let e = c.list_apps_on_shared_network("personal").await.unwrap_err();
    assert!(matches!(e, FlyError::Decode(_)), "{e:?}");
    assert!(e.message().contains("app list"), "{e:?}");
}

// ---------------------------------------------------------------- contract (prism)

/// Drives every client call through a Prism validating proxy in front of the simulator.
/// Run by `.ci/contract-check.sh`, which sets `FLY_CONTRACT_URL` and checks Prism's log.
#[tokio::test]
#[ignore = "needs Prism + the simulator; run .ci/contract-check.sh"]
async fn contract_through_prism() {
    let url = std::env::var("FLY_CONTRACT_URL").expect("FLY_CONTRACT_URL");
    let org = std::env::var("FLY_CONTRACT_ORG").unwrap_or_else(|_| "personal".into());
    let token =
        std::env::var("FLY_CONTRACT_TOKEN").unwrap_or_else(|_| "fm2_contract_check_token".into());
    let (c, _) = client_with(&url, &token, true, Duration::from_secs(30));
    let app = format!("contract-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    contract_apps(&c, &app, &org).await;
    contract_secrets(&c, &app).await;
    let id = contract_machine_lifecycle(&c, &app).await;
    let page = c
        .list_org_machines(&org, Some(chrono::Utc::now() - chrono::TimeDelta::hours(1)), None)
        .await
        .unwrap();
    assert!(page.machines.iter().any(|m| m.id == id), "{page:?}");
    crate::sync::contract_exec(&c, &app, &id).await;
    c.destroy_machine(&app, &id, true).await.unwrap();
    c.delete_app(&app).await.unwrap();
    assert!(matches!(c.get_app(&app).await, Err(FlyError::NotFound(_))));
}

async fn contract_apps(c: &FlyClient, app: &str, org: &str) {
    c.create_app(app, org).await.unwrap();
    assert!(matches!(c.create_app(app, org).await, Err(FlyError::NameTaken(_))));
    assert_eq!(c.get_app(app).await.unwrap().name, app);
    // Created without a network of its own: on the org's shared network.
    assert!(c.list_apps_on_shared_network(org).await.unwrap().iter().any(|a| a == app));
    assert!(matches!(c.get_app("contract-does-not-exist").await, Err(FlyError::NotFound(_))));
    assert!(c.assign_ip(app, IpType::V6).await.unwrap().is_v6());
    assert!(c.assign_ip(app, IpType::SharedV4).await.unwrap().is_shared_v4());
    assert_eq!(c.list_ips(app).await.unwrap().len(), 2);
}

/// App secrets: set two, then unset one (`null`) and rotate the other; names only come back.
async fn contract_secrets(c: &FlyClient, app: &str) {
    use fly_preview_controller::fly::Secret;
    use std::collections::BTreeMap;
    let set = |pairs: &[(&str, Option<&str>)]| -> BTreeMap<String, Option<Secret>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.map(Secret::new))).collect()
    };
    let v1 = c.update_secrets(app, &set(&[("GIT_TOKEN", Some("g1")), ("OLD", Some("o"))])).await;
    let v1 = v1.unwrap();
    assert_eq!(c.list_secret_names(app).await.unwrap(), ["GIT_TOKEN", "OLD"]);
    let v2 = c.update_secrets(app, &set(&[("GIT_TOKEN", Some("g2")), ("OLD", None)])).await;
    assert!(v2.unwrap() > v1);
    assert_eq!(c.list_secret_names(app).await.unwrap(), ["GIT_TOKEN"]);
}

async fn contract_machine_lifecycle(c: &FlyClient, app: &str) -> String {
    let long = Duration::from_secs(30);
    let m = c.create_machine(app, &create_req()).await.unwrap();
    let reached = c
        .wait_machine(app, &m.id, &MachineState::Started, m.instance_id.as_deref(), long)
        .await
        .unwrap();
    assert_eq!(reached, WaitOutcome::Reached { state: MachineState::Started });
    let got = c.get_machine(app, &m.id).await.unwrap();
    let filter = [(machine_config::LAUNCH_MARKER_KEY, "01HMARK")];
    assert_eq!(c.list_machines(app, &filter).await.unwrap().len(), 1);
    let mut upd = create_req();
    upd.current_version = got.instance_id.clone();
    let updated = c.update_machine(app, &m.id, &upd).await.unwrap();
    c.wait_machine(app, &m.id, &MachineState::Started, updated.instance_id.as_deref(), long)
        .await
        .unwrap();
    c.stop_machine(app, &m.id).await.unwrap();
    c.wait_machine(app, &m.id, &MachineState::Stopped, None, long).await.unwrap();
    c.start_machine(app, &m.id).await.unwrap();
    c.wait_machine(app, &m.id, &MachineState::Started, None, long).await.unwrap();
    // A started machine never becomes suspended by itself: /wait answers 408 (not yet).
    let out = c
        .wait_machine(app, &m.id, &MachineState::Suspended, None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(out, WaitOutcome::TimedOut);
    let e = c
        .wait_machine(app, "00000000000000", &MachineState::Started, None, long)
        .await
        .unwrap_err();
    assert!(matches!(e, FlyError::NotFound(_)), "{e:?}");
    m.id
}
