//! Prometheus metrics (`/metrics`, public when `admin.public_metrics`) and
//! the monitoring API (admin token): the per-route summary, recent traces,
//! error groups, alerts and their rules, and silences.
//! Layer: inside `http::api`; the figures are `monitor`'s and the alerts
//! `alerts`'.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;

use super::{Call, get_only, json_response};
use crate::alerts::{NewSilence, SilenceError};
use crate::backend::sql::SqlError;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::http::{convert, fields};
use crate::monitor::ErrorCursor;

/// One trace: the path prefix its id follows.
pub(super) const TRACE: &str = "/api/v1/monitoring/traces/";
/// One error group: the path prefix its fingerprint follows.
pub(super) const ERROR_GROUP: &str = "/api/v1/monitoring/errors/";
/// Silences, and one silence below.
pub(super) const SILENCES: &str = "/api/v1/monitoring/silences";
/// Largest silence request body.
const SILENCE_BODY: u64 = 64 * 1024;
/// Time a client has to send a silence.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// `/metrics`: OpenMetrics text.
pub(super) async fn metrics(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let host = &call.app.host;
    let text = host.metrics().render(&host.snapshot());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// Per route: last minute and five minutes; plus host-wide figures.
pub(super) async fn summary(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let app = call.app;
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
    Ok(json_response(StatusCode::OK, &body))
}

/// Recent traces, newest first: `?limit=` (default 50, at most 1000) and
/// `?notable=true` for errors and slow requests only.
pub(super) async fn traces(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let mut limit = 50;
    let mut notable = false;
    let query = call.parts.uri.query();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "limit" => limit = parse_limit(&value, 1000)?,
            "notable" => notable = value == "true",
            // Applied to the response by `http::fields`.
            fields::PARAM => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}`; known: limit, notable, fields"
                )));
            }
        }
    }
    let store = call.app.host.tracing().store();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "traces": store.list(limit, notable),
            "dropped_exports": store.dropped_exports(),
        }),
    ))
}

/// One trace, by the id after [`TRACE`].
pub(super) async fn trace(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let path = call.parts.uri.path();
    let id = path.strip_prefix(TRACE).unwrap_or_default();
    found(call.app.host.tracing().store().get(id), path)
}

/// Error groups by last seen, newest first, a page at a time: `?limit=`
/// (default 50, at most 200) and the opaque `?cursor=` of the previous
/// page's `next_cursor` (also in its `Link: rel="next"` header).
pub(super) async fn errors(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let mut limit = 50;
    let mut cursor = None;
    let query = call.parts.uri.query();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "limit" => limit = parse_limit(&value, 200)?,
            "cursor" => {
                cursor = Some(ErrorCursor::decode(&value).ok_or_else(|| {
                    ApiError::BadRequest("cursor is not one this endpoint returned".into())
                })?);
            }
            fields::PARAM => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}`; known: limit, cursor, fields"
                )));
            }
        }
    }
    let (groups, next) = call.app.host.errors().page(limit, cursor.as_ref());
    let next = next.map(|c| c.encode());
    // `http::pagination` adds the `Link: rel="next"` header.
    Ok(json_response(
        StatusCode::OK,
        &json!({"errors": groups, "next_cursor": next}),
    ))
}

/// One error group, by the fingerprint after [`ERROR_GROUP`].
pub(super) async fn error_group(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let path = call.parts.uri.path();
    let fingerprint = path.strip_prefix(ERROR_GROUP).unwrap_or_default();
    let group = call.app.host.errors().get(fingerprint);
    found(group.and_then(|g| serde_json::to_value(g).ok()), path)
}

/// `body` as a 200, or a 404 for `path`.
fn found(body: Option<serde_json::Value>, path: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    body.map(|body| json_response(StatusCode::OK, &body))
        .ok_or_else(|| ApiError::NotFound { path: path.into() })
}

/// Alerts not inactive (firing first) and the rules.
pub(super) async fn alerts(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let alerts = &call.app.alerts;
    let rules: Vec<serde_json::Value> = alerts
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
    let list = alerts.list().await.map_err(store_unavailable)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "alerts": list,
            "rules": rules,
            "evaluating": alerts.leading(),
        }),
    ))
}

/// Under [`SILENCES`]: `GET` (those in force), `POST` (a new one:
/// `{"matchers": {..}, "duration": "2h", "comment": ".."}` → 201),
/// `DELETE /{id}` (end it).
pub(super) async fn silences(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    let parts = call.parts;
    let rest = parts.uri.path().strip_prefix(SILENCES).unwrap_or_default();
    let store = call.app.alerts.silences();
    let now = now_ms();
    let not_allowed = |allow: &str| crate::http::not_allowed(&parts.method, allow);
    let not_found = || ApiError::NotFound {
        path: parts.uri.path().into(),
    };
    match (rest, &parts.method) {
        ("", &Method::GET | &Method::HEAD) => Ok(json_response(
            StatusCode::OK,
            &json!({"silences": store.active(now).await.map_err(store_unavailable)?}),
        )),
        ("", &Method::POST) => {
            let bytes =
                convert::read_body(call.body, &parts.headers, SILENCE_BODY, SILENCE_TIMEOUT)
                    .await?;
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
                Err(not_found())
            }
        }
        (id, _) if id.len() > 1 && id.starts_with('/') => Err(not_allowed("DELETE")),
        _ => Err(not_found()),
    }
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
