//! The per-request pipeline: the request id and the server span, then one
//! of the runtime's own endpoints (`api`, one lookup in its table) or a
//! plugin route: routing, the response cache (`response_cache::through`),
//! the request body under its limit, the plugin call (`mounted` for a
//! `wasi:http` component), the route's metrics and error groups
//! (`settle`), and every failure rendered as problem+json.
//! Layer: below `server`; above `jobs`, `deploy`, `router`, `plugin` and
//! what they stand on.

pub(crate) mod api;
pub mod auth;
pub mod compression;
pub mod convert;
pub mod fields;
mod mounted;
pub mod openapi;
pub mod pagination;
pub mod request_id;
pub mod response_cache;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tracing::Instrument;

pub use auth::AdminAuth;

use fields::Selection;

use crate::alerts::Alerts;
use crate::error::ApiError;
use crate::monitor::{Occurrence, trace_id};
use crate::plugin::{GuestRequest, PluginHost};
use crate::router::{Lookup, Router};

/// What the pipeline answers with: a whole body, or one that streams (from
/// a `wasi:http` component) and may end with an error. (A concrete error
/// type: with a boxed trait object, the server's connection future fails
/// the `Send` check's higher-ranked `From` bound.)
pub type ResponseBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// `response` with its whole body as a [`ResponseBody`].
pub fn boxed(response: Response<Full<Bytes>>) -> Response<ResponseBody> {
    response.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

/// A response header a plugin sets on a 5xx to choose the fingerprint its
/// error is grouped by; the runtime removes it.
pub const FINGERPRINT_HEADER: &str = "x-trellis-fingerprint";

/// 405 for `method`, listing the methods allowed.
fn not_allowed(method: &http::Method, allow: &str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        allow: allow.into(),
    }
}

/// The `detail` of a problem+json body, else the status line.
fn problem_detail(response: &Response<Full<Bytes>>) -> String {
    let status = response.status();
    let detail = serde_json::from_slice::<serde_json::Value>(&convert::body_bytes(response))
        .ok()
        .and_then(|json| json.get("detail")?.as_str().map(str::to_string));
    detail.unwrap_or_else(|| format!("status {status}"))
}

/// What every request needs: the live plugins and their routing table
/// (`deploy`: swapped atomically when plugins change; requests in flight
/// keep the table they started with), the plugin host (metrics, health) and
/// admin auth.
#[derive(Debug)]
pub struct App {
    deploy: Arc<crate::deploy::Deployer>,
    host: PluginHost,
    admin: AdminAuth,
    /// Alert rules and their alerts.
    alerts: Arc<Alerts>,
    /// Bounds of `POST /api/v1/batch`.
    batch: crate::config::BatchConfig,
    /// When responses are compressed (the response cache compresses its
    /// own, once per variant).
    compressible: compression::Compressible,
    /// Stops jobs running on this node (when it is a worker).
    running_jobs: Option<crate::jobs::Canceller>,
    /// Set when shutdown begins: readiness turns 503.
    draining: AtomicBool,
    started: Instant,
}

