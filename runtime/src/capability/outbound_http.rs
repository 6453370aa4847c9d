//! Outgoing HTTP (`outbound-http`): `trellis:plugin/outbound-http` for our
//! own world (`fetch`, following redirects) and the
//! `wasi:http/outgoing-handler` of mounted components, both through a
//! pooled client per plugin version.
//!
//! - **Who may go where**: a plugin with the `outbound-http` grant reaches
//!   the hosts of its `allowed_outbound_hosts` and nothing else. A request
//!   to any other host is refused before a socket opens
//!   (`HttpRequestDenied` to the guest, a log line naming the plugin and
//!   the host). A mounted component's redirects reach it as they are (one
//!   it follows is a new request, checked like any other); our world's
//!   `fetch` follows five at most, checking each target the same way.
//! - **Private addresses** (loopback, RFC 1918, link-local, unique local,
//!   unspecified) are reachable only through an entry naming that host
//!   exactly: a name a wildcard entry matches that resolves to one is
//!   refused (`DestinationIpProhibited`), checked on the addresses the
//!   connection uses (the client's resolver filters them), so DNS cannot
//!   smuggle a wildcard entry into the private network.
//! - **The client**: hyper-util's pooled client (keep-alive, HTTP/2 by
//!   ALPN over TLS), rustls with the system's roots plus the plugin's
//!   `outbound.ca_file`. One per plugin version: its connect timeout and
//!   address policy are the plugin's, and no plugin can hold the
//!   connections another needs.
//! - **Bounds** (`[plugins.<name>.outbound]`): connect timeout (the
//!   connector's), time to the response's head, total time, requests in
//!   flight (`ConnectionLimitReached` beyond), response body size
//!   (`HttpResponseBodySize`, the body breaks off). A guest's own
//!   `request-options` can only shorten them.
//! - **Seen**: each request carries the guest call's `traceparent` under a
//!   client span of its own, and is counted in
//!   `outbound_requests_total{plugin,host,status}` and timed in
//!   `outbound_request_duration_seconds`; the pool's connections are
//!   counted as they open (`outbound_connections_opened_total{plugin}`)
//!   and while they stay open (`outbound_connections_open{plugin}`), so
//!   reuse shows as requests per connection opened.
//!
//! Layer: `capability`; it uses `config`, `monitor` and `tls`.

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::bindings::outbound_http;
use super::{Capability, HostState, PluginContext, PluginSetup, Runtime};
use crate::config::{AllowedHost, Limits, OutboundConfig, outbound::default_port};
use crate::monitor::PluginStats;

/// The `outbound-http` capability: no service of its own.
#[derive(Debug)]
pub struct OutboundHttp;

/// What a plugin version may reach, and its client.
pub struct Policy {
    plugin: String,
    allowed: Vec<AllowedHost>,
    bounds: OutboundConfig,
    in_flight: Arc<Semaphore>,
    client: Client<HttpsConnector<Counted>, WasiBody>,
    /// The plugin's metric handles, for the connector (set by the first
    /// request: the version's context does not exist while it is built).
    stats: Arc<OnceLock<PluginStats>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("plugin", &self.plugin)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// One instance's outgoing requests: the `wasi:http` hooks.
#[allow(missing_debug_implementations)]
pub struct OutboundInstance {
    policy: Option<Arc<Policy>>,
    /// The plugin, for its metrics and tracer (set on first use).
    plugin: Option<Arc<PluginContext>>,
    /// The guest call's span: outgoing requests are its children.
    trace: opentelemetry::Context,
}

impl Capability for OutboundHttp {
    const NAME: &'static str = "outbound-http";
    type Plugin = Option<Arc<Policy>>;
    type Instance = OutboundInstance;

    async fn start(_runtime: &Runtime<'_>) -> Result<Self, String> {
        Ok(OutboundHttp)
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        // `wasi:http/outgoing-handler` is linked with the rest of
        // `wasi:http` (`wasi_http`); this capability supplies its hooks,
        // and the own world's `outbound-http`.
        outbound_http::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
    }

