//! The route table a plugin declares, and the dispatch from the host's
//! `handle` call to the matching handler.

use std::time::Duration;

use crate::bindings::exports::trellis::plugin::job_handler::{
    Job as RawJob, JobError as RawJobError, JobKind as RawJobKind, Schedule as RawSchedule,
};
use crate::bindings::exports::trellis::plugin::manifest::{PluginManifest, Route};
use crate::bindings::exports::trellis::plugin::migrations::Migration as RawMigration;
use crate::bindings::trellis::plugin::types::{Request as RawRequest, Response as RawResponse};
use crate::jobs::{Job, JobError, JobHandler, Kind};
use crate::{Error, Request, Response, Result};

/// A request handler: a plain function from [`Request`] to [`Result<Response>`].
pub type Handler = fn(Request) -> Result<Response>;

/// Handles many requests to one route in one call (see [`App::batch`]): one
/// result per request, in order.
pub type BatchHandler = fn(Vec<Request>) -> Vec<Result<Response>>;

struct RouteEntry {
    method: &'static str,
    path: &'static str,
    handler: Handler,
    /// Serves many of the route's requests at once, when declared.
    batch: Option<BatchHandler>,
    /// Sent as the manifest's `route.options`.
    options: Vec<(String, String)>,
    /// JSON Schemas by option key, made only when the host reads the
    /// manifest (see [`Schema`]).
    schemas: Vec<(&'static str, Box<dyn Schema>)>,
}

/// A JSON Schema for [`App::request_schema`] and [`App::response_schema`]:
/// a function that makes one (`note_schema`, `|| json!({..})`), called only
/// when the host reads the plugin's manifest, or a ready
/// [`serde_json::Value`].
///
/// Every request runs in a fresh instance that builds the [`App`] again to
/// find its handler, so a schema built eagerly is built (and thrown away)
/// on every request; a function is not called then.
pub trait Schema: 'static {
    /// The schema.
    fn schema(&self) -> serde_json::Value;
}

impl Schema for serde_json::Value {
    fn schema(&self) -> serde_json::Value {
        self.clone()
    }
}

impl<F: Fn() -> serde_json::Value + 'static> Schema for F {
    fn schema(&self) -> serde_json::Value {
        self()
    }
}

/// A plugin's routes and the capabilities it asks for.
///
/// The host matches requests against these routes, so a handler is only
/// called for its own method and path pattern. Patterns use `{name}` for one
/// path segment and `{*name}` for the rest of the path.
pub struct App {
    name: String,
    version: String,
    routes: Vec<RouteEntry>,
    capabilities: Vec<String>,
    migrations: Vec<Migration>,
    jobs: Vec<(Kind, JobHandler)>,
    schedules: Vec<RawSchedule>,
}

/// A schema migration: SQL for each backend, applied once, in id order,
/// before the plugin version serves.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Increasing from 1.
    pub id: u32,
    /// A short description.
    pub name: &'static str,
    /// SQL for SQLite (may hold several statements).
    pub sqlite: &'static str,
    /// SQL for PostgreSQL (may hold several statements).
    pub postgres: &'static str,
}

