//! `POST /api/v1/batch`: many requests in one. Each operation runs through
//! the whole pipeline as a request of its own (request id, auth, limits,
//! tracing, routing, response cache, field selection), up to
//! `batch.concurrency` at once, and the answer lists each result with its
//! own status in operation order. References to earlier results are not
//! supported.
//!
//! `"atomic": true` runs the operations against one plugin, one after
//! another, inside one database transaction of that plugin (every statement
//! of each call runs in it; a guest's own transaction becomes a savepoint):
//! when every operation answers 2xx or 3xx it commits, else the first
//! failure stops the batch, the rest are not run (424) and everything rolls
//! back. Nothing an atomic operation answers is cached; jobs it enqueues
//! are queued only when the batch commits.
//!
//! ```json
//! {"operations": [
//!   {"id": "a", "method": "GET", "path": "/notes/1"},
//!   {"id": "b", "method": "POST", "path": "/notes", "body": {"title": "x"}}
//! ]}
//! ```
//!
//! Layer: inside `http::api`; it re-enters the pipeline (`App::serve`) and
//! calls plugins through `http`'s own plugin call.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, json_response};
use crate::capability::sql::{Ambient, AmbientSlot};
use crate::error::ApiError;
use crate::http::fields::Selection;
use crate::http::{App, convert, request_id};
use crate::plugin::{GuestRequest, LoadedPlugin};
use crate::router::{Lookup, Target};
use opentelemetry::trace::TraceContextExt;

/// The endpoint.
pub const PATH: &str = "/api/v1/batch";

/// Longest time to receive the batch body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A batch body, read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    pub(crate) operations: Vec<Operation>,
    #[serde(default)]
    pub(crate) atomic: bool,
}

/// One operation of a batch, as the client wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Operation {
    /// The caller's name for it, echoed in its result.
    #[serde(default)]
    id: Option<String>,
    method: String,
    path: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// JSON (sent as `application/json`) or a string (sent as it is).
    #[serde(default)]
    body: Option<Value>,
}

/// Serves a batch.
pub(super) async fn serve(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    let Call {
        app,
        parts,
        body,
        request_id,
        ..
    } = call;
    if parts.method != Method::POST {
        return Err(crate::http::not_allowed(&parts.method, "POST"));
    }
    let config = app.batch.clone();
    let bytes =
        convert::read_body(body, &parts.headers, config.max_body.as_u64(), BODY_TIMEOUT).await?;
    let batch = parse(&bytes, config.max_operations)?;
    if batch.atomic {
        return atomic(app, batch.operations, request_id).await;
    }
    let units = plan(app, batch.operations, request_id);
    let mut results: Vec<(usize, Value)> = futures_util::stream::iter(units)
        .map(|unit| run_unit(app, unit))
        .buffered(config.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<Value> = results.into_iter().map(|(_, result)| result).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "results": results }),
    ))
}

/// The batch of body `bytes`, of at most `max_operations` operations.
/// The batch and each operation are JSON objects: serde would also read a
/// struct from an array of its fields in order (`[[...], true]`), a form
/// the API does not have.
pub(crate) fn parse(bytes: &[u8], max_operations: usize) -> Result<Batch, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::BadRequest(format!("invalid batch: {e}"));
    let value: Value = serde_json::from_slice(bytes).map_err(invalid)?;
    let objects = value
        .as_object()
        .is_some_and(|batch| match batch.get("operations") {
            Some(Value::Array(operations)) => operations.iter().all(Value::is_object),
            _ => true,
        });
    if !objects {
        return Err(ApiError::BadRequest(
            "invalid batch: the batch and each of its operations are JSON objects".into(),
        ));
    }
    let batch: Batch = serde_json::from_value(value).map_err(invalid)?;
    if batch.operations.len() > max_operations {
        return Err(ApiError::TooManyOperations {
            limit: max_operations,
        });
    }
    Ok(batch)
}

