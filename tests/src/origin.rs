//! An origin server on loopback for the outbound HTTP tests: HTTP/1.1 and
//! HTTP/2 (cleartext, or TLS with ALPN), counting the connections it
//! accepts and recording what each request carried.
//!
//! - `/slow`: answers after 2 s.
//! - `/big`: a 3 MiB body.
//! - `/redirect?to=U`: 302 to `U`.
//! - anything else: `upstream <path>`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its path and query.
    pub target: String,
    /// Its HTTP version.
    pub version: Version,
    /// Its `traceparent`, if any.
    pub traceparent: Option<String>,
}

/// The origin; it stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct Origin {
    addr: SocketAddr,
    scheme: &'static str,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    /// Cleartext HTTP/1.1 and HTTP/2 (prior knowledge) on `127.0.0.1:0`.
    pub async fn start() -> Origin {
        Origin::start_with(None).await
    }

    /// HTTPS with `issued`, HTTP/2 or HTTP/1.1 by ALPN.
    pub async fn start_tls(issued: &crate::tls::Issued) -> Origin {
        Origin::start_with(Some(crate::tls::acceptor(issued, &[b"h2", b"http/1.1"]))).await
    }

    async fn start_with(acceptor: Option<tokio_rustls::TlsAcceptor>) -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let origin = Origin {
            addr: listener.local_addr().expect("bound"),
            scheme: if acceptor.is_some() { "https" } else { "http" },
            connections: Arc::default(),
            seen: Arc::default(),
        };
        let o = origin.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                o.connections.fetch_add(1, Ordering::SeqCst);
                let (o, acceptor) = (o.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let o = o.clone();
                        async move { Ok::<_, std::convert::Infallible>(o.answer(request).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        None => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        origin
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        self.seen.lock().expect("not poisoned").push(Seen {
            target: target.clone(),
            version: request.version(),
            traceparent: request
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
        let path = request.uri().path();
        let ok = |body: Bytes| {
            Response::builder()
                .status(StatusCode::OK)
                .body(Full::new(body))
                .expect("a response")
        };
        match path {
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                ok(Bytes::from_static(b"slow"))
            }
            "/big" => ok(Bytes::from(vec![b'x'; 3 << 20])),
            "/redirect" => {
                let to = request
                    .uri()
                    .query()
                    .and_then(|q| q.strip_prefix("to="))
                    .unwrap_or("/")
                    .to_string();
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header("location", to)
                    .body(Full::new(Bytes::new()))
                    .expect("a response")
            }
            _ => ok(Bytes::from(format!("upstream {path}"))),
        }
    }

    /// `scheme://127.0.0.1:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}
