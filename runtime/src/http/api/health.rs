//! Liveness (`/healthz`), readiness (`/readyz`: 503 while draining or
//! without its dependencies) and each dependency's health with its round
//! trip (`/api/v1/monitoring/health`). Public when `admin.public_health`.
//! Layer: inside `http::api`.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::{Call, get_only, json_response};
use crate::error::ApiError;

/// 200 while the process serves.
pub(super) async fn live(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
}

/// 200 when serving; 503 while draining, when the database is down, or
/// when Redis is configured, `redis.required` and down.
pub(super) async fn ready(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let app = call.app;
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

/// Each dependency with its status and round trip.
pub(super) async fn dependencies(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    let app = call.app;
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
    Ok(json_response(
        status,
        &json!({
            "status": if healthy { "ok" } else { "degraded" },
            "checks": checks,
        }),
    ))
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