impl App {
    /// A plugin with no routes yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        App {
            name: name.into(),
            version: version.into(),
            routes: Vec::new(),
            capabilities: Vec::new(),
            migrations: Vec::new(),
            jobs: Vec::new(),
            schedules: Vec::new(),
        }
    }

    /// Declares a job kind and the handler that runs its jobs.
    pub fn job(mut self, kind: Kind, handler: JobHandler) -> Self {
        self.jobs.push((kind, handler));
        self
    }

    /// Enqueues a job of `kind` with `payload` on a cron schedule: five
    /// fields (minute hour day month weekday) or six with seconds first,
    /// in UTC. Each tick is enqueued exactly once across the cluster.
    pub fn schedule(
        mut self,
        name: impl Into<String>,
        cron: impl Into<String>,
        kind: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Self {
        self.schedules.push(RawSchedule {
            name: name.into(),
            cron: cron.into(),
            kind: kind.into(),
            payload: payload.into(),
        });
        self
    }

    /// Adds a schema migration (and declares the `sql` capability).
    pub fn migration(mut self, migration: Migration) -> Self {
        if !self.capabilities.iter().any(|c| c == "sql") {
            self.capabilities.push("sql".into());
        }
        self.migrations.push(migration);
        self
    }

    /// Serves `method` requests to `path` with `handler`.
    pub fn route(mut self, method: &'static str, path: &'static str, handler: Handler) -> Self {
        self.routes.push(RouteEntry {
            method,
            path,
            handler,
            batch: None,
            options: Vec::new(),
            schemas: Vec::new(),
        });
        self
    }

    /// Serves `GET` requests to `path`.
    pub fn get(self, path: &'static str, handler: Handler) -> Self {
        self.route("GET", path, handler)
    }

    /// Serves `POST` requests to `path`.
    pub fn post(self, path: &'static str, handler: Handler) -> Self {
        self.route("POST", path, handler)
    }

    /// Serves `PUT` requests to `path`.
    pub fn put(self, path: &'static str, handler: Handler) -> Self {
        self.route("PUT", path, handler)
    }

    /// Serves `PATCH` requests to `path`.
    pub fn patch(self, path: &'static str, handler: Handler) -> Self {
        self.route("PATCH", path, handler)
    }

    /// Serves `DELETE` requests to `path`.
    pub fn delete(self, path: &'static str, handler: Handler) -> Self {
        self.route("DELETE", path, handler)
    }

    /// Lets the host cache the responses of the route added last: it
    /// answers repeated requests from its HTTP response cache without calling
    /// the plugin, until the ttl runs out or a tag is invalidated (see
    /// [`cache::invalidate_tag`](crate::cache::invalidate_tag)). Only `GET`
    /// routes may be cached: the host refuses to load a plugin that caches
    /// another method. Calling it again for the same route replaces the
    /// settings.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use trellis_sdk::prelude::*;
    /// # use trellis_sdk::RouteCache;
    /// # fn get(_req: Request) -> Result<Response> { Ok(Response::no_content()) }
    /// App::new("notes", "1.0.0")
    ///     .get("/notes/{id}", get)
    ///     .cache(RouteCache::ttl(Duration::from_secs(30)).tag("notes").tag("note:{id}"));
    /// ```
    ///
    /// # Panics
    ///
    /// When no route was added yet: `cache` follows the route it applies to.
    pub fn cache(mut self, cache: RouteCache) -> Self {
        let Some(route) = self.routes.last_mut() else {
            panic!("App::cache applies to the route added before it, and there is none yet");
        };
        route.options.retain(|(key, _)| !key.starts_with("cache-"));
        route.options.extend(cache.options());
        self
    }

    /// Makes `?fields=` on the route added before it lenient: fields the
    /// response does not have are skipped instead of answered with 400.
    ///
    /// # Panics
    ///
    /// When no route was added yet.
    pub fn lenient_fields(mut self) -> Self {
        let Some(route) = self.routes.last_mut() else {
            panic!(
                "App::lenient_fields applies to the route added before it, and there is none yet"
            );
        };
        route.options.retain(|(key, _)| key != "fields");
        route.options.push(("fields".into(), "lenient".into()));
        self
    }

    /// Serves the route added before it many requests at a time: the
    /// runtime's batch endpoint hands every operation of a batch that goes to
    /// this route to `handler` in one call (one instance), instead of one
    /// instance per operation. `handler` returns one result per request, in
    /// order; the route's own handler still serves single requests.
    ///
    /// ```
    /// # use trellis_sdk::prelude::*;
    /// # fn create(_: Request) -> Result<Response> { Response::json(&1) }
    /// fn create_many(requests: Vec<Request>) -> Vec<Result<Response>> {
    ///     // e.g. one multi-row INSERT in one transaction
    ///     requests.into_iter().map(create).collect()
    /// }
    /// let app = App::new("notes", "0.1.0").post("/notes", create).batch(create_many);
    /// ```
    ///
    /// # Panics
    ///
    /// When no route was added yet.
    pub fn batch(mut self, handler: BatchHandler) -> Self {
        let Some(route) = self.routes.last_mut() else {
            panic!("App::batch applies to the route added before it, and there is none yet");
        };
        route.batch = Some(handler);
        route.options.retain(|(k, _)| k != "batch");
        route.options.push(("batch".into(), "true".into()));
        self
    }

    /// Attaches a JSON Schema of the request body to the route added before
    /// it: published in the runtime's `/api/v1/openapi.json` (the host does
    /// not validate requests against it).
    ///
    /// Pass a function (see [`Schema`]): it is called only when the host
    /// reads the manifest, not on every request.
    ///
    /// ```
    /// # use trellis_sdk::prelude::*;
    /// # fn create(_: Request) -> Result<Response> { Response::json(&1) }
    /// let app = App::new("notes", "0.1.0")
    ///     .post("/notes", create)
    ///     .request_schema(|| serde_json::json!({
    ///         "type": "object",
    ///         "required": ["title"],
    ///         "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
    ///     }));
    /// ```
    ///
    /// # Panics
    ///
    /// When no route was added yet.
    pub fn request_schema(self, schema: impl Schema) -> Self {
        self.schema("request-schema", schema)
    }

    /// Attaches a JSON Schema of a 2xx JSON response body to the route added
    /// before it, published like [`App::request_schema`].
    ///
    /// # Panics
    ///
    /// When no route was added yet.
    pub fn response_schema(self, schema: impl Schema) -> Self {
        self.schema("response-schema", schema)
    }

    fn schema(mut self, key: &'static str, schema: impl Schema) -> Self {
        let Some(route) = self.routes.last_mut() else {
            panic!("App::{key} applies to the route added before it, and there is none yet");
        };
        route.schemas.retain(|(k, _)| *k != key);
        route.schemas.push((key, Box::new(schema)));
        self
    }

    /// Declares a capability the plugin uses (`"log"`, `"config"`, ...). The
    /// operator must grant it, or the plugin does not load.
    pub fn capability(mut self, name: impl Into<String>) -> Self {
        self.capabilities.push(name.into());
        self
    }
}