/// An operation, read and named: its position, its id, its own request id
/// and its request (or why it has none).
struct Prepared {
    index: usize,
    id: String,
    sub_id: String,
    request: Result<Request<Full<Bytes>>, ApiError>,
}

impl Prepared {
    /// Operation `index` of batch `batch_id`: named by its id (or its
    /// position), with a request id derived from the batch's.
    fn new(op: Operation, index: usize, batch_id: &str) -> Prepared {
        let id = op.id.clone().unwrap_or_else(|| index.to_string());
        let sub_id = format!("{batch_id}-{index}");
        let request = request(op, &sub_id);
        Prepared {
            index,
            id,
            sub_id,
            request,
        }
    }
}

/// What runs as one: an operation through the pipeline, or the operations
/// to one route that batches, in one `batch-handler` call.
enum Unit {
    One(Box<Prepared>),
    Group {
        target: Target,
        members: Vec<(Prepared, Vec<(String, String)>)>,
    },
}

/// Reads and routes every operation; groups those to a route that
/// batches (two or more to one route: one call; one alone: the pipeline).
fn plan(app: &App, operations: Vec<Operation>, batch_id: &str) -> Vec<Unit> {
    let routes = app.routes();
    let mut units: Vec<Unit> = Vec::new();
    let mut groups: std::collections::HashMap<(String, u32), usize> = Default::default();
    for (index, op) in operations.into_iter().enumerate() {
        let prepared = Prepared::new(op, index, batch_id);
        let found = prepared.request.as_ref().ok().and_then(|request| {
            match routes.lookup(request.method().as_str(), request.uri().path()) {
                Lookup::Found { target, params } if target.plugin.batches(target.route) => {
                    Some((target.clone(), params))
                }
                _ => None,
            }
        });
        let Some((target, params)) = found else {
            units.push(Unit::One(Box::new(prepared)));
            continue;
        };
        let key = (target.plugin.name().to_string(), target.route);
        match groups.get(&key).and_then(|&at| units.get_mut(at)) {
            Some(Unit::Group { members, .. }) => members.push((prepared, params)),
            _ => {
                groups.insert(key, units.len());
                units.push(Unit::Group {
                    target,
                    members: vec![(prepared, params)],
                });
            }
        }
    }
    units
}

/// Runs a unit; its results by operation position.
async fn run_unit(app: &App, unit: Unit) -> Vec<(usize, Value)> {
    match unit {
        Unit::One(prepared) => vec![(prepared.index, run(app, *prepared).await)],
        Unit::Group { mut members, .. } if members.len() == 1 => {
            let (prepared, _) = members.remove(0);
            vec![(prepared.index, run(app, prepared).await)]
        }
        Unit::Group { target, members } => run_group(app, &target, members).await,
    }
}

/// An operation of a group that reached the call: its position, id and
/// request id, its request head and `?fields=` selection.
struct Called {
    index: usize,
    id: String,
    sub_id: String,
    parts: http::request::Parts,
    selection: Option<Selection>,
}

