//! Test support: start a real Trellis server on an ephemeral loopback port
//! and talk to it over HTTP/1.1 or HTTP/2 with a real client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use trellis::{Config, Server, ServerHandle};

pub mod kv;
pub mod node;
pub mod origin;
pub mod otlp;
pub mod pg;
pub mod redis;
pub mod tasks;
pub mod tls;
pub mod webhook;
pub mod wit_doc;

/// A running server and clients for it. Shuts down when dropped.
#[derive(Debug)]
pub struct TestServer {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    /// The node's own admin token (no `admin.tokens` configured), sent with
    /// admin writes that carry no `authorization` of their own.
    admin_token: Option<String>,
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
}

/// The HTTP version a test request uses (HTTP/2 is cleartext, prior knowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2.
    Http2,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (failing the test) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is a problem+json error with `status` and `code` that
    /// carries the request id, and returns its body.
    pub fn assert_problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["code"], code, "body: {body}");
        let id = self.header("x-request-id").expect("x-request-id header");
        assert_eq!(body["request_id"], id);
        body
    }
}

/// The path of a guest component built from `plugins/`.
pub fn guest(name: &str) -> &'static str {
    trellis::examples::guest_path(name).unwrap_or_else(|| panic!("no guest `{name}` was built"))
}

/// A compile cache shared by all tests, so each component compiles once.
pub fn cache_dir() -> PathBuf {
    std::env::temp_dir().join("trellis-test-compile-cache")
}

/// A fresh, empty directory for one test's runtime state.
pub fn fresh_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("trellis-tests-{}/data-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create data dir");
    dir
}

/// A config from `toml`, with test-friendly settings applied as environment
/// overrides: an ephemeral port, a fresh data directory, the shared compile
/// cache, a small pool.
pub fn config(toml: &str) -> Config {
    config_in(toml, &fresh_dir())
}

/// As [`config`], with runtime state in `data_dir` (to restart on it).
pub fn config_in(toml: &str, data_dir: &Path) -> Config {
    let env = [
        ("TRELLIS_SERVER__LISTEN", "127.0.0.1:0".to_string()),
        (
            "TRELLIS_DATA_DIR",
            format!("{:?}", data_dir.display().to_string()),
        ),
        ("TRELLIS_ENGINE__MAX_INSTANCES", "64".to_string()),
        (
            "TRELLIS_ENGINE__CACHE_DIR",
            format!("{:?}", cache_dir().display().to_string()),
        ),
    ];
    // A test that sizes the instance pool, or names a data directory to
    // share between processes, keeps its own.
    let env = env
        .into_iter()
        .filter(|(k, _)| !(*k == "TRELLIS_ENGINE__MAX_INSTANCES" && toml.contains("max_instances")))
        .filter(|(k, _)| !(*k == "TRELLIS_DATA_DIR" && toml.starts_with("data_dir")))
        .map(|(k, v)| (k.to_string(), v));
    Config::parse(toml, Path::new("test.toml"), env)
        .unwrap_or_else(|e| panic!("test config is invalid: {e}"))
}

/// Where the admin writes are that get the node's own token.
const ADMIN_PATHS: &[&str] = &["/admin/", "/api/v1/jobs", "/api/v1/monitoring/"];

impl TestServer {
    /// Starts a server for `toml` (see [`config`]).
    pub async fn start(toml: &str) -> TestServer {
        TestServer::start_config(&config(toml)).await
    }

    /// Starts a server for `config` as given.
    pub async fn start_config(config: &Config) -> TestServer {
        let server = Server::start(config)
            .await
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let handle = server.spawn().expect("server has an address");
        let mut client = TestServer::at(handle.addr());
        client.handle = Some(handle);
        if config.admin.tokens.is_empty() {
            let path = trellis::http::auth::node_token_path(&config.data_dir);
            client.admin_token = std::fs::read_to_string(path).ok();
        }
        client
    }

    /// Clients for a server running elsewhere (another process) at `addr`.
    pub fn at(addr: SocketAddr) -> TestServer {
        TestServer {
            handle: None,
            addr,
            admin_token: None,
            http1: Client::builder(TokioExecutor::new()).build_http(),
            http2: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` over HTTP/1.1.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// Any request over HTTP/1.1.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.send_on(Protocol::Http1, method, path, headers, body)
            .await
    }

    /// Any request over `protocol`.
    pub async fn send_on(
        &self,
        protocol: Protocol,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let client = match protocol {
            Protocol::Http1 => &self.http1,
            Protocol::Http2 => &self.http2,
        };
        self.send_with(client, method, path, headers, body.into())
            .await
    }

    async fn send_with(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let token = self
            .admin_token
            .as_ref()
            .filter(|_| method != Method::GET && method != Method::HEAD)
            .filter(|_| ADMIN_PATHS.iter().any(|p| path.starts_with(p)))
            .filter(|_| {
                !headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            });
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).expect("valid request");
        let response = client.request(request).await.expect("server answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("whole body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The node's own admin token, when it made one.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Another client of the same server, with the same admin token.
    pub fn client(&self) -> TestServer {
        let mut client = TestServer::at(self.addr);
        client.admin_token = self.admin_token.clone();
        client
    }

    /// The node's own admin token, which this client stops sending.
    pub fn take_admin_token(&mut self) -> Option<String> {
        self.admin_token.take()
    }

    /// Stops the server gracefully.
    pub async fn shutdown(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

/// The resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Sends `bytes` on a fresh TCP connection and returns what the server
/// answers until it closes the connection or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Serves `handler` over HTTP/1.1 on a fresh loopback port until the
/// test's runtime ends (a stand-in peer: OTLP collector, webhook).
pub async fn serve_loopback<H, F>(handler: H) -> SocketAddr
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
{
    serve_loopback_with(None, handler).await
}

/// As [`serve_loopback`], over TLS with `acceptor` when given.
pub async fn serve_loopback_with<H, F>(
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
) -> SocketAddr
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = handler(request);
                    async move { Ok::<_, std::convert::Infallible>(response.await) }
                });
                let http1 = hyper::server::conn::http1::Builder::new();
                let _ = match acceptor {
                    None => {
                        http1
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await
                    }
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(stream) => {
                            http1
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await
                        }
                        Err(_) => return,
                    },
                };
            });
        }
    });
    addr
}

/// Writes `bytes` to a fresh file in a per-process temp dir and returns its path.
pub fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}
