//! The runtime's own endpoints, routed by one table: liveness, readiness
//! and dependency health, metrics and the monitoring API, the dashboard,
//! the OpenAPI document, batches, the job API and the plugin admin API.
//! Each row of [`TABLE`] names the paths it serves, who may call it, whether
//! its requests get a server trace span, whether `?fields=` and the
//! pagination `Link` apply, and the handler that serves it. The pipeline
//! looks a request's path up once ([`find`]); [`serve`] checks access from
//! the row, then the handler checks the method and reads its sub-path. The
//! table covers exactly `router::RESERVED` (a unit test holds the two
//! together), so what it serves no plugin can claim.
//! Layer: inside `http` (called by `App::dispatch`); below it the handlers
//! reach `deploy`, `jobs`, `plugin`, `alerts`, `backend` and `monitor`
//! through the [`App`].

mod admin;
pub(crate) mod batch;
mod dashboard;
mod health;
mod jobs;
mod monitoring;
pub(super) mod openapi;

use std::pin::Pin;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use opentelemetry::Context;

use super::{AdminAuth, App, fields, pagination};
use crate::error::ApiError;
use Access::{Admin, Health, Metrics, Public};
use Scope::{Below, Exact, Prefix};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Anyone: the dashboard page (its data needs the token), the OpenAPI
    /// document, batches (each operation meets the pipeline's own checks).
    Public,
    /// Anyone when `admin.public_health`, else the admin token.
    Health,
    /// Anyone when `admin.public_metrics`, else the admin token.
    Metrics,
    /// The admin token.
    Admin,
}

impl Access {
    /// Ok when a request with `headers` may call the endpoint.
    fn check(
        self,
        auth: &AdminAuth,
        method: &http::Method,
        headers: &http::HeaderMap,
    ) -> Result<(), ApiError> {
        let public = match self {
            Access::Public => true,
            Access::Health => auth.public_health,
            Access::Metrics => auth.public_metrics,
            Access::Admin => false,
        };
        if public {
            Ok(())
        } else {
            auth.check(method, headers)
        }
    }
}

/// Which request paths a row serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The path itself only.
    Exact,
    /// The path and every path below it (`/a`, `/a/b`; not `/ab`).
    Below,
    /// Every path that starts with it, as a string (`/a/b`, `/a/b/1` and
    /// `/a/bc` for `/a/b`).
    Prefix,
}

/// A request body, whatever the connection's (or a batch operation's).
type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// What a handler gets: the app, the request head and body, the request id
/// and the server span's context (empty when the row is not traced).
#[derive(Debug)]
pub(super) struct Call<'a> {
    app: &'a App,
    parts: &'a Parts,
    body: RequestBody,
    request_id: &'a str,
    trace: &'a Context,
}

/// A handler's answer, to come.
type Handled<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, ApiError>> + Send + 'a>>;

/// A handler: checks the method (405 with `Allow`) and its sub-path.
type Handler = for<'a> fn(Call<'a>) -> Handled<'a>;

/// One endpoint (or a family under one prefix).
#[derive(Debug)]
pub(super) struct Endpoint {
    pub(super) path: &'static str,
    pub(super) scope: Scope,
    pub(super) access: Access,
    /// Requests get a server span (as plugin routes do): only the job API,
    /// so a job's run joins its enqueuer's trace; scrapes and probes not.
    pub(super) traced: bool,
    /// `?fields=` selects from the JSON answer and a `next_cursor` in it
    /// becomes `Link: rel="next"`.
    pub(super) shaped: bool,
    handler: Handler,
}

impl Endpoint {
    fn serves(&self, path: &str) -> bool {
        match self.scope {
            Scope::Exact => path == self.path,
            Scope::Below => crate::router::below(path, self.path).is_some(),
            Scope::Prefix => path.starts_with(self.path),
        }
    }
}

/// A handler from an `async fn(Call) -> Result<Response, ApiError>`.
macro_rules! handler {
    ($serve:path) => {
        |call| Box::pin($serve(call))
    };
}

