//! `FlyClient` machine calls against a scripted axum mock: request shapes, retries and
//! error classification (ambiguous creates, rate limits, lease conflicts).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::MachineState;
use crate::support::fly_mock::*;
use axum::http::Method;
use fly_preview_controller::fly::FlyError;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

// ---------------------------------------------------------------- machines

#[tokio::test]
async fn list_machines_with_metadata_filters_and_lenient_decoding() {
    let odd = json!({"id": "m2", "state": "hibernating", "private_ip": "fdaa::2", "host_status": "ok",
        "config": {"image": "i", "services": [{"protocol": "tcp", "internal_port": 3000, "autostop": true,
                   "ports": [{"port": 443, "handlers": ["tls", "http"], "tls_options": {}}]}],
                   "init": {"cmd": ["x"]}, "metadata": {"preview-id": "p"}},
        "events": null, "checks": null, "nonce": "abc", "image_ref": {"tag": "latest"}});
    let m = Mock::start([
        reply(200, json!([machine_json("m1", "started"), odd])),
        reply(200, json!([])),
    ])
    .await;
    let c = client(&m);
    let ms = c
        .list_machines("app", &[("managed-by", "fly-preview-controller"), ("preview-id", "p 1")])
        .await
        .unwrap();
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::GET, "/v1/apps/app/machines"));
    assert_eq!(s.query, "metadata.managed-by=fly-preview-controller&metadata.preview-id=p+1");
    assert_eq!(ms[1].state, MachineState::from("hibernating"));
    let cfg = ms[1].config.as_ref().unwrap();
    assert_eq!(cfg.services[0].autostop, Some(json!(true)));
    assert_eq!(cfg.services[0].autostop_mode(), Some("stop"));
    assert!(cfg.extra.contains_key("init"));
    assert_eq!(ms[0].events[0].kind, "launch");
    assert!(c.list_machines("app", &[]).await.unwrap().is_empty());
    assert_eq!(m.last().query, "");
}

#[tokio::test]
async fn create_machine_request_shape() {
    let m = Mock::start([reply(200, machine_json("1857156b526dd8", "created"))]).await;
    let c = client(&m);
    let got = c.create_machine("app", &create_req()).await.unwrap();
    assert_eq!((got.id.as_str(), &got.state), ("1857156b526dd8", &MachineState::Created));
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/apps/app/machines"));
    assert_eq!(s.body["region"], "ams");
    assert_eq!(s.body["config"]["services"][0]["autostop"], "suspend");
    assert_eq!(s.body["config"]["metadata"]["launch-marker"], "01HMARK");
    assert!(s.body.get("name").is_none() && s.body.get("skip_launch").is_none());
}

#[tokio::test]
async fn create_machine_failures_are_ambiguous_and_never_retried() {
    let m = Mock::start([
        err(503, "service unavailable"),
        err(408, "deadline_exceeded: context deadline exceeded"),
        err(500, "boom"),
        err(429, "slow down").header("retry-after", "1"),
        err(422, "invalid_argument: image required"),
        reply(200, Value::Null),
        reply(200, json!("not a machine")),
    ])
    .await;
    let c = client(&m);
    for want in
        ["ambiguous_create", "ambiguous_create", "ambiguous_create", "rate_limited", "permanent"]
    {
        let e = c.create_machine("app", &create_req()).await.unwrap_err();
        assert_eq!(e.kind(), want, "{e:?}");
        assert!(e.request_id().is_some());
    }
    for _ in 0..2 {
        let e = c.create_machine("app", &create_req()).await.unwrap_err();
        assert!(matches!(e, FlyError::AmbiguousCreate(_)), "2xx without a usable machine: {e:?}");
    }
    assert_eq!(m.count(), 7, "one request per call");
}

#[tokio::test]
async fn create_machine_connection_dropped_is_ambiguous() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            acc.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 64 * 1024];
            let _ = sock.read(&mut buf).await;
            drop(sock); // request received, no response
        }
    });
    let (c, metrics) = client_with(&url, TOKEN, false, Duration::from_secs(5));
    let e = c.create_machine("app", &create_req()).await.unwrap_err();
    assert!(matches!(e, FlyError::AmbiguousCreate(_)), "{e:?}");
    assert_eq!(e.status(), None);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(counter(&metrics, "create_machine", "transport"), 1);
    // Idempotent reads against the same server are retried: 1 + 3 attempts.
    let e = c.get_machine("app", "m").await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn connection_refused_is_transient_even_for_create() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (c, _) = client_with(&url, TOKEN, false, Duration::from_secs(2));
    let e = c.create_machine("app", &create_req()).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)), "nothing was sent: {e:?}");
}

