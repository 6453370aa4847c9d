//! The route table a plugin declares, and the dispatch from the host's
//! `handle` call to the matching handler.

use crate::bindings::exports::trellis::plugin::manifest::{PluginManifest, Route};
use crate::bindings::exports::trellis::plugin::migrations::Migration as RawMigration;
use crate::bindings::trellis::plugin::types::{Request as RawRequest, Response as RawResponse};
use crate::{Error, Request, Response, Result};

/// A request handler: a plain function from [`Request`] to [`Result<Response>`].
pub type Handler = fn(Request) -> Result<Response>;

struct RouteEntry {
    method: &'static str,
    path: &'static str,
    handler: Handler,
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
        }
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

    /// Declares a capability the plugin uses (`"log"`, `"config"`, ...). The
    /// operator must grant it, or the plugin does not load.
    pub fn capability(mut self, name: impl Into<String>) -> Self {
        self.capabilities.push(name.into());
        self
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
                options: Vec::new(),
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