/// Operations to one route in one `batch-handler` call: each read as the
/// pipeline reads it (body limit, decoding, `?fields=`) and answered with
/// its own status; a failed call fails each of them alike.
async fn run_group(
    app: &App,
    target: &Target,
    members: Vec<(Prepared, Vec<(String, String)>)>,
) -> Vec<(usize, Value)> {
    let started = std::time::Instant::now();
    let method = members
        .first()
        .and_then(|(p, _)| p.request.as_ref().ok())
        .map_or("POST", |r| r.method().as_str())
        .to_string();
    let trace = app
        .host
        .tracing()
        .server_span(&http::HeaderMap::new(), &method, target.pattern());
    // Every answer is settled as the pipeline settles a routed one.
    let settled = |mut outcome: Result<Response<Full<Bytes>>, ApiError>, sub_id: &str| {
        app.settle(target, &mut outcome, started, sub_id, &trace);
        answered(
            outcome.unwrap_or_else(|err| err.into_response(sub_id)),
            sub_id,
        )
    };
    let mut results = Vec::with_capacity(members.len());
    let mut called = Vec::with_capacity(members.len());
    let mut guest_requests = Vec::with_capacity(members.len());
    for (prepared, params) in members {
        let Prepared {
            index,
            id,
            sub_id,
            request,
        } = prepared;
        let read = read_member(target, request, params, &sub_id).await;
        match read {
            Ok((guest, parts, selection)) => {
                guest_requests.push(guest);
                called.push(Called {
                    index,
                    id,
                    sub_id,
                    parts,
                    selection,
                });
            }
            Err(err) => {
                let response = settled(Err(err), &sub_id);
                results.push((index, result(id, response).await));
            }
        }
    }
    if guest_requests.is_empty() {
        // Every operation was refused before the call: no instance needed.
        trace.span().end();
        return results;
    }
    let answers = match target.plugin.handle_batch(&guest_requests, &trace).await {
        Ok(answers) => answers,
        Err(err) => {
            for called in called.drain(..) {
                let response = settled(Err(err.clone()), &called.sub_id);
                results.push((called.index, result(called.id, response).await));
            }
            Vec::new()
        }
    };
    for (called, answer) in called.into_iter().zip(answers) {
        let selection = called.selection.as_ref();
        let response = settled(
            answer.and_then(|r| crate::http::from_guest(target, &called.parts, selection, r)),
            &called.sub_id,
        );
        results.push((called.index, result(called.id, response).await));
    }
    trace.span().end();
    results
}

/// A group member's request read for the guest as the pipeline reads it,
/// with its head and `?fields=` selection.
async fn read_member(
    target: &Target,
    request: Result<Request<Full<Bytes>>, ApiError>,
    params: Vec<(String, String)>,
    sub_id: &str,
) -> Result<(GuestRequest, http::request::Parts, Option<Selection>), ApiError> {
    let (parts, body) = request?.into_parts();
    let (guest, selection) =
        crate::http::guest_request(target, params, &parts, body, sub_id).await?;
    Ok((guest, parts, selection))
}

