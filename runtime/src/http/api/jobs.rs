//! The job API (admin): `POST /api/v1/jobs` enqueues (202 + `Location`),
//! `GET /api/v1/jobs/{id}` shows one job, `GET /api/v1/jobs` lists them
//! (filters, cursor pagination), `POST /api/v1/jobs/{id}/cancel` and
//! `/retry` act on one. The request's trace continues into the job's run.
//! Layer: inside `http::api`, above `jobs` (the canceller) and `capability`
//! (the queue).

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use opentelemetry::Context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, RequestBody, json_response, segments_under};
use crate::backend::jobs::{Filter, Job, STATES};
use crate::capability::jobs::queue::{EnqueueError, EnqueueOptions};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::http::{App, convert, fields};

/// The path prefix.
pub const PATH: &str = "/api/v1/jobs";

/// Time to read a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Jobs per page: default and maximum.
const PAGE: (u32, u32) = (50, 500);

/// `POST /api/v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJobRequest {
    plugin: String,
    kind: String,
    #[serde(default)]
    payload: Value,
    /// RFC 3339; not before this time.
    run_at: Option<String>,
    delay_ms: Option<u64>,
    priority: Option<i16>,
    queue: Option<String>,
    max_attempts: Option<u32>,
    idempotency_key: Option<String>,
}

/// Serves a request under [`PATH`].
pub(super) async fn serve(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    let Call {
        app,
        parts,
        body,
        trace,
        ..
    } = call;
    let segments = segments_under(parts.uri.path(), PATH).unwrap_or_default();
    let method = &parts.method;
    let not_allowed = |allow: &str| crate::http::not_allowed(method, allow);
    match segments.as_slice() {
        [] => match *method {
            Method::POST => enqueue(app, parts, body, trace).await,
            Method::GET | Method::HEAD => list(app, parts.uri.query()).await,
            _ => Err(not_allowed("GET, HEAD, POST")),
        },
        [id] => match *method {
            Method::GET | Method::HEAD => {
                Ok(json_response(StatusCode::OK, &view(&get(app, id).await?)))
            }
            _ => Err(not_allowed("GET, HEAD")),
        },
        [id, action @ ("cancel" | "retry")] => match *method {
            Method::POST => act(app, id, action).await,
            _ => Err(not_allowed("POST")),
        },
        _ => Err(ApiError::NotFound {
            path: parts.uri.path().to_string(),
        }),
    }
}

async fn enqueue(
    app: &App,
    parts: &Parts,
    body: RequestBody,
    trace: &Context,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let jobs = app.host.capabilities().jobs.queue();
    let limit = jobs.config().max_payload.as_u64() + 64 * 1024;
    let bytes = convert::read_body(body, &parts.headers, limit, BODY_TIMEOUT).await?;
    let request: NewJobRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid job: {e}")))?;
    let plugins = app.deploy.registry().load();
    let plugin = plugins
        .get(&request.plugin)
        .ok_or_else(|| ApiError::BadRequest(format!("no plugin `{}` is loaded", request.plugin)))?;
    let Some(kinds) = plugin.context().job_kinds() else {
        return Err(ApiError::BadRequest(format!(
            "plugin `{}` has no job kinds",
            request.plugin
        )));
    };
    let delay_ms = match (&request.run_at, request.delay_ms) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give run_at or delay_ms, not both".into(),
            ));
        }
        (Some(at), None) => {
            let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
                ApiError::BadRequest(format!("run_at `{at}` is not an RFC 3339 time: {e}"))
            })?;
            Some(u64::try_from(at.timestamp_millis() - now_ms() as i64).unwrap_or(0))
        }
        (None, delay) => delay,
    };
    let payload = request.payload.to_string().into_bytes();
    let options = EnqueueOptions {
        delay_ms,
        priority: request.priority,
        queue: request.queue,
        max_attempts: request.max_attempts,
        idempotency_key: request.idempotency_key,
    };
    let job = jobs
        .prepare(
            &request.plugin,
            kinds,
            &request.kind,
            payload,
            options,
            crate::monitor::traceparent(trace),
        )
        .map_err(enqueue_error)?;
    let id = jobs
        .insert(std::slice::from_ref(&job))
        .await
        .map_err(enqueue_error)?
        .pop()
        .unwrap_or_else(|| job.id.clone());
    let status = if id == job.id {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let stored = get(app, &id).await?;
    let mut response = json_response(status, &view(&stored));
    if let Ok(location) = HeaderValue::from_str(&format!("{PATH}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn enqueue_error(err: EnqueueError) -> ApiError {
    match err {
        EnqueueError::UnknownKind { .. } | EnqueueError::Invalid(_) => {
            ApiError::BadRequest(err.to_string())
        }
        EnqueueError::TooLarge { limit, .. } => ApiError::PayloadTooLarge { limit },
        EnqueueError::Unavailable(_) => ApiError::Unavailable(err.to_string()),
    }
}

fn store_error(err: crate::backend::sql::SqlError) -> ApiError {
    ApiError::Unavailable(format!("the job queue: {err}"))
}

async fn get(app: &App, id: &str) -> Result<Job, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::UnknownJob(id.to_string()));
    }
    app.host
        .capabilities()
        .jobs
        .queue()
        .store()
        .get(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::UnknownJob(id.to_string()))
}