    async fn configure(&self, plugin: &PluginSetup<'_>) -> Result<Self::Plugin, String> {
        policy(plugin)
    }

    /// The instance that reads a manifest makes no outgoing request: no
    /// client is built for it (the configured version builds its own).
    fn unconfigured(&self, _plugin: &PluginSetup<'_>) -> Self::Plugin {
        None
    }

    fn prepare(&self, policy: &Self::Plugin, _limits: &Limits) -> OutboundInstance {
        OutboundInstance {
            policy: policy.clone(),
            plugin: None,
            trace: opentelemetry::Context::new(),
        }
    }
}

/// The policy of a plugin granted `outbound-http` with hosts to reach.
fn policy(plugin: &PluginSetup<'_>) -> Result<Option<Arc<Policy>>, String> {
    let config = plugin.config;
    if !config.grants.iter().any(|g| g == OutboundHttp::NAME)
        || config.allowed_outbound_hosts.is_empty()
    {
        return Ok(None);
    }
    let allowed = config.allowed_hosts();
    let bounds = config.outbound.clone();
    let exact: HashSet<String> = allowed
        .iter()
        .filter_map(|a| a.exact_host().map(str::to_ascii_lowercase))
        .collect();
    let stats = Arc::new(OnceLock::new());
    let mut http = HttpConnector::new_with_resolver(Resolver {
        exact: Arc::new(exact),
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(bounds.connect_timeout));
    http.set_nodelay(true);
    let tls = crate::tls::client_config(bounds.ca_file.as_deref())
        .map_err(|e| format!("plugins.{}.outbound.ca_file: {e}", plugin.name))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(Counted {
            inner: http,
            stats: stats.clone(),
        });
    let pooled = !bounds.pool_idle_timeout.is_zero();
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(bounds.pool_idle_timeout)
        .pool_max_idle_per_host(if pooled { bounds.max_concurrent } else { 0 })
        .build(connector);
    Ok(Some(Arc::new(Policy {
        plugin: plugin.name.to_string(),
        allowed,
        in_flight: Arc::new(Semaphore::new(bounds.max_concurrent)),
        bounds,
        client,
        stats,
    })))
}

impl OutboundInstance {
    /// Called for each `wasi:http` host call: keeps what an outgoing
    /// request needs from the instance (only when the plugin may make one).
    pub(super) fn attach(&mut self, plugin: &Arc<PluginContext>, trace: &opentelemetry::Context) {
        if self.policy.is_none() {
            return;
        }
        if self.plugin.is_none() {
            self.plugin = Some(plugin.clone());
        }
        self.trace = trace.clone();
    }
}

/// What one outgoing request is refused or fails with, and its label.
fn refuse(plugin: Option<&Arc<PluginContext>>, host: &str, label: &str, err: Error) -> Error {
    if let Some(plugin) = plugin {
        plugin.stats.outbound(host, label, None);
    }
    err
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl Policy {
    /// Checks `uri` against the allow-list; the refusal, counted and
    /// (within the log's budget) logged, when it may not go.
    fn admit(&self, plugin: Option<&Arc<PluginContext>>, uri: &http::Uri) -> Result<(), Error> {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri
            .port_u16()
            .or_else(|| default_port(&scheme))
            .unwrap_or(0);
        let Some(entry) = self.allowed.iter().find(|a| a.allows(&scheme, &host, port)) else {
            if denials_may_log() {
                tracing::warn!(plugin = %self.plugin, %scheme, %host, port, "outgoing request denied: not in allowed_outbound_hosts");
            }
            return Err(refuse(plugin, &host, "denied", Error::HttpRequestDenied));
        };
        // An address in the URL is not resolved: check it here.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>()
            && is_private(ip)
            && !entry.is_exact()
        {
            if denials_may_log() {
                tracing::warn!(plugin = %self.plugin, %host, "outgoing request denied: a private address needs an entry naming it");
            }
            return Err(refuse(
                plugin,
                &host,
                "denied",
                Error::DestinationIpProhibited,
            ));
        }
        Ok(())
    }

    /// Sends an admitted request within the plugin's bounds (`first_byte`
    /// no longer than its own) under a client span of the call's `trace`;
    /// the response's body is held to the size and total time bounds.
    fn send(
        self: &Arc<Self>,
        plugin: Option<Arc<PluginContext>>,
        trace: &opentelemetry::Context,
        mut request: http::Request<WasiBody>,
        first_byte: Option<Duration>,
        between_bytes: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Bounded>, Error>> + Send>> {
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        if let Some(plugin) = &plugin {
            self.stats.get_or_init(|| plugin.stats.clone());
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Box::pin(async move {
                Err(refuse(
                    plugin.as_ref(),
                    &host,
                    "limited",
                    Error::ConnectionLimitReached,
                ))
            });
        };
        let bounds = &self.bounds;
        let first_byte = first_byte.map_or(bounds.first_byte_timeout, |t| {
            t.min(bounds.first_byte_timeout)
        });
        let deadline = tokio::time::Instant::now() + bounds.total_timeout;
        let max_body = bounds.max_response_body.as_u64();
        let port = uri
            .port_u16()
            .or_else(|| default_port(uri.scheme_str().unwrap_or("https")))
            .unwrap_or(0);
        // The client span when it is recorded; the request carries its
        // context, else the calling span's.
        let span = plugin
            .as_ref()
            .filter(|_| crate::monitor::records_children(trace))
            .map(|p| {
                let method = request.method().as_str();
                crate::monitor::child_span(
                    &p.tracer,
                    trace,
                    method.to_string(),
                    SpanKind::Client,
                    || {
                        vec![
                            KeyValue::new("http.request.method", method.to_string()),
                            KeyValue::new("server.address", host.clone()),
                            KeyValue::new("server.port", i64::from(port)),
                            KeyValue::new("url.full", uri.to_string()),
                            KeyValue::new("trellis.plugin", p.name.clone()),
                        ]
                    },
                )
            });
        if plugin.is_some() {
            crate::monitor::inject_trace(span.as_ref().unwrap_or(trace), request.headers_mut());
        }
        let client = self.client.clone();
        Box::pin(async move {
            let started = Instant::now();
            let sent = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + first_byte),
                client.request(request),
            )
            .await;
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(err)) => {
                    let (label, error) = client_error(&err);
                    end(span, Some(&format!("{err:?}")), None);
                    tracing::debug!(%host, error = ?err, "outgoing request failed");
                    return Err(refuse(plugin.as_ref(), &host, label, error));
                }
                Err(_) => {
                    end(span, Some("no response in time"), None);
                    return Err(refuse(
                        plugin.as_ref(),
                        &host,
                        "timeout",
                        Error::HttpResponseTimeout,
                    ));
                }
            };
            let status = response.status();
            if let Some(plugin) = &plugin {
                plugin
                    .stats
                    .outbound(&host, status.as_str(), Some(started.elapsed()));
            }
            end(
                span,
                status.is_server_error().then_some(status.as_str()),
                Some(status.as_u16()),
            );
            Ok(response.map(|inner| Bounded {
                inner,
                left: max_body,
                limit: max_body,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                between_bytes,
                idle: None,
                _permit: permit,
            }))
        })
    }
}