impl App {
    /// An app serving the plugins `deploy` keeps live, from `host`.
    pub fn new(
        deploy: Arc<crate::deploy::Deployer>,
        host: PluginHost,
        admin: AdminAuth,
        alerts: Arc<Alerts>,
        batch: crate::config::BatchConfig,
        compressible: compression::Compressible,
        running_jobs: Option<crate::jobs::Canceller>,
    ) -> Self {
        App {
            deploy,
            running_jobs,
            host,
            admin,
            alerts,
            batch,
            compressible,
            draining: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// Marks the server as shutting down: `/readyz` answers 503 from now.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The current routing table.
    pub fn routes(&self) -> Arc<Router> {
        self.deploy.routes()
    }

    /// The live plugins and the changes to them.
    pub fn deploy(&self) -> &Arc<crate::deploy::Deployer> {
        &self.deploy
    }

    /// Serves one request; never fails: errors become problem+json.
    pub async fn serve<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let request_id = request_id::from_headers(request.headers());
        // Plugin routes are traced; of the runtime's own endpoints, those
        // whose row says so.
        let endpoint = api::find(request.uri().path());
        let traced = endpoint.is_none_or(|endpoint| endpoint.traced);
        let trace = if traced {
            self.host.tracing().server_span(
                request.headers(),
                request.method().as_str(),
                request.uri().path(),
            )
        } else {
            Context::new()
        };
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = request.uri().path(),
            request_id = %request_id,
            trace_id = %trace.span().span_context().trace_id(),
        );
        // Kept for the root span of a request whose spans are not recorded.
        let (method, uri) = (request.method().clone(), request.uri().clone());
        async {
            let started = Instant::now();
            let mut code = None;
            let dispatched = self.dispatch(request, endpoint, &request_id, &trace);
            let mut response = match dispatched.await {
                Ok(response) => response,
                Err(err) => {
                    if err.status().is_server_error() {
                        tracing::warn!(code = err.code(), error = %err, "request failed");
                    }
                    code = Some(err.code());
                    boxed(err.into_response(&request_id))
                }
            };
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(request_id::HEADER, value);
            }
            if traced {
                let request = (&method, uri.path(), started);
                self.end_trace(&trace, request, &request_id, code, &mut response);
            }
            tracing::debug!(
                status = response.status().as_u16(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "served"
            );
            response
        }
        .instrument(span)
        .await
    }

    /// Completes the server span of `request` (its method, path and start)
    /// and returns its `traceparent`. A request whose spans are not
    /// recorded leaves its root span in the local store if it failed or
    /// was slow ([`crate::monitor::Tracing::unrecorded`]).
    fn end_trace<R>(
        &self,
        trace: &Context,
        request: (&Method, &str, Instant),
        request_id: &str,
        code: Option<&'static str>,
        response: &mut Response<R>,
    ) {
        let span = trace.span();
        let status = response.status();
        let failed = status
            .is_server_error()
            .then(|| code.map_or_else(|| status.as_str().to_string(), str::to_string));
        let attributes = || {
            [
                KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
                KeyValue::new("trellis.request_id", request_id.to_string()),
            ]
        };
        if span.is_recording() {
            span.set_attributes(attributes());
            if let Some(description) = failed {
                span.set_status(Status::error(description));
            }
        } else {
            let (method, path, started) = request;
            self.host
                .tracing()
                .unrecorded(trace, started.elapsed(), failed, || {
                    let mut attributes = attributes().to_vec();
                    attributes.push(KeyValue::new("http.request.method", method.to_string()));
                    attributes.push(KeyValue::new("url.path", path.to_string()));
                    (format!("{method} {path}"), attributes)
                });
        }
        crate::monitor::inject_trace(trace, response.headers_mut());
        span.end();
    }

