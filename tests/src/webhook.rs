//! A webhook receiver on a loopback port: records each JSON body it
//! accepts, and answers 500 to the first `fail_first` attempts (to prove
//! senders retry).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

/// The receiver; stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    attempts: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    /// Listens on `127.0.0.1:0`; the first `fail_first` requests get 500.
    pub async fn start(fail_first: usize) -> Webhook {
        Webhook::start_with(fail_first, None).await
    }

    /// One that serves HTTPS with `issued` (see [`crate::tls`]).
    pub async fn start_tls(issued: &crate::tls::Issued) -> Webhook {
        Webhook::start_with(0, Some(crate::tls::acceptor(issued, &[]))).await
    }

    async fn start_with(fail_first: usize, acceptor: Option<tokio_rustls::TlsAcceptor>) -> Webhook {
        let attempts: Arc<AtomicUsize> = Arc::default();
        let accepted: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let (a, b) = (attempts.clone(), accepted.clone());
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let addr = crate::serve_loopback_with(acceptor, move |request| {
            receive(a.clone(), b.clone(), fail_first, request)
        })
        .await;
        Webhook {
            url: format!("{scheme}://{addr}/hook"),
            attempts,
            accepted,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received, accepted or not.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Waits (at most `timeout`) until `count` bodies were accepted; returns
    /// those accepted by then.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let accepted = self.accepted.lock().expect("not poisoned").clone();
            if accepted.len() >= count || Instant::now() >= deadline {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    attempts: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
    fail_first: usize,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let attempt = attempts.fetch_add(1, Ordering::SeqCst);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::new()));
    if attempt < fail_first {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return response;
    }
    match serde_json::from_slice(&body) {
        Ok(json) => accepted.lock().expect("not poisoned").push(json),
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}
