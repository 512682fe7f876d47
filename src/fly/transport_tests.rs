use super::*;
use crate::fly::ErrorInfo;

#[test]
fn auth_scheme_follows_flyctl() {
    assert_eq!(auth_value("fm2_abc"), "FlyV1 fm2_abc");
    assert_eq!(auth_value("fm1r_abc"), "FlyV1 fm1r_abc");
    assert_eq!(auth_value("fm1a_abc,fm2_def"), "FlyV1 fm1a_abc,fm2_def");
    assert_eq!(auth_value("FlyV1 fm2_abc"), "FlyV1 fm2_abc");
    assert_eq!(auth_value(" plain-token \n"), "Bearer plain-token");
    assert_eq!(auth_value("Bearer x"), "Bearer x");
}

#[test]
fn base_url_gets_v1_once() {
    let u = |s: &str| api_base(s).map(|u| u.to_string());
    assert_eq!(u("https://api.machines.dev").unwrap(), "https://api.machines.dev/v1");
    assert_eq!(u("https://api.machines.dev/").unwrap(), "https://api.machines.dev/v1");
    assert_eq!(u("http://127.0.0.1:4280/v1").unwrap(), "http://127.0.0.1:4280/v1");
    assert_eq!(u("http://h:1/prefix/").unwrap(), "http://h:1/prefix/v1");
    assert_eq!(api_base("not a url").unwrap_err().kind(), "config");
    assert_eq!(api_base("ftp://x").unwrap_err().kind(), "config");
}

#[test]
fn path_segments_are_encoded() {
    let t =
        Transport::new("http://h", Secret::new("t"), Duration::from_secs(1), false, None).unwrap();
    let path = ["apps", "a/b c", "machines"];
    let req = Request::new(Action::ListMachines, Method::GET, &path, "a")
        .query("metadata.preview-id", "x y&z");
    assert_eq!(
        t.url(&req).unwrap().as_str(),
        "http://h/v1/apps/a%2Fb%20c/machines?metadata.preview-id=x+y%26z"
    );
}

#[test]
fn retry_policy_per_action() {
    let transient = FlyError::Transient(ErrorInfo::default());
    let timeout = FlyError::Timeout(ErrorInfo::default());
    let notfound = FlyError::NotFound(ErrorInfo::default());
    assert!(Action::GetMachine.should_retry(&transient));
    assert!(Action::GetMachine.should_retry(&timeout));
    assert!(!Action::GetMachine.should_retry(&notfound));
    assert!(Action::DeleteApp.should_retry(&transient));
    assert!(Action::StartMachine.should_retry(&transient));
    for a in [Action::CreateMachine, Action::CreateApp, Action::AssignIp, Action::UpdateMachine] {
        assert!(!a.should_retry(&transient), "{a:?}");
    }
    assert!(Action::WaitMachine.should_retry(&transient));
    assert!(!Action::WaitMachine.should_retry(&timeout));
}

#[test]
fn retry_after_adjusts_backoff() {
    let rl = |s| FlyError::RateLimited {
        retry_after: Some(Duration::from_secs(s)),
        info: ErrorInfo::default(),
    };
    let next = Some(Duration::from_millis(100));
    assert_eq!(honour_retry_after(&rl(2), next), Some(Duration::from_secs(2)));
    assert_eq!(honour_retry_after(&rl(0), next), next);
    assert_eq!(honour_retry_after(&rl(60), next), None);
    assert_eq!(honour_retry_after(&rl(2), None), None);
    assert_eq!(honour_retry_after(&FlyError::Transient(ErrorInfo::default()), next), next);
}

#[test]
fn empty_body_decodes_to_default() {
    let r = Response { status: 201, request_id: None, body: b"  ".to_vec() };
    let v: Vec<u8> = r.json("x").unwrap();
    assert!(v.is_empty());
    let r = Response { status: 200, request_id: Some("rid".into()), body: b"{nope".to_vec() };
    let e = r.json::<Vec<u8>>("thing").unwrap_err();
    assert_eq!(e.kind(), "decode");
    assert_eq!(e.request_id(), Some("rid"));
}

#[test]
fn debug_hides_token() {
    let t = Transport::new(
        "http://h",
        Secret::new("fm2_hidden_token"),
        Duration::from_secs(1),
        true,
        None,
    )
    .unwrap();
    assert!(!format!("{t:?}").contains("fm2_hidden_token"));
    let bad = Transport::new(
        "http://h",
        Secret::new("fm2_bad\ntoken"),
        Duration::from_secs(1),
        true,
        None,
    );
    let msg = bad.unwrap_err().to_string();
    assert!(!msg.contains("fm2_bad"), "{msg}");
}

#[test]
fn every_action_is_a_pre_initialised_metric_label() {
    let labels: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(labels, crate::ops::metrics::FLY_ACTIONS);
}
