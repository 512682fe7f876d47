//! The admin server's accept loop, hardened against slow or idle clients: HTTP/1 only, a
//! header read timeout, a cap on the request head, a lifetime per connection (which bounds
//! slow bodies too), and a cap on open connections. At the cap the *oldest* connection is
//! closed to make room, so a flood of half-open connections cannot keep a liveness probe out
//! (closing the newest would refuse exactly the probe). Requests with a body over
//! [`MAX_BODY`] bytes are refused (no route takes a body).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Longest wait for a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection (keep-alive scrapes reconnect).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Open connections at most (well under a 1,024 open-file limit).
pub const MAX_CONNECTIONS: usize = 256;
/// Largest request head (request line + headers), bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body, bytes.
pub const MAX_BODY: u64 = 1024;

/// Open connections by id; dropping a sender closes that connection.
type Open = Arc<Mutex<BTreeMap<u64, oneshot::Sender<()>>>>;

/// Refuses declared bodies over [`MAX_BODY`] (no admin route reads a body).
async fn limit_body(req: Request<Body>, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.is_some_and(|n| n > MAX_BODY) || chunked {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    }
    next.run(req).await
}

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, app: Router) {
    let app = app.layer(middleware::from_fn(limit_body));
    let open: Open = Arc::default();
    let mut next_id = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "admin server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_id += 1;
        let (tx, rx) = oneshot::channel();
        {
            let mut map = open.lock().unwrap_or_else(|p| p.into_inner());
            while map.len() >= MAX_CONNECTIONS {
                map.pop_first(); // closes the oldest connection
            }
            map.insert(next_id, tx);
        }
        tokio::spawn(connection(stream, app.clone(), rx, open.clone(), next_id));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    evicted: oneshot::Receiver<()>,
    open: Open,
    id: u64,
) {
    let svc = TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = evicted => {}
        _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
    }
    open.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
}