/// Carries its operation's request id, as the pipeline's answers do.
fn answered(mut response: Response<Full<Bytes>>, sub_id: &str) -> Response<Full<Bytes>> {
    if let Ok(value) = HeaderValue::from_str(sub_id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    response
}

/// Operations' requests by their ids, in order.
type Named = Vec<(String, Request<Full<Bytes>>)>;

/// An atomic batch (see the module's docs).
async fn atomic(
    app: &App,
    operations: Vec<Operation>,
    batch_id: &str,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (plugin, requests) = route_atomic(app, operations, batch_id)?;
    let Some(plugin) = plugin else {
        return Ok(atomic_answer(true, Vec::new()));
    };
    let Some(db) = plugin.context().database() else {
        return Err(ApiError::BadRequest(format!(
            "plugin `{}` has no database (it is not granted `sql`), so it cannot run an \
             atomic batch",
            plugin.name()
        )));
    };
    let tx = db.begin().await.map_err(|err| {
        ApiError::Unavailable(format!("cannot begin the batch's transaction: {err}"))
    })?;
    let slot: AmbientSlot = std::sync::Arc::new(std::sync::Mutex::new(Ambient::new(tx)));
    let (results, failed) = run_atomic(app, requests, &slot).await;
    let committed = commit(&plugin, &slot, failed).await;
    Ok(atomic_answer(committed, results))
}

/// An atomic batch's operations, each read and routed before anything
/// runs (a malformed one, or one for another plugin, refuses the whole
/// batch), with the plugin they go to (`None` for no operations).
#[allow(clippy::type_complexity)]
fn route_atomic(
    app: &App,
    operations: Vec<Operation>,
    batch_id: &str,
) -> Result<
    (
        Option<Arc<LoadedPlugin>>,
        Vec<(String, Request<Full<Bytes>>)>,
    ),
    ApiError,
> {
    let routes = app.routes();
    let mut plugin: Option<Arc<LoadedPlugin>> = None;
    let mut requests = Vec::with_capacity(operations.len());
    for (index, op) in operations.into_iter().enumerate() {
        let Prepared { id, request, .. } = Prepared::new(op, index, batch_id);
        let request =
            request.map_err(|err| ApiError::BadRequest(format!("operation `{id}`: {err}")))?;
        let Lookup::Found { target, .. } =
            routes.lookup(request.method().as_str(), request.uri().path())
        else {
            return Err(ApiError::BadRequest(format!(
                "operation `{id}`: {} {} is not a plugin route; an atomic batch runs \
                 against one plugin's routes",
                request.method(),
                request.uri().path()
            )));
        };
        match &plugin {
            Some(first) if first.name() != target.plugin.name() => {
                return Err(ApiError::BadRequest(format!(
                    "an atomic batch runs against one plugin: operation `{id}` goes to `{}`, \
                     the ones before it to `{}`",
                    target.plugin.name(),
                    first.name()
                )));
            }
            Some(_) => {}
            None => plugin = Some(target.plugin.clone()),
        }
        requests.push((id, request));
    }
    Ok((plugin, requests))
}

/// Runs an atomic batch's operations one after another in the
/// transaction `slot` holds, until one fails (or ends the transaction):
/// the results, the rest 424, and the id of the one that failed.
async fn run_atomic(
    app: &App,
    requests: Named,
    slot: &AmbientSlot,
) -> (Vec<Value>, Option<String>) {
    let mut results = Vec::with_capacity(requests.len());
    let mut failed: Option<String> = None;
    for (id, mut request) in requests {
        if let Some(failed) = &failed {
            results.push(json!({
                "id": id,
                "status": StatusCode::FAILED_DEPENDENCY.as_u16(),
                "headers": {},
                "body": {
                    "title": "Failed Dependency",
                    "detail": format!(
                        "not run: operation `{failed}` failed, so the batch rolled back"
                    ),
                },
            }));
            continue;
        }
        request.extensions_mut().insert(slot.clone());
        let response = through_pipeline(app, request).await;
        let status = response.status();
        results.push(result(id.clone(), response).await);
        let alive = slot.lock().map(|a| a.tx.is_some()).unwrap_or(false);
        if !(status.is_success() || status.is_redirection()) || !alive {
            failed = Some(id);
        }
    }
    (results, failed)
}

/// Commits the transaction `slot` holds when no operation `failed` (then
/// what it wrote and enqueued takes effect); else drops it, rolled back.
/// Whether it committed.
async fn commit(plugin: &LoadedPlugin, slot: &AmbientSlot, failed: Option<String>) -> bool {
    let ambient = std::mem::take(&mut *slot.lock().unwrap_or_else(|e| e.into_inner()));
    match (failed, ambient.tx) {
        (None, Some(tx)) => match tx.commit().await {
            Ok(()) => {
                crate::capability::sql::committed(
                    plugin.context(),
                    &ambient.written,
                    ambient.enqueued,
                )
                .await;
                true
            }
            Err(err) => {
                tracing::warn!(%err, plugin = plugin.name(), "an atomic batch did not commit");
                false
            }
        },
        // Dropped: rolled back.
        _ => false,
    }
}

fn atomic_answer(committed: bool, results: Vec<Value>) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({ "atomic": true, "committed": committed, "results": results }),
    )
}

/// One operation through the pipeline; a malformed one is a 400 result.
async fn run(app: &App, prepared: Prepared) -> Value {
    let response = match prepared.request {
        Ok(request) => through_pipeline(app, request).await,
        Err(err) => crate::http::boxed(err.into_response(&prepared.sub_id)),
    };
    result(prepared.id, response).await
}

/// An operation's result: its id, status, headers and body (JSON when the
/// response is).
async fn result<B: Body<Data = Bytes>>(id: String, response: Response<B>) -> Value {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json_body = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = if bytes.is_empty() {
        Value::Null
    } else if json_body {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.to_string()))))
        .collect();
    json!({ "id": id, "status": parts.status.as_u16(), "headers": headers, "body": body })
}