impl WasiHttpHooks for OutboundInstance {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        let plugin = self.plugin.clone();
        let Some(policy) = self.policy.clone() else {
            let host = request
                .uri()
                .host()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let name = plugin.as_ref().map_or("", |p| p.name.as_str()).to_string();
            if denials_may_log() {
                tracing::warn!(plugin = %name, %host, "outgoing request denied: the plugin has no `outbound-http` grant with allowed_outbound_hosts");
            }
            return Box::new(async move {
                Err(refuse(
                    plugin.as_ref(),
                    &host,
                    "denied",
                    Error::HttpRequestDenied,
                ))
            });
        };
        if let Err(err) = policy.admit(plugin.as_ref(), request.uri()) {
            return Box::new(async move { Err(err) });
        }
        let sent = policy.send(
            plugin,
            &self.trace,
            request,
            options.and_then(|o| o.first_byte_timeout),
            options.and_then(|o| o.between_bytes_timeout),
        );
        Box::new(async move {
            let response = sent.await?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response.map(BodyExt::boxed_unsync), done))
        })
    }
}

/// Redirects the own world's `fetch` follows at most.
const MAX_REDIRECTS: usize = 5;

impl outbound_http::Host for HostState {
    async fn fetch(
        &mut self,
        req: outbound_http::Request,
    ) -> Result<outbound_http::Response, outbound_http::Error> {
        use outbound_http::Error as Wit;
        let plugin = self.plugin.clone();
        let Some(policy) = plugin.capabilities.outbound_http.clone() else {
            return Err(Wit::Denied(
                "the plugin has no `outbound-http` grant with allowed_outbound_hosts".into(),
            ));
        };
        let mut method = http::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| Wit::Invalid(format!("`{}` is not a method", req.method)))?;
        let mut url: http::Uri = req
            .url
            .parse()
            .map_err(|e| Wit::Invalid(format!("`{}` is not a URL: {e}", req.url)))?;
        let mut body = Bytes::from(req.body);
        let mut headers = http::HeaderMap::new();
        for (name, value) in &req.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Wit::Invalid(format!("`{name}` is not a header name")))?;
            let value = http::HeaderValue::from_str(value).map_err(|_| {
                Wit::Invalid(format!("the value of `{name}` is not a header value"))
            })?;
            headers.append(name, value);
        }
        for hop in 0..=MAX_REDIRECTS {
            if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
                return Err(Wit::Invalid(format!(
                    "`{url}` is not an absolute http(s) URL"
                )));
            }
            policy
                .admit(Some(&plugin), &url)
                .map_err(|e| Wit::Denied(format!("{url}: {}", wit_text(&e))))?;
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(url.clone())
                .body(
                    http_body_util::Full::new(body.clone())
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .map_err(|e| Wit::Invalid(e.to_string()))?;
            *request.headers_mut() = headers.clone();
            let response = policy
                .send(Some(plugin.clone()), &self.trace, request, None, None)
                .await
                .map_err(|e| to_wit(&e))?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            if let (301 | 302 | 303 | 307 | 308, Some(location)) = (status, location)
                && hop < MAX_REDIRECTS
            {
                url = follow(&url, &location)
                    .ok_or_else(|| Wit::Invalid(format!("redirect to `{location}`")))?;
                if status == 303 || (matches!(status, 301 | 302) && method == http::Method::POST) {
                    method = http::Method::GET;
                    body = Bytes::new();
                    headers.remove(http::header::CONTENT_TYPE);
                    headers.remove(http::header::CONTENT_LENGTH);
                }
                continue;
            }
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(|e| to_wit(&e))?.to_bytes();
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            return Ok(outbound_http::Response {
                status,
                headers,
                // Without a copy when the body is one buffer of its own.
                body: Vec::from(bytes),
            });
        }
        Err(Wit::Failed(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

/// The target of a redirect from `base` to `location`.
fn follow(base: &http::Uri, location: &str) -> Option<http::Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{location}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

/// The own world's error for the `wasi:http` one.
fn to_wit(err: &Error) -> outbound_http::Error {
    use outbound_http::Error as Wit;
    match err {
        Error::HttpRequestDenied | Error::DestinationIpProhibited => Wit::Denied(wit_text(err)),
        Error::HttpResponseTimeout | Error::ConnectionTimeout | Error::ConnectionReadTimeout => {
            Wit::Timeout
        }
        Error::HttpResponseBodySize(limit) => Wit::TooLarge(limit.unwrap_or_default()),
        Error::ConnectionLimitReached => Wit::Limited,
        Error::ConnectionRefused
        | Error::DestinationNotFound
        | Error::DestinationUnavailable
        | Error::TlsCertificateError
        | Error::Connect(_) => Wit::Connect(wit_text(err)),
        other => Wit::Failed(wit_text(other)),
    }
}

fn wit_text(err: &Error) -> String {
    match err {
        Error::HttpRequestDenied => "not in allowed_outbound_hosts".into(),
        Error::DestinationIpProhibited => {
            "a private address, which only an entry naming its host may reach".into()
        }
        other => format!("{other:?}"),
    }
}

/// Whether a denial may be logged now: at most [`DENIALS_LOGGED`] a
/// second for the node, so a guest that keeps asking cannot flood the log
/// (every denial is still counted in the metrics).
fn denials_may_log() -> bool {
    static DENIALS: std::sync::LazyLock<crate::monitor::RateLimit> =
        std::sync::LazyLock::new(|| crate::monitor::RateLimit::new(DENIALS_LOGGED, DENIALS_LOGGED));
    DENIALS.take()
}

/// Denials logged per second at most.
const DENIALS_LOGGED: u32 = 10;

/// Ends a client span, with the response's status when there is one.
fn end(span: Option<opentelemetry::Context>, error: Option<&str>, status: Option<u16>) {
    let Some(cx) = span else { return };
    let span = cx.span();
    if let Some(status) = status {
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    if let Some(error) = error {
        span.set_status(Status::error(error.to_string()));
    }
    span.end();
}

/// The guest's error and the metric's label for a failed request.
fn client_error(err: &hyper_util::client::legacy::Error) -> (&'static str, Error) {
    let chain = {
        let mut text = format!("{err}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    };
    if chain.contains("private address") {
        return ("denied", Error::DestinationIpProhibited);
    }
    if err.is_connect() {
        let error = if chain.contains("certificate") || chain.contains("invalid peer") {
            Error::TlsCertificateError
        } else if chain.contains("timed out") {
            Error::ConnectionTimeout
        } else if chain.contains("refused") {
            Error::ConnectionRefused
        } else if chain.contains("dns") || chain.contains("lookup") {
            Error::DestinationNotFound
        } else {
            Error::DestinationUnavailable
        };
        return ("connect", error);
    }
    ("error", Error::HttpProtocolError)
}

/// Whether `ip` is one a wildcard entry may not reach: loopback, private,
/// link-local, unique local, unspecified, or an IPv4-mapped one of these.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The client's resolver: a name resolves only to public addresses,
/// unless an entry of the plugin names it exactly.
#[derive(Debug, Clone)]
struct Resolver {
    exact: Arc<HashSet<String>>,
}

impl tower::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let exact = self.exact.contains(&name.as_str().to_ascii_lowercase());
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| exact || !is_private(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{name} resolves to no address but a private address, which only an entry naming it may reach"
                    ),
                ));
            }
            Ok(addresses.into_iter())
        })
    }
}

/// The plugin's connector: hyper-util's, with each connection it opens
/// counted while it lives.
#[derive(Debug, Clone)]
struct Counted {
    inner: HttpConnector<Resolver>,
    stats: Arc<OnceLock<PluginStats>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Uri> for Counted {
    type Response = Tracked;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Tracked, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = tower::Service::call(&mut self.inner, uri);
        let stats = self.stats.clone();
        Box::pin(async move {
            let io = connecting.await?;
            let open = stats.get().map(PluginStats::outbound_connection_opened);
            Ok(Tracked { io, open })
        })
    }
}

/// A pooled connection, counted in `outbound_connections_open` until it
/// closes.
#[derive(Debug)]
struct Tracked {
    io: hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    open: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.dec();
        }
    }
}

impl hyper_util::client::legacy::connect::Connection for Tracked {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// A response body held to the plugin's bounds: its size, the total
/// deadline, the guest's time between bytes; the in-flight permit goes
/// with it.
struct Bounded {
    inner: hyper::body::Incoming,
    left: u64,
    limit: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    between_bytes: Option<Duration>,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Body for Bounded {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if let Some(between) = this.between_bytes {
                    let idle = this
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(between)));
                    if idle.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
                    }
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.left {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.left -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Error::Hyper(err)))),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