/// Cancel: a waiting job now, a running one at its next host call or
/// epoch tick. Retry: a discarded or cancelled job from attempt 1.
async fn act(app: &App, id: &str, action: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let job = get(app, id).await?;
    let store = app.host.capabilities().jobs.queue().store();
    let now = now_ms() as i64;
    let updated = if action == "cancel" {
        if matches!(job.state.as_str(), "completed" | "discarded" | "cancelled") {
            return Err(ApiError::Conflict(format!(
                "job {id} is {} and cannot be cancelled",
                job.state
            )));
        }
        let updated = store.cancel(id, now).await.map_err(store_error)?;
        if let Some(running) = &app.running_jobs {
            running.cancel(id);
        }
        updated
    } else {
        if !matches!(job.state.as_str(), "discarded" | "cancelled") {
            return Err(ApiError::Conflict(format!(
                "job {id} is {}; only discarded or cancelled jobs can be retried",
                job.state
            )));
        }
        let updated = store.retry(id, now).await.map_err(|e| match e {
            crate::backend::sql::SqlError::Constraint(_) => ApiError::Conflict(format!(
                "another unfinished job holds job {id}'s idempotency key"
            )),
            other => store_error(other),
        })?;
        app.host.capabilities().jobs.queue().wake().notify_waiters();
        updated
    };
    let job = updated.ok_or_else(|| ApiError::UnknownJob(id.to_string()))?;
    Ok(json_response(StatusCode::OK, &view(&job)))
}

/// `?state= &kind= &plugin= &queue= &limit= &cursor=`.
async fn list(app: &App, query: Option<&str>) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut filter = Filter {
        limit: PAGE.0,
        ..Filter::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "state" => {
                if !STATES.contains(&value.as_str()) {
                    return Err(ApiError::BadRequest(format!(
                        "state `{value}` is not one of {}",
                        STATES.join(", ")
                    )));
                }
                filter.state = Some(value);
            }
            "kind" => filter.kind = Some(value),
            "plugin" => filter.plugin = Some(value),
            "queue" => filter.queue = Some(value),
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=PAGE.1).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be 1 to {}, not `{value}`",
                            PAGE.1
                        ))
                    })?;
            }
            "cursor" => {
                let after = uuid::Uuid::parse_str(&value).map_err(|_| {
                    ApiError::BadRequest("cursor is not one this endpoint returned".into())
                })?;
                filter.after = Some(after.to_string());
            }
            // Applied to the response by `http::fields`.
            fields::PARAM => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}`; known: state, kind, plugin, queue, limit, cursor, fields"
                )));
            }
        }
    }
    let jobs = app
        .host
        .capabilities()
        .jobs
        .queue()
        .store()
        .list(&filter)
        .await
        .map_err(store_error)?;
    let next = (jobs.len() == filter.limit as usize)
        .then(|| jobs.last().map(|j| j.id.clone()))
        .flatten();
    let views: Vec<Value> = jobs.iter().map(view).collect();
    // `http::pagination` adds the `Link: rel="next"` header.
    Ok(json_response(
        StatusCode::OK,
        &json!({"jobs": views, "next_cursor": next}),
    ))
}

/// A job as the API shows it: times in RFC 3339, payload and result as
/// JSON when they are JSON (else hex under `*_hex`).
fn view(job: &Job) -> Value {
    let time = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    let mut view = json!({
        "id": job.id,
        "plugin": job.plugin,
        "kind": job.kind,
        "queue": job.queue,
        "priority": job.priority,
        "state": job.state,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "run_at": time(Some(job.run_at)),
        "idempotency_key": job.idempotency_key,
        "unique_key": job.unique_key,
        "cancel_requested": job.cancel_requested,
        "errors": serde_json::from_str::<Value>(&job.errors).unwrap_or(Value::Null),
        "created_at": time(Some(job.created_at)),
        "attempted_at": time(job.attempted_at),
        "finished_at": time(job.finished_at),
    });
    if let Some(object) = view.as_object_mut() {
        for (name, bytes) in [
            ("payload", Some(&job.payload)),
            ("result", job.result.as_ref()),
        ] {
            let Some(bytes) = bytes else { continue };
            match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => object.insert(name.into(), value),
                Err(_) if bytes.is_empty() => object.insert(name.into(), Value::Null),
                Err(_) => {
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    object.insert(format!("{name}_hex"), Value::String(hex))
                }
            };
        }
    }
    view
}