/// How the host caches a `GET` route's responses: see [`App::cache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    ttl: Duration,
    vary: Vec<String>,
    tags: Vec<String>,
}

impl RouteCache {
    /// Responses are served from the cache for `ttl` (whole milliseconds,
    /// capped by the host's maximum).
    pub fn ttl(ttl: Duration) -> Self {
        RouteCache {
            ttl,
            vary: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Keeps one cached response per value of request header `header` (e.g.
    /// `accept-language`). Repeatable.
    pub fn vary(mut self, header: impl Into<String>) -> Self {
        self.vary.push(header.into().to_ascii_lowercase());
        self
    }

    /// Tags the cached responses with `tag`, so that
    /// [`cache::invalidate_tag`](crate::cache::invalidate_tag) drops them. A
    /// `{param}` in the tag is replaced with the request's path parameter of
    /// that name: `note:{id}` on `/notes/{id}` tags `/notes/7` with `note:7`.
    /// Repeatable.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The route options: `cache-ttl` (`"30000ms"`), and `cache-vary` and
    /// `cache-tags` as comma-separated lists when not empty.
    fn options(&self) -> Vec<(String, String)> {
        let mut options = vec![(
            "cache-ttl".to_string(),
            format!("{}ms", self.ttl.as_millis()),
        )];
        for (key, values) in [("cache-vary", &self.vary), ("cache-tags", &self.tags)] {
            if !values.is_empty() {
                options.push((key.to_string(), values.join(",")));
            }
        }
        options
    }
}

impl App {
    /// Each route's method and path pattern, in declaration order (the
    /// route index the host sends).
    pub(crate) fn route_patterns(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        self.routes.iter().map(|r| (r.method, r.path))
    }
}

/// The manifest the host reads when it loads the plugin.
pub fn describe(app: &App) -> PluginManifest {
    PluginManifest {
        name: app.name.clone(),
        version: app.version.clone(),
        routes: app
            .routes
            .iter()
            .map(|r| Route {
                method: r.method.to_string(),
                path: r.path.to_string(),
                options: r
                    .options
                    .iter()
                    .cloned()
                    .chain(
                        r.schemas
                            .iter()
                            .map(|(key, schema)| (key.to_string(), schema.schema().to_string())),
                    )
                    .collect(),
            })
            .collect(),
        capabilities: app.capabilities.clone(),
    }
}

/// The migrations the host applies when it loads the plugin.
pub fn migrations(app: &App) -> Vec<RawMigration> {
    app.migrations
        .iter()
        .map(|m| RawMigration {
            id: m.id,
            name: m.name.to_string(),
            sqlite: m.sqlite.to_string(),
            postgres: m.postgres.to_string(),
        })
        .collect()
}

/// Runs the handler of the route the host matched and turns its result into
/// a response; an error becomes problem+json carrying the request id.
pub fn handle(app: &App, raw: RawRequest) -> RawResponse {
    let request_id = raw.request_id.clone();
    let result = match app.routes.get(raw.route as usize) {
        Some(route) => (route.handler)(Request::from_raw(raw)),
        None => Err(Error::internal(format!(
            "the host asked for route {} but this plugin has {}",
            raw.route,
            app.routes.len()
        ))),
    };
    result
        .unwrap_or_else(|err| err.into_response(&request_id))
        .into_raw()
}

/// Runs many requests to one route: through the route's batch handler when
/// it has one, else one by one through its handler. Always one response per
/// request.
pub fn handle_batch(app: &App, raws: Vec<RawRequest>) -> Vec<RawResponse> {
    let route = raws.first().and_then(|r| app.routes.get(r.route as usize));
    let same_route = raws.windows(2).all(|w| w[0].route == w[1].route);
    let Some(batch) = route.and_then(|r| r.batch).filter(|_| same_route) else {
        return raws.into_iter().map(|raw| handle(app, raw)).collect();
    };
    let ids: Vec<String> = raws.iter().map(|r| r.request_id.clone()).collect();
    let mut results = batch(raws.into_iter().map(Request::from_raw).collect()).into_iter();
    ids.iter()
        .map(|id| {
            results
                .next()
                .unwrap_or_else(|| {
                    Err(Error::internal(
                        "the batch handler returned fewer responses than requests",
                    ))
                })
                .unwrap_or_else(|err| err.into_response(id))
                .into_raw()
        })
        .collect()
}

/// The job kinds the host reads when it loads the plugin.
pub fn job_kinds(app: &App) -> Vec<RawJobKind> {
    app.jobs.iter().map(|(kind, _)| kind.to_raw()).collect()
}

/// The schedules the host reads when it loads the plugin.
pub fn schedules(app: &App) -> Vec<RawSchedule> {
    app.schedules.clone()
}

/// Runs the handler of the job's kind.
pub fn run_job(app: &App, raw: RawJob) -> Result<Vec<u8>, RawJobError> {
    let job = Job::from_raw(raw);
    match app.jobs.iter().find(|(kind, _)| kind.name == job.kind) {
        Some((_, handler)) => handler(job).map_err(JobError::into_raw),
        None => Err(RawJobError::Fatal(format!(
            "this plugin has no job kind `{}`",
            job.kind
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::testing::{TestRequest, send};

    static MADE: AtomicUsize = AtomicUsize::new(0);

    fn schema() -> serde_json::Value {
        MADE.fetch_add(1, Ordering::Relaxed);
        serde_json::json!({"type": "object"})
    }

    fn ok(_: Request) -> Result<Response> {
        Ok(Response::no_content())
    }

    fn app() -> App {
        App::new("lazy", "0.1.0")
            .post("/things", ok)
            .request_schema(schema)
            .response_schema(serde_json::json!(true))
    }

    #[test]
    fn schemas_are_made_for_the_manifest_not_for_requests() {
        assert_eq!(send(&app(), TestRequest::post("/things")).status(), 204);
        assert_eq!(MADE.load(Ordering::Relaxed), 0);
        let manifest = describe(&app());
        assert_eq!(MADE.load(Ordering::Relaxed), 1);
        let options = &manifest.routes[0].options;
        assert!(options.contains(&("request-schema".into(), r#"{"type":"object"}"#.into())));
        assert!(options.contains(&("response-schema".into(), "true".into())));
    }
}