/// Every endpoint; the first row that serves a path serves it. Columns:
/// the path and which paths it serves ([`Scope`]), who may call it, whether
/// requests get a server span, whether `?fields=` and `Link: rel="next"`
/// apply, and the handler. The last rows catch the rest of each reserved
/// path: admin token, `GET`/`HEAD`, 404. (Aligned by hand: a table reads
/// down its columns.)
#[rustfmt::skip]
pub(super) static TABLE: &[Endpoint] = &[
    //  path                          scope   access   traced shaped handler
    at("/healthz",                    Exact,  Health,  false, true,  handler!(health::live)),
    at("/readyz",                     Exact,  Health,  false, true,  handler!(health::ready)),
    at("/api/v1/monitoring/health",   Exact,  Health,  false, true,  handler!(health::dependencies)),
    at("/metrics",                    Exact,  Metrics, false, true,  handler!(monitoring::metrics)),
    at("/dashboard",                  Exact,  Public,  false, true,  handler!(dashboard::page)),
    at(openapi::PATH,                 Exact,  Public,  false, false, handler!(openapi::serve)),
    at(batch::PATH,                   Exact,  Public,  false, false, handler!(batch::serve)),
    at(jobs::PATH,                    Below,  Admin,   true,  true,  handler!(jobs::serve)),
    at(admin::PATH,                   Below,  Admin,   false, true,  handler!(admin::serve)),
    at("/api/v1/monitoring/metrics",  Exact,  Admin,   false, true,  handler!(monitoring::summary)),
    at("/api/v1/monitoring/traces",   Exact,  Admin,   false, true,  handler!(monitoring::traces)),
    at(monitoring::TRACE,             Prefix, Admin,   false, true,  handler!(monitoring::trace)),
    at("/api/v1/monitoring/errors",   Exact,  Admin,   false, true,  handler!(monitoring::errors)),
    at(monitoring::ERROR_GROUP,       Prefix, Admin,   false, true,  handler!(monitoring::error_group)),
    at("/api/v1/monitoring/alerts",   Exact,  Admin,   false, true,  handler!(monitoring::alerts)),
    at(monitoring::SILENCES,          Prefix, Admin,   false, true,  handler!(monitoring::silences)),
    at("/healthz",                    Below,  Admin,   false, true,  handler!(nothing_here)),
    at("/readyz",                     Below,  Admin,   false, true,  handler!(nothing_here)),
    at("/metrics",                    Below,  Admin,   false, true,  handler!(nothing_here)),
    at("/dashboard",                  Below,  Admin,   false, true,  handler!(nothing_here)),
    at("/admin",                      Below,  Admin,   false, true,  handler!(nothing_here)),
    at("/api/v1/monitoring",          Below,  Admin,   false, true,  handler!(nothing_here)),
    at(batch::PATH,                   Below,  Admin,   false, true,  handler!(nothing_here)),
    at(openapi::PATH,                 Below,  Admin,   false, true,  handler!(nothing_here)),
];

/// A row of [`TABLE`].
const fn at(
    path: &'static str,
    scope: Scope,
    access: Access,
    traced: bool,
    shaped: bool,
    handler: Handler,
) -> Endpoint {
    Endpoint {
        path,
        scope,
        access,
        traced,
        shaped,
        handler,
    }
}

/// The endpoint that serves `path`; `None` for a path plugins may route.
pub(super) fn find(path: &str) -> Option<&'static Endpoint> {
    TABLE.iter().find(|endpoint| endpoint.serves(path))
}

/// Serves a request to `endpoint`: its `?fields=` selection read (a
/// malformed one is a 400 before anything else), access checked, the
/// handler run, then the selection and the `Link` applied.
pub(super) async fn serve<B>(
    app: &App,
    endpoint: &Endpoint,
    parts: &Parts,
    body: B,
    request_id: &str,
    trace: &Context,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let selection = if endpoint.shaped {
        fields::requested(parts.uri.query())?
    } else {
        None
    };
    endpoint
        .access
        .check(&app.admin, &parts.method, &parts.headers)?;
    let call = Call {
        app,
        parts,
        body: body.map_err(std::io::Error::other).boxed_unsync(),
        request_id,
        trace,
    };
    let response = (endpoint.handler)(call).await?;
    if !endpoint.shaped {
        return Ok(response);
    }
    let mut response = match &selection {
        Some(selection) => fields::select(response, selection, false)?,
        None => response,
    };
    pagination::link_next(&mut response, &parts.uri);
    Ok(response)
}

