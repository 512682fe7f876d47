//! `FlyClient` against a scripted axum mock: the `/wait` loop, org-wide machine listing,
//! request timeouts, the client-side token buckets and lenient config decoding.

use std::time::Duration;

use crate::support::MachineState;
use crate::support::fly_mock::*;
use fly_preview_controller::fly::{FlyError, MachineConfig, WaitOutcome};
use serde_json::json;

// ---------------------------------------------------------------- wait

#[tokio::test]
async fn wait_loops_through_408_until_reached() {
    let not_yet =
        "deadline_exceeded: machine failed to reach desired state, started, currently starting";
    let m = Mock::start([
        err(408, not_yet),
        err(408, not_yet),
        reply(200, json!({"ok": true, "state": "started"})),
    ])
    .await;
    let c = client(&m);
    let out = c
        .wait_machine("app", "m1", &MachineState::Started, Some("01HV"), Duration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(out, WaitOutcome::Reached { state: MachineState::Started });
    assert_eq!(m.count(), 3);
    let s = m.last();
    assert_eq!(s.path, "/v1/apps/app/machines/m1/wait");
    assert_eq!(q(&s, "state"), ["started"]);
    assert_eq!(q(&s, "timeout"), ["60"], "clamped to 60");
    assert_eq!(q(&s, "instance_id"), ["01HV"]);
    assert_eq!(q(&s, "version"), ["01HV"]);
}

#[tokio::test]
async fn wait_total_deadline_stops_looping() {
    let m = Mock::start([]).await;
    m.fallback(err(408, "deadline_exceeded: machine failed to reach desired state"));
    let c = client(&m);
    let out = c
        .wait_machine("app", "m1", &MachineState::Started, None, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(out, WaitOutcome::TimedOut);
    let seen = m.seen();
    assert!((2..=6).contains(&seen.len()), "{}", seen.len());
    for s in &seen {
        let t: u64 = q(s, "timeout")[0].parse().unwrap();
        assert!((1..=2).contains(&t), "{t}");
        assert!(q(s, "instance_id").is_empty());
    }
}

#[tokio::test]
async fn wait_timeout_param_is_at_least_one() {
    let m = Mock::start([reply(200, json!({"ok": true}))]).await;
    let out = client(&m)
        .wait_machine("app", "m", &MachineState::Stopped, None, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        out,
        WaitOutcome::Reached { state: MachineState::Stopped },
        "falls back to the requested state"
    );
    assert_eq!(q(&m.last(), "timeout"), ["1"]);
}

#[tokio::test]
async fn wait_errors() {
    let bad = "invalid_argument: invalid WaitMachineRequest.Timeout: value must be inside range [1s, 1m0s]";
    let m =
        Mock::start([err(400, bad), err(404, "machine not found"), err(404, "machine not found")])
            .await;
    let c = client(&m);
    let e = c
        .wait_machine("app", "m", &MachineState::Started, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, FlyError::Permanent(_)) && e.message() == bad, "{e:?}");
    let e = c
        .wait_machine("app", "m", &MachineState::Started, None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, FlyError::NotFound(_)));
    let out = c
        .wait_machine("app", "m", &MachineState::Destroyed, None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out, WaitOutcome::Reached { state: MachineState::Destroyed });
    assert_eq!(m.count(), 3);
}

// ---------------------------------------------------------------- org listing

#[tokio::test]
async fn list_org_machines_shape() {
    let page = json!({"machines": [{"id": "m", "name": "n", "app_name": "roseram-1", "state": "started",
        "updated_at": "2024-05-01T00:00:00Z", "config": {"image": "i", "metadata": {"managed-by": "x"}}}],
        "next_cursor": "c2", "last_machine_id": "m", "last_updated_at": "2024-05-01T00:00:00Z", "error_regions": null});
    let m = Mock::start([reply(200, page), reply(200, json!({}))]).await;
    let c = client(&m);
    let after = chrono::DateTime::parse_from_rfc3339("2024-04-30T12:00:00Z").unwrap().to_utc();
    let p = c.list_org_machines("personal", Some(after), Some("c1")).await.unwrap();
    assert_eq!(
        (p.machines[0].app_name.as_str(), p.next_cursor.as_deref()),
        ("roseram-1", Some("c2"))
    );
    let s = m.last();
    assert_eq!(s.path, "/v1/orgs/personal/machines");
    assert_eq!(
        (q(&s, "updated_after"), q(&s, "cursor"), q(&s, "include_deleted")),
        (vec!["2024-04-30T12:00:00Z".into()], vec!["c1".into()], vec!["true".into()])
    );
    let p = c.list_org_machines("personal", None, None).await.unwrap();
    assert!(p.machines.is_empty() && p.next_cursor.is_none());
    assert_eq!(
        m.last().query,
        "include_deleted=true",
        "drift detection must see destroyed machines"
    );
}

// ---------------------------------------------------------------- timeouts & buckets

#[tokio::test]
async fn request_timeout_classification() {
    let m = Mock::start([]).await;
    m.fallback(reply(200, json!({})).delay(Duration::from_secs(3)));
    let (c, metrics) = client_with(&m.url, TOKEN, false, Duration::from_millis(200));
    let e = c.get_app("slow").await.unwrap_err();
    assert!(matches!(e, FlyError::Timeout(_)) && e.is_retryable(), "{e:?}");
    assert_eq!(m.count(), 4, "timeouts on reads are retried");
    assert_eq!(counter(&metrics, "get_app", "transport"), 4);
    let e = c.create_machine("app", &create_req()).await.unwrap_err();
    assert!(matches!(e, FlyError::AmbiguousCreate(_)), "{e:?}");
    assert_eq!(m.count(), 5);
}

#[tokio::test]
async fn token_bucket_throttles_third_rapid_request_per_action_and_id() {
    let m = Mock::start([]).await;
    m.fallback(reply(200, json!({"name": "a"})));
    let (c, metrics) = client_with(&m.url, TOKEN, true, Duration::from_secs(5));
    let throttled = |a: &str| metrics.fly_throttled.with_label_values(&[a]).get();
    // Fly allows bursts of 3; the client keeps one token in hand (burst 2).
    for _ in 0..2 {
        c.get_app("a").await.unwrap();
    }
    assert_eq!(throttled("get_app"), 0);
    c.get_app("b").await.unwrap(); // another id: own bucket
    c.list_ips("a").await.unwrap(); // another action: own bucket
    assert_eq!(throttled("get_app"), 0);
    c.get_app("a").await.unwrap();
    assert_eq!(throttled("get_app"), 1);
    assert_eq!(throttled("list_ips"), 0);
    // get_machine allows bursts of 10.
    m.fallback(reply(200, machine_json("m", "started")));
    for _ in 0..10 {
        c.get_machine("app", "m").await.unwrap();
    }
    assert_eq!(throttled("get_machine"), 0);
    c.get_machine("app", "m").await.unwrap();
    assert_eq!(throttled("get_machine"), 1);
}

#[tokio::test]
async fn lenient_config_round_trip_keeps_unknown_fields() {
    let v = json!({"image": "i", "mounts": [{"volume": "vol_1", "path": "/data"}], "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}});
    let m = Mock::start([reply(200, json!({"id": "m", "state": "stopped", "config": v}))]).await;
    let got = client(&m).get_machine("app", "m").await.unwrap();
    let cfg: MachineConfig = got.config.unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), v);
}
