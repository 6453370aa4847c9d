//! Endpoints the runtime serves itself, before plugin routing: health,
//! readiness, Prometheus metrics and the monitoring API. Their paths are
//! reserved (see [`crate::router::RESERVED`]); plugins cannot claim them.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Body;
use serde_json::json;

use super::{App, convert};
use crate::alerts::{NewSilence, SilenceError};
use crate::backend::sql::SqlError;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::monitor::ErrorCursor;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Static assets: the dashboard page (its data needs the token).
    Public,
    Health,
    Metrics,
    Admin,
}

/// Serves a request to a reserved path.
pub(super) async fn serve<B>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = parts.uri.path();
    let access = match path {
        "/healthz" | "/readyz" | "/api/v1/monitoring/health" => Access::Health,
        "/metrics" => Access::Metrics,
        "/dashboard" => Access::Public,
        _ => Access::Admin,
    };
    let public = match access {
        Access::Public => true,
        Access::Health => app.admin.public_health,
        Access::Metrics => app.admin.public_metrics,
        Access::Admin => false,
    };
    if !public {
        app.admin.check(&parts.headers)?;
    }
    if let Some(rest) = path.strip_prefix(SILENCES) {
        return silences(app, parts, rest, body).await;
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(super::not_allowed(&parts.method, "GET, HEAD"));
    }
    match path {
        "/healthz" => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        "/dashboard" => Ok(dashboard()),
        "/readyz" => ready(app).await,
        "/metrics" => Ok(metrics(app)),
        "/api/v1/monitoring/health" => Ok(health(app).await),
        "/api/v1/monitoring/metrics" => Ok(summary(app).await),
        "/api/v1/monitoring/traces" => traces(app, parts.uri.query()),
        "/api/v1/monitoring/errors" => errors(app, parts),
        "/api/v1/monitoring/alerts" => alerts(app).await,
        _ => {
            let found = if let Some(id) = path.strip_prefix("/api/v1/monitoring/traces/") {
                app.host.tracing().store().get(id)
            } else if let Some(fp) = path.strip_prefix("/api/v1/monitoring/errors/") {
                app.host
                    .errors()
                    .get(fp)
                    .and_then(|g| serde_json::to_value(g).ok())
            } else {
                None
            };
            found
                .map(|body| json_response(StatusCode::OK, &body))
                .ok_or_else(|| ApiError::NotFound { path: path.into() })
        }
    }
}

const SILENCES: &str = "/api/v1/monitoring/silences";
/// Largest silence request body.
const SILENCE_BODY: u64 = 64 * 1024;

/// `GET` (those in force), `POST` (a new one: `{"matchers": {..},
/// "duration": "2h", "comment": ".."}` → 201), `DELETE /{id}` (end it).
async fn silences<B>(
    app: &App,
    parts: &Parts,
    rest: &str,
    body: B,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let store = app.alerts.silences();
    let now = now_ms();
    let not_allowed = |allow: &str| super::not_allowed(&parts.method, allow);
    match (rest, &parts.method) {
        ("", &Method::GET | &Method::HEAD) => Ok(json_response(
            StatusCode::OK,
            &json!({"silences": store.active(now).await.map_err(store_unavailable)?}),
        )),
        ("", &Method::POST) => {
            let bytes =
                convert::read_body(body, &parts.headers, SILENCE_BODY, SILENCE_TIMEOUT).await?;
            let new: NewSilence = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("invalid silence: {e}")))?;
            let silence = store.add(new, now).await.map_err(|err| match err {
                SilenceError::Invalid(why) => ApiError::BadRequest(why),
                SilenceError::Store(err) => store_unavailable(err),
            })?;
            let mut response = json_response(StatusCode::CREATED, &json!(silence));
            if let Ok(location) = HeaderValue::from_str(&format!("{SILENCES}/{}", silence.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        ("", _) => Err(not_allowed("GET, HEAD, POST")),
        (id, &Method::DELETE) if id.len() > 1 && id.starts_with('/') => {
            if store
                .remove(&id[1..], now)
                .await
                .map_err(store_unavailable)?
            {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            } else {
                Err(ApiError::NotFound {
                    path: parts.uri.path().into(),
                })
            }
        }
        (id, _) if id.len() > 1 && id.starts_with('/') => Err(not_allowed("DELETE")),
        _ => Err(ApiError::NotFound {
            path: parts.uri.path().into(),
        }),
    }
}

/// Time a client has to send a silence.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// 200 when serving; 503 while draining, when the database is down, or
/// when Redis is configured, `redis.required` and down.
async fn ready(app: &App) -> Result<Response<Full<Bytes>>, ApiError> {
    if app.is_draining() {
        return Err(ApiError::NotReady("the server is shutting down".into()));
    }
    app.host
        .check_database()
        .await
        .map_err(|e| ApiError::NotReady(format!("database: {e}")))?;
    if let Some(redis) = app.host.cache().redis().filter(|r| r.required) {
        redis
            .ping()
            .await
            .map_err(|e| ApiError::NotReady(format!("redis: {e}")))?;
    }
    Ok(json_response(StatusCode::OK, &json!({"status": "ready"})))
}

/// The dashboard: one page, its script and styles inline, no external
/// assets; it polls the monitoring API.
fn dashboard() -> Response<Full<Bytes>> {
    const PAGE: &str = include_str!("../../assets/dashboard.html");
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self'",
        ),
    );
    response
}