#[tokio::test]
async fn get_machine_retries_5xx_then_succeeds() {
    let m = Mock::start([
        err(502, "bad gateway"),
        err(503, "unavailable"),
        reply(200, machine_json("m1", "started")),
    ])
    .await;
    let (c, metrics) = client_with(&m.url, TOKEN, false, Duration::from_secs(5));
    let got = c.get_machine("app", "m1").await.unwrap();
    assert_eq!(got.instance_id.as_deref(), Some("01HEPA330HZ37A78TK080NAK1M"));
    assert_eq!(m.count(), 3);
    assert_eq!(m.last().path, "/v1/apps/app/machines/m1");
    assert_eq!(counter(&metrics, "get_machine", "5xx"), 2);
    assert_eq!(counter(&metrics, "get_machine", "2xx"), 1);
    // Persistent 5xx: 1 + 3 retries, then Transient.
    m.fallback(err(500, "still broken"));
    let e = c.get_machine("app", "m1").await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)) && e.is_retryable());
    assert_eq!(m.count(), 7);
}

#[tokio::test]
async fn get_machine_garbage_2xx_is_decode_error() {
    let m = Mock::start([reply(200, json!("<html>oops"))]).await;
    let e = client(&m).get_machine("app", "m").await.unwrap_err();
    assert!(matches!(e, FlyError::Decode(_)), "{e:?}");
    assert_eq!(e.status(), Some(200));
}

#[tokio::test]
async fn rate_limited_get_honours_retry_after_and_create_does_not_retry() {
    let m = Mock::start([
        err(429, "rate limit exceeded").header("retry-after", "1"),
        reply(200, machine_json("m", "started")),
        err(429, "rate limit exceeded"),
        reply(200, machine_json("m", "started")),
        err(429, "rate limit exceeded").header("retry-after", "120"),
    ])
    .await;
    let (c, metrics) = client_with(&m.url, TOKEN, false, Duration::from_secs(5));
    c.get_machine("app", "m").await.unwrap();
    assert_eq!(m.count(), 2);
    c.get_machine("app", "m").await.unwrap();
    assert_eq!(m.count(), 4);
    // A long Retry-After is handed back to the caller instead of being slept on.
    let e = c.get_machine("app", "m").await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(m.count(), 5);
    assert_eq!(metrics.fly_rate_limited.get(), 3);
    assert_eq!(counter(&metrics, "get_machine", "429"), 3);
}

#[tokio::test]
async fn update_start_stop_destroy_shapes_and_conflicts() {
    let m = Mock::start([
        reply(200, machine_json("m1", "updating")),
        err(409, "machine ID m1 lease currently held by x@y, expires at 2024-01-01T00:00:00Z"),
        err(412, "failed_precondition: machine getting replaced, refusing to start"),
        reply(200, json!({"previous_state": "stopped"})),
        err(503, "flaky"),
        reply(200, json!({"ok": true})),
        reply(200, json!({"ok": true})),
        reply(200, json!({"ok": true})),
        err(503, "no"),
    ])
    .await;
    let c = client(&m);
    let mut req = create_req();
    req.current_version = Some("01HV".into());
    req.skip_launch = Some(true);
    c.update_machine("app", "m1", &req).await.unwrap();
    let s = m.last();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/apps/app/machines/m1"));
    assert_eq!(
        (&s.body["current_version"], &s.body["skip_launch"]),
        (&json!("01HV"), &json!(true))
    );
    let e = c.update_machine("app", "m1", &req).await.unwrap_err();
    assert!(matches!(e, FlyError::LeaseConflict(_)) && e.status() == Some(409));
    let e = c.start_machine("app", "m1").await.unwrap_err();
    assert!(matches!(e, FlyError::LeaseConflict(_)) && e.status() == Some(412));
    c.start_machine("app", "m1").await.unwrap();
    assert_eq!(
        (m.last().method, m.last().path),
        (Method::POST, "/v1/apps/app/machines/m1/start".into())
    );
    c.stop_machine("app", "m1").await.unwrap(); // 503 then 200: retried
    assert_eq!(m.last().path, "/v1/apps/app/machines/m1/stop");
    c.destroy_machine("app", "m1", true).await.unwrap();
    assert_eq!((m.last().method, m.last().query), (Method::DELETE, "force=true".into()));
    c.destroy_machine("app", "m1", false).await.unwrap();
    assert_eq!(m.last().query, "");
    let e = c.update_machine("app", "m1", &req).await.unwrap_err();
    assert!(matches!(e, FlyError::Transient(_)));
    assert_eq!(m.count(), 9, "update is not retried");
}
