//! A pass never waits in its worker slot for Fly's budget longer than it may: past the bound
//! the request is not sent and the error says when the budget has room.

use std::time::Duration;

use crate::support::fly_mock::{Mock, TOKEN, client_with, err, reply};
use fly_preview_controller::fly::{FlyError, bounded_waits};
use serde_json::Value;

#[tokio::test]
async fn a_long_budget_wait_is_returned_not_slept() {
    let m = Mock::start([]).await;
    m.fallback(reply(200, Value::Null));
    let (c, metrics) = client_with(&m.url, TOKEN, true, Duration::from_secs(5));
    let t0 = tokio::time::Instant::now();
    // Twenty passes at once, each in its own slot: ten take the burst, the next one waits
    // 0.67 s, the rest would wait longer than the 1 s bound and are refused unsent.
    let calls = (0..20).map(|i| {
        let c = c.clone();
        bounded_waits(
            Duration::from_secs(1),
            async move { c.delete_app(&format!("app-{i}")).await },
        )
    });
    let results = futures::future::join_all(calls).await;
    let sent = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(sent, 11, "the burst of 10, then one within the 1 s bound: {results:?}");
    for e in results.into_iter().filter_map(Result::err) {
        let FlyError::RateLimited { retry_after: Some(after), info } = e else { panic!("{e:?}") };
        assert!(after > Duration::from_secs(1) && after < Duration::from_secs(2), "{after:?}");
        assert_eq!((info.status, info.call), (None, Some("delete_app")), "never sent");
    }
    assert!(t0.elapsed() < Duration::from_secs(2), "slept {:?}", t0.elapsed());
    assert_eq!(m.count(), 11);
    assert!(metrics.fly_throttled.with_label_values(&["delete_app"]).get() >= 2);
    assert!(!c.breaker().is_open());
}

#[tokio::test]
async fn a_429_with_a_long_retry_after_is_returned_not_slept() {
    let m = Mock::start([err(429, "slow down").header("retry-after", "5")]).await;
    let (c, _) = client_with(&m.url, TOKEN, true, Duration::from_secs(5));
    let t0 = tokio::time::Instant::now();
    let e = bounded_waits(Duration::from_secs(1), c.get_app("a")).await.unwrap_err();
    assert!(
        matches!(e, FlyError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(5)),
        "{e:?}"
    );
    assert_eq!(m.count(), 1, "no inline retry");
    assert!(t0.elapsed() < Duration::from_secs(1));
}