fn metrics(app: &App) -> Response<Full<Bytes>> {
    let text = app.host.metrics().render(&app.host.snapshot());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Each dependency with its status and round trip.
async fn health(app: &App) -> Response<Full<Bytes>> {
    let database = match app.host.check_database().await {
        Ok(latency) => json!({"name": "database", "status": "ok", "latency_ms": millis(latency)}),
        Err(e) => json!({"name": "database", "status": "down", "error": e.to_string()}),
    };
    let plugins = app.routes().plugins();
    let serving = json!({
        "name": "plugins",
        "status": if app.is_draining() { "draining" } else { "ok" },
        "loaded": plugins,
    });
    let mut checks = vec![database, serving];
    // Redis, when configured: down means the cache runs from process
    // memory and locks are unavailable.
    if let Some(redis) = app.host.cache().redis() {
        checks.push(match redis.ping().await {
            Ok(latency) => json!({"name": "redis", "status": "ok", "latency_ms": millis(latency)}),
            Err(e) => json!({"name": "redis", "status": "down", "error": e.to_string()}),
        });
    }
    let healthy = checks.iter().all(|c| c["status"] == "ok");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "status": if healthy { "ok" } else { "degraded" },
            "checks": checks,
        }),
    )
}

/// Per route: last minute and five minutes; plus host-wide figures.
async fn summary(app: &App) -> Response<Full<Bytes>> {
    let jobs = match app.host.capabilities().jobs.queue().depth().await {
        Ok(depth) => json!(depth),
        Err(err) => json!({"error": err.to_string()}),
    };
    let snapshot = app.host.snapshot();
    let (hits, misses) = snapshot.query_cache;
    let body = json!({
        "uptime_s": app.started.elapsed().as_secs(),
        "instances_in_use": snapshot.instances_in_use,
        "query_cache": {
            "hits": hits,
            "misses": misses,
            "hit_rate": snapshot.query_cache_hit_rate(),
        },
        "routes": app.host.metrics().summaries(),
        "jobs": jobs,
    });
    json_response(StatusCode::OK, &body)
}

/// Recent traces, newest first: `?limit=` (default 50, at most 1000) and
/// `?notable=true` for errors and slow requests only.
fn traces(app: &App, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut limit = 50;
    let mut notable = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "limit" => limit = parse_limit(&value, 1000)?,
            "notable" => notable = value == "true",
            // Applied to the response by `http::fields`.
            super::fields::PARAM => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}`; known: limit, notable, fields"
                )));
            }
        }
    }
    let store = app.host.tracing().store();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "traces": store.list(limit, notable),
            "dropped_exports": store.dropped_exports(),
        }),
    ))
}

/// Error groups by last seen, newest first, a page at a time: `?limit=`
/// (default 50, at most 200) and the opaque `?cursor=` of the previous
/// page's `next_cursor` (also in its `Link: rel="next"` header).
fn errors(app: &App, parts: &Parts) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut limit = 50;
    let mut cursor = None;
    for (key, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "limit" => limit = parse_limit(&value, 200)?,
            "cursor" => {
                cursor = Some(ErrorCursor::decode(&value).ok_or_else(|| {
                    ApiError::BadRequest("cursor is not one this endpoint returned".into())
                })?);
            }
            super::fields::PARAM => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}`; known: limit, cursor, fields"
                )));
            }
        }
    }
    let (groups, next) = app.host.errors().page(limit, cursor.as_ref());
    let next = next.map(|c| c.encode());
    // `http::pagination` adds the `Link: rel="next"` header.
    Ok(json_response(
        StatusCode::OK,
        &json!({"errors": groups, "next_cursor": next}),
    ))
}

/// Alerts not inactive (firing first) and the rules.
async fn alerts(app: &App) -> Result<Response<Full<Bytes>>, ApiError> {
    let rules: Vec<serde_json::Value> = app
        .alerts
        .rules()
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "expr": r.expr,
                "for": humantime::format_duration(r.for_).to_string(),
                "keep_firing_for": humantime::format_duration(r.keep_firing_for).to_string(),
                "severity": r.severity,
                "labels": r.labels,
                "summary": r.summary,
            })
        })
        .collect();
    let list = app.alerts.list().await.map_err(store_unavailable)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "alerts": list,
            "rules": rules,
            "evaluating": app.alerts.leading(),
        }),
    ))
}

fn store_unavailable(err: SqlError) -> ApiError {
    ApiError::Unavailable(format!("the runtime store: {err}"))
}

/// `?limit=`: 1 to `max`, else 400.
fn parse_limit(value: &str, max: usize) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1 to {max}, not `{value}`")))
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(super) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