    /// A request to the runtime's own `endpoint` (see [`api`]), else to a
    /// plugin route.
    async fn dispatch<B>(
        &self,
        request: Request<B>,
        endpoint: Option<&api::Endpoint>,
        request_id: &str,
        trace: &Context,
    ) -> Result<Response<ResponseBody>, ApiError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        if let Some(endpoint) = endpoint {
            return api::serve(self, endpoint, &parts, body, request_id, trace)
                .await
                .map(boxed);
        }
        let routes = self.routes();
        let path = parts.uri.path();
        // No span of its own: the lookup takes well under a microsecond,
        // less than a span costs; the server span names the route.
        let lookup = routes.lookup(parts.method.as_str(), path);
        let (target, params) = match lookup {
            Lookup::Found { target, params } => (target, params),
            Lookup::MethodNotAllowed(allow) => {
                self.host.metrics().unrouted(405);
                return Err(not_allowed(&parts.method, &allow));
            }
            Lookup::NotFound => {
                self.host.metrics().unrouted(404);
                return Err(ApiError::NotFound {
                    path: path.to_string(),
                });
            }
        };
        let route = target.pattern();
        {
            let span = trace.span();
            span.update_name(format!("{} {route}", parts.method));
            span.set_attribute(KeyValue::new("http.route", route.to_string()));
            span.set_attribute(KeyValue::new(
                "trellis.plugin",
                target.plugin.name().to_string(),
            ));
        }
        if let Some(mount) = target.plugin.mount() {
            return mounted::call(self, target, mount, parts, body, started, request_id, trace)
                .await;
        }
        let call = |parts, params| Self::call(target, params, parts, body, request_id, trace);
        let mut result = response_cache::through(self, target, parts, params, trace, call).await;
        self.settle(target, &mut result, started, request_id, trace);
        result.map(boxed)
    }

    /// After a plugin route answered (through the pipeline or in a batch
    /// group): the route's metrics, the plugin's own fingerprint taken off
    /// the response, and a 5xx recorded for error aggregation.
    pub(crate) fn settle(
        &self,
        target: &crate::router::Target,
        result: &mut Result<Response<Full<Bytes>>, ApiError>,
        started: Instant,
        request_id: &str,
        trace: &Context,
    ) {
        let status = match &*result {
            Ok(response) => response.status().as_u16(),
            Err(err) => err.status().as_u16(),
        };
        if let Some(stats) = target.plugin.route_stats(target.route) {
            stats.record(status, started.elapsed());
        }
        // The plugin's own fingerprint is for the runtime, not the client.
        let chosen = result
            .as_mut()
            .ok()
            .and_then(|r| r.headers_mut().remove(FINGERPRINT_HEADER));
        if status >= 500 {
            let (kind, message) = match &*result {
                Err(err) => (err.code(), err.to_string()),
                Ok(response) => ("plugin_error", problem_detail(response)),
            };
            self.record_failure(target, kind, &message, chosen.as_ref(), request_id, trace);
        }
    }

    /// A 5xx of a plugin route, for error aggregation.
    fn record_failure(
        &self,
        target: &crate::router::Target,
        kind: &str,
        message: &str,
        fingerprint: Option<&HeaderValue>,
        request_id: &str,
        trace: &Context,
    ) {
        self.host.errors().record(Occurrence {
            plugin: target.plugin.name(),
            route: target.pattern(),
            kind,
            message,
            fingerprint: fingerprint.and_then(|v| v.to_str().ok()),
            request_id,
            trace_id: trace_id(trace),
        });
    }

    /// A routed request: its body under the plugin's limit, then the guest.
    async fn call<B>(
        target: &crate::router::Target,
        params: Vec<(String, String)>,
        parts: http::request::Parts,
        body: B,
        request_id: &str,
        trace: &Context,
    ) -> Result<Response<Full<Bytes>>, ApiError>
    where
        B: Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (guest_request, selection) =
            guest_request(target, params, &parts, body, request_id).await?;
        let guest_response = target
            .plugin
            .handle(&guest_request, trace, &parts.extensions)
            .await?;
        from_guest(target, &parts, selection.as_ref(), guest_response)
    }
}

/// The guest's view of a routed request, its body read under the plugin's
/// limit and decoded; and the request's `?fields=` selection for
/// [`from_guest`], parsed here once (a bad one is refused before the body
/// is read and the guest runs).
pub(crate) async fn guest_request<B>(
    target: &crate::router::Target,
    params: Vec<(String, String)>,
    parts: &http::request::Parts,
    body: B,
    request_id: &str,
) -> Result<(GuestRequest, Option<Selection>), ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limits = target.plugin.limits();
    let params = convert::decode_params(params)?;
    let selection = fields::requested(parts.uri.query())?;
    let body = convert::read_body(
        body,
        &parts.headers,
        limits.max_request_body.as_u64(),
        limits.deadline,
    )
    .await?;
    let guest = convert::guest_view(target.route, params, parts, body, request_id);
    Ok((guest, selection))
}

/// The plugin's answer to a request as HTTP, with the request's `?fields=`
/// `selection` (from [`guest_request`]) and the pagination `Link` applied.
pub(crate) fn from_guest(
    target: &crate::router::Target,
    parts: &http::request::Parts,
    selection: Option<&Selection>,
    guest_response: crate::plugin::GuestResponse,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let plugin = &target.plugin;
    // For HEAD, hyper sends the headers (with the GET body's length) and
    // drops the body.
    let response = convert::into_http(plugin.name(), guest_response)?;
    let mut response = match selection {
        Some(selection) => {
            fields::select(response, selection, plugin.lenient_fields(target.route))?
        }
        None => response,
    };
    pagination::link_next(&mut response, &parts.uri);
    Ok(response)
}