/// A reserved path no endpoint serves: 405 but for `GET`/`HEAD`, else 404.
async fn nothing_here(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    Err(ApiError::NotFound {
        path: call.parts.uri.path().into(),
    })
}

/// 405 unless the method is `GET` or `HEAD`.
fn get_only(parts: &Parts) -> Result<(), ApiError> {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        Ok(())
    } else {
        Err(super::not_allowed(&parts.method, "GET, HEAD"))
    }
}

/// The segments of `path` under `prefix` (see [`crate::router::below`]):
/// `["1", "cancel"]` for `/api/v1/jobs/1/cancel` under `/api/v1/jobs`.
fn segments_under<'a>(path: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let rest = crate::router::below(path, prefix)?;
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

/// A JSON answer.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{RESERVED, below, is_reserved};

    /// Whether every path `endpoint` serves is reserved.
    fn within_reserved(endpoint: &Endpoint) -> bool {
        match endpoint.scope {
            Scope::Exact | Scope::Below => is_reserved(endpoint.path),
            // `/a/b` as a prefix also serves `/a/bc`: reserved only when
            // strictly below a reserved path.
            Scope::Prefix => RESERVED
                .iter()
                .any(|r| below(endpoint.path, r).is_some_and(|rest| !rest.is_empty())),
        }
    }

    #[test]
    fn the_table_serves_exactly_the_reserved_paths() {
        for endpoint in TABLE {
            assert!(
                within_reserved(endpoint),
                "{} is served but not in router::RESERVED: plugins could claim it",
                endpoint.path
            );
        }
        for reserved in RESERVED {
            assert!(
                TABLE
                    .iter()
                    .any(|e| e.path == *reserved && e.scope == Scope::Below),
                "{reserved} is reserved but no row serves everything below it"
            );
            for path in [reserved.to_string(), format!("{reserved}/x/y")] {
                assert!(find(&path).is_some(), "{path} is reserved but not served");
            }
        }
        for path in [
            "/",
            "/notes",
            "/api/v1/jobsx",
            "/healthzx",
            "/admins",
            "/api/v1",
        ] {
            assert!(!is_reserved(path), "{path}");
            assert!(find(path).is_none(), "{path} is not reserved but served");
        }
    }

    #[test]
    fn each_row_is_found_for_its_own_path() {
        for endpoint in TABLE {
            let found = find(endpoint.path).expect("served");
            assert_eq!(found.path, endpoint.path, "{} is shadowed", endpoint.path);
        }
    }

    #[test]
    fn rows_carry_todays_access_tracing_and_shaping() {
        let at = |path: &str| find(path).expect("served");
        assert_eq!(at("/healthz").access, Access::Health);
        assert_eq!(at("/healthz/x").access, Access::Admin);
        assert_eq!(at("/metrics").access, Access::Metrics);
        assert_eq!(at("/dashboard").access, Access::Public);
        assert_eq!(at("/api/v1/monitoring/health").access, Access::Health);
        assert_eq!(
            at("/api/v1/monitoring/silencesx").path,
            monitoring::SILENCES
        );
        assert_eq!(at("/admin/plugins/a/reload").path, admin::PATH);
        assert_eq!(at("/admin/other").path, "/admin");
        let traced: Vec<&str> = TABLE.iter().filter(|e| e.traced).map(|e| e.path).collect();
        assert_eq!(traced, [jobs::PATH]);
        assert!(at("/api/v1/jobs/1/cancel").traced);
        let unshaped: Vec<&str> = TABLE.iter().filter(|e| !e.shaped).map(|e| e.path).collect();
        assert_eq!(unshaped, [openapi::PATH, batch::PATH]);
        assert!(at("/api/v1/batch/x").shaped);
    }
}
