//! Entry points for the cargo-fuzz targets in `fuzz/`, built only with the
//! `fuzzing` feature: thin functions that hand bytes and strings to the
//! runtime's real parsers, several of them private to their modules (the
//! config overrides, the routing table, the SQL guard and shapes, the batch
//! reader, the `?fields=` tree). Nothing here re-implements a parser.
//!
//! Layer: the top, above `server`: it may call into any layer, and nothing
//! in the crate calls it.

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::backend::sql::{SqlError, guard, shape};
use crate::config::{Config, ConfigError, env};
use crate::error::ApiError;
use crate::http::convert;
use crate::http::fields::Selection;
use crate::plugin::GuestRequest;
use crate::router::{Lookup, RouteConflict, Table};

/// [`Config::parse`] of `text` with the environment `env`.
pub fn config(text: &str, env: Vec<(String, String)>) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("fuzz/trellis.toml"), env)
}

/// The value a `TRELLIS_*` override variable holding `raw` sets.
pub fn env_value(raw: &str) -> toml::Value {
    env::parse_env_value(raw)
}

/// A routing table whose values are plugin names: the router's own table
/// (matchit, conflicts, reserved paths, `HEAD` → `GET`), without plugins.
#[derive(Debug, Default)]
pub struct Routes(Table<String>);

impl Routes {
    /// Adds route `method` `pattern` of `plugin`.
    pub fn add(&mut self, method: &str, pattern: &str, plugin: &str) -> Result<(), RouteConflict> {
        self.0.add(method, pattern, plugin, plugin.to_string())
    }

    /// Looks `method` `path` up.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_, String> {
        self.0.lookup(method, path)
    }
}

/// The SQLite statement guard, uncached.
pub fn sql_check(sql: &str, multi: bool) -> Result<(), SqlError> {
    guard::check_uncached(sql, multi)
}

/// The word the guard reads first (and refuses when it is ATTACH, DETACH,
/// PRAGMA or VACUUM).
pub fn sql_leading_keyword(sql: &str) -> Option<&str> {
    guard::leading_keyword(sql)
}

/// A statement's shape, uncached.
pub fn sql_shape(sql: &str) -> String {
    shape::shape_uncached(sql)
}

/// One runtime for the async parts (the body read); a whole body is ready,
/// so nothing waits on it.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
});

/// The guest's view of `request` to route 0 with `params`, its body read
/// under `limit` bytes and decoded, as the pipeline makes it.
pub fn guest_request(
    request: Request<Full<Bytes>>,
    params: Vec<(String, String)>,
    limit: u64,
) -> Result<GuestRequest, ApiError> {
    let (parts, body) = request.into_parts();
    let read = convert::read_body(body, &parts.headers, limit, Duration::from_secs(5));
    let body = RUNTIME.block_on(read)?;
    Ok(convert::guest_view(0, params, &parts, body, "fuzz"))
}

/// An operation's request, or why it has none.
pub type Operation = Result<Request<Full<Bytes>>, ApiError>;

/// A batch body as `POST /api/v1/batch` reads it: whether it is atomic,
/// and each operation's request.
pub fn batch(body: &[u8], max_operations: usize) -> Result<(bool, Vec<Operation>), ApiError> {
    let batch = crate::http::api::batch::parse(body, max_operations)?;
    let requests = batch
        .operations
        .into_iter()
        .enumerate()
        .map(|(index, op)| crate::http::api::batch::request(op, &format!("fuzz-{index}")))
        .collect();
    Ok((batch.atomic, requests))
}

/// A `?fields=` selection and the path to each of its nodes, as member
/// names.
pub type Fields = (Selection, Vec<Vec<String>>);

/// The `?fields=` selection of `query` (`None` without `fields`, an error
/// message for a malformed one).
pub fn fields(query: &str) -> Option<Result<Fields, String>> {
    Selection::from_query(Some(query)).map(|parsed| {
        parsed.map(|selection| {
            let paths = selection.paths();
            (selection, paths)
        })
    })
}