/// The pipeline for one operation, boxed with its `Send` declared: a batch
/// calls the pipeline that called it, and the declared type ends the
/// recursion in the future's type.
fn through_pipeline(
    app: &App,
    request: Request<Full<Bytes>>,
) -> std::pin::Pin<Box<dyn Future<Output = Response<crate::http::ResponseBody>> + Send + '_>> {
    Box::pin(app.serve(request))
}

/// The request of operation `op`, with request id `sub_id`; a malformed
/// one (or a batch inside the batch) is a 400.
pub(crate) fn request(op: Operation, sub_id: &str) -> Result<Request<Full<Bytes>>, ApiError> {
    let method = Method::from_bytes(op.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ApiError::BadRequest(format!("`{}` is not an HTTP method", op.method)))?;
    if !op.path.starts_with('/') {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a path (it starts with /)",
            op.path
        )));
    }
    let uri: http::Uri = op
        .path
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("invalid operation: {e}")))?;
    // The path as the pipeline routes it, without `?…` or a `#…` (which
    // the URI parser drops).
    if uri.path() == PATH {
        return Err(ApiError::BadRequest(
            "a batch cannot contain a batch".into(),
        ));
    }
    let mut builder = Request::builder().method(method).uri(uri);
    let mut has_type = false;
    for (name, value) in &op.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ApiError::BadRequest(format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| ApiError::BadRequest(format!("header `{name}` has an invalid value")))?;
        has_type |= name == http::header::CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    let body = match op.body {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) => Bytes::from(text),
        Some(json) => {
            if !has_type {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            }
            Bytes::from(json.to_string())
        }
    };
    builder
        .header(request_id::HEADER, sub_id)
        .body(Full::new(body))
        .map_err(|e| ApiError::BadRequest(format!("invalid operation: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `batch` fuzz target: serde read `[[]]` as a batch (a
    /// struct from an array of its fields).
    #[test]
    fn a_batch_and_its_operations_are_objects() {
        for body in [
            "[[]]",
            r#"[[{"method": "GET", "path": "/x"}], true]"#,
            r#"{"operations": [[null, "GET", "/x"]]}"#,
        ] {
            assert!(
                matches!(parse(body.as_bytes(), 10), Err(ApiError::BadRequest(_))),
                "{body} was read"
            );
        }
        let batch = parse(
            br#"{"atomic": true, "operations": [{"method": "GET", "path": "/x"}]}"#,
            10,
        )
        .expect("a batch");
        assert!(batch.atomic);
        assert_eq!(batch.operations.len(), 1);
        assert!(matches!(
            parse(br#"{"operations": [{"method": "GET", "path": "/x"}, {"method": "GET", "path": "/y"}]}"#, 1),
            Err(ApiError::TooManyOperations { limit: 1 })
        ));
    }

    /// Found by review of the `batch` fuzz target's invariant (a request
    /// never goes to the batch endpoint): `/api/v1/batch#` passed the
    /// check, and the URI parser drops the fragment, so the operation was
    /// a batch.
    #[test]
    fn a_batch_cannot_contain_a_batch_however_spelled() {
        let op = |path: &str| Operation {
            id: None,
            method: "POST".into(),
            path: path.into(),
            headers: Default::default(),
            body: Some(json!({"operations": []})),
        };
        for path in [
            "/api/v1/batch",
            "/api/v1/batch?x=1",
            "/api/v1/batch#",
            "/api/v1/batch#x",
        ] {
            assert!(
                matches!(request(op(path), "b-0"), Err(ApiError::BadRequest(_))),
                "{path} was let through"
            );
        }
        for path in ["/api/v1/batch/", "/api/v1/batchx", "/notes#top"] {
            assert!(request(op(path), "b-0").is_ok(), "{path} was refused");
        }
    }
}
