//! Method + path pattern → plugin route, built from the loaded plugins'
//! manifests. Layer: below `http`, above `plugin`.
//!
//! Paths are matched by `matchit` (a radix tree: no regex, no allocation per
//! lookup beyond the params). Two plugins claiming the same method and path,
//! or patterns that overlap ambiguously, are a load error naming both.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plugin::{ANY_METHOD, LoadedPlugin};

pub use crate::config::paths::{RESERVED, below, is_reserved};

/// Where a matched request goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The plugin.
    pub plugin: Arc<LoadedPlugin>,
    /// Index of the route in the plugin's manifest.
    pub route: u32,
}

impl Target {
    /// The path pattern of the route, as the manifest declares it.
    pub fn pattern(&self) -> &str {
        self.plugin
            .manifest()
            .routes
            .get(self.route as usize)
            .map_or("", |r| r.path.as_str())
    }
}

/// The routing table of one set of plugin versions. Immutable; a reload
/// builds a new one and swaps it in.
#[derive(Debug, Default)]
pub struct Router {
    table: Table<Target>,
}

/// Path patterns and, per pattern, a value by method: the routing table,
/// or (with plugin names as values) a dry run that only finds conflicts.
#[derive(Debug)]
pub(crate) struct Table<V> {
    paths: matchit::Router<usize>,
    /// Per path pattern: the pattern and its values by method.
    entries: Vec<(String, BTreeMap<String, V>)>,
    by_pattern: BTreeMap<String, usize>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            paths: matchit::Router::new(),
            entries: Vec::new(),
            by_pattern: BTreeMap::new(),
        }
    }
}

/// The plugin a table value belongs to, for conflict messages.
pub(crate) trait Owner {
    fn owner(&self) -> &str;
}

impl Owner for Target {
    fn owner(&self) -> &str {
        self.plugin.name()
    }
}

impl Owner for String {
    fn owner(&self) -> &str {
        self
    }
}

/// The outcome of a lookup (in the routing table, `V` is a [`Target`]).
#[derive(Debug)]
pub enum Lookup<'a, V = Target> {
    /// A route matched.
    Found {
        /// Where to send the request.
        target: &'a V,
        /// `{param}` values in pattern order.
        params: Vec<(String, String)>,
    },
    /// The path exists with other methods (the `Allow` header value).
    MethodNotAllowed(String),
    /// No pattern matches the path.
    NotFound,
}

/// Two routes that cannot both be served.
#[derive(Debug, thiserror::Error)]
#[error("route conflict: {first} and {second}")]
pub struct RouteConflict {
    /// One route, as `METHOD /pattern (plugin p)`.
    pub first: String,
    /// The other, or the reason the pattern is invalid.
    pub second: String,
}

impl<V: Owner> Table<V> {
    /// Adds `method` `path` of `plugin`, or says what it conflicts with.
    pub(crate) fn add(
        &mut self,
        method: &str,
        path: &str,
        plugin: &str,
        value: V,
    ) -> Result<(), RouteConflict> {
        if is_reserved(path) {
            return Err(RouteConflict {
                first: describe(method, path, plugin),
                second: format!(
                    "a path the runtime serves itself (reserved: {})",
                    RESERVED.join(", ")
                ),
            });
        }
        let entry = match self.by_pattern.get(path) {
            Some(&entry) => entry,
            None => {
                let entry = self.entries.len();
                self.insert_path(path, entry, plugin)?;
                self.entries.push((path.to_string(), BTreeMap::new()));
                self.by_pattern.insert(path.to_string(), entry);
                entry
            }
        };
        let methods = &mut self.entries[entry].1;
        if let Some(existing) = methods.get(method) {
            return Err(RouteConflict {
                first: describe(method, path, existing.owner()),
                second: describe(method, path, plugin),
            });
        }
        methods.insert(method.to_string(), value);
        Ok(())
    }

    fn insert_path(&mut self, path: &str, entry: usize, plugin: &str) -> Result<(), RouteConflict> {
        if let Some(problem) = pattern_problem(path) {
            return Err(RouteConflict {
                first: format!("{path} (plugin {plugin})"),
                second: format!("the pattern is invalid: {problem}"),
            });
        }
        self.paths.insert(path, entry).map_err(|err| {
            let second = match &err {
                matchit::InsertError::Conflict { with } => {
                    let owner = self
                        .entries
                        .iter()
                        .find(|(pattern, _)| pattern == with)
                        .and_then(|(_, methods)| methods.values().next())
                        .map(|v| v.owner().to_string())
                        .unwrap_or_default();
                    format!("{with} (plugin {owner}) overlap ambiguously")
                }
                other => format!("the pattern is invalid: {other}"),
            };
            RouteConflict {
                first: format!("{path} (plugin {plugin})"),
                second,
            }
        })
    }
}

impl<V> Table<V> {
    /// The value of `method` `path`. `HEAD` falls back to `GET`, and any
    /// method to [`ANY_METHOD`].
    pub(crate) fn lookup(&self, method: &str, path: &str) -> Lookup<'_, V> {
        let Ok(matched) = self.paths.at(path) else {
            return Lookup::NotFound;
        };
        let methods = &self.entries[*matched.value].1;
        let target = methods
            .get(method)
            .or_else(|| (method == "HEAD").then(|| methods.get("GET")).flatten())
            .or_else(|| methods.get(ANY_METHOD));
        match target {
            Some(target) => Lookup::Found {
                target,
                params: matched
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            None => Lookup::MethodNotAllowed(allow(methods)),
        }
    }
}

impl Router {
    /// Builds the table from every route of every plugin.
    pub fn build(plugins: &[Arc<LoadedPlugin>]) -> Result<Router, RouteConflict> {
        let mut table = Table::default();
        for plugin in plugins {
            for (index, route) in plugin.manifest().routes.iter().enumerate() {
                let target = Target {
                    plugin: plugin.clone(),
                    route: index as u32,
                };
                table.add(&route.method, &route.path, plugin.name(), target)?;
            }
        }
        Ok(Router { table })
    }

    /// Whether `routes` of plugin `name` could be served beside `others`
    /// (a version of `name` among them is the one being replaced).
    pub fn check(
        others: &[Arc<LoadedPlugin>],
        name: &str,
        routes: &[crate::plugin::Route],
    ) -> Result<(), RouteConflict> {
        let mut table = Table::default();
        let others = others.iter().filter(|p| p.name() != name);
        for plugin in others {
            for route in &plugin.manifest().routes {
                table.add(
                    &route.method,
                    &route.path,
                    plugin.name(),
                    plugin.name().to_string(),
                )?;
            }
        }
        for route in routes {
            table.add(&route.method, &route.path, name, name.to_string())?;
        }
        Ok(())
    }

    /// Finds the target of `method` `path`. `HEAD` falls back to `GET`.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        self.table.lookup(method, path)
    }

    /// The plugins with at least one route, by name.
    pub fn plugins(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<String> =
            self.routes().map(|(_, _, p)| p.to_string()).collect();
        names.into_iter().collect()
    }

    /// Every route: (method, pattern, target).
    pub fn targets(&self) -> impl Iterator<Item = (&str, &str, &Target)> {
        self.table.entries.iter().flat_map(|(pattern, methods)| {
            methods
                .iter()
                .map(move |(m, t)| (m.as_str(), pattern.as_str(), t))
        })
    }

    /// Every route: (method, pattern, plugin).
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.table.entries.iter().flat_map(|(pattern, methods)| {
            methods
                .iter()
                .map(move |(m, t)| (m.as_str(), pattern.as_str(), t.plugin.name()))
        })
    }
}

/// Most `{name}` parameters (catch-alls aside) one pattern may have:
/// matchit names them `a` to `z` while inserting and panics at the 26th.
const MAX_PARAMS: usize = 25;

/// What is wrong with `pattern` that matchit would not refuse (or would
/// panic on), if anything:
///
/// - a parameter that is not a whole segment. The WIT says `{name}`
///   matches one segment, `{*name}` the rest; matchit also takes one beside
///   static text (`/{name}.json`, `/v{n}`), and then misses routes: with
///   `/a/{x}0/c` beside `/a/{x}/b`, `/a/v0/b` was not found (the suffix
///   `0` is tried, and the other route never is);
/// - more than [`MAX_PARAMS`] parameters.
fn pattern_problem(pattern: &str) -> Option<String> {
    // The bytes with `{{` and `}}` read as literal braces, left to right,
    // as matchit reads them: (byte, is an unescaped brace).
    let mut bytes = Vec::with_capacity(pattern.len());
    let mut rest = pattern.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        let escaped = matches!(b, b'{' | b'}') && after.first() == Some(&b);
        bytes.push((b, matches!(b, b'{' | b'}') && !escaped));
        rest = if escaped { &after[1..] } else { after };
    }
    let mut params = 0;
    for segment in bytes.split(|&(b, _)| b == b'/') {
        let braces = segment.iter().filter(|(_, brace)| *brace).count();
        if braces == 0 {
            continue;
        }
        let whole = braces == 2
            && segment.first() == Some(&(b'{', true))
            && segment.last() == Some(&(b'}', true));
        if !whole {
            return Some(
                "`{name}` and `{*name}` stand for whole segments, with no other text in theirs"
                    .into(),
            );
        }
        if segment.get(1) != Some(&(b'*', false)) {
            params += 1;
        }
    }
    (params > MAX_PARAMS).then(|| format!("more than {MAX_PARAMS} parameters"))
}

fn describe(method: &str, path: &str, plugin: &str) -> String {
    format!("{method} {path} (plugin {plugin})")
}

fn allow<V>(methods: &BTreeMap<String, V>) -> String {
    let mut allowed: Vec<&str> = methods
        .keys()
        .map(String::as_str)
        .filter(|m| *m != ANY_METHOD)
        .collect();
    if methods.contains_key("GET") && !methods.contains_key("HEAD") {
        allowed.push("HEAD");
    }
    allowed.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> (Table<String>, Vec<Result<(), RouteConflict>>) {
        let mut table = Table::default();
        let added = routes
            .iter()
            .enumerate()
            .map(|(i, (method, path))| table.add(method, path, &format!("p{i}"), format!("p{i}")))
            .collect();
        (table, added)
    }

    /// Found by the `routes` fuzz target: beside `/a/{x}0/c`, a request
    /// for `/a/v0/b` missed `/a/{x}/b` (matchit's parameter suffixes).
    #[test]
    fn a_parameter_is_a_whole_segment() {
        let (table, added) = table(&[("GET", "/a/{x}/b"), ("POST", "/a/{x}0/c")]);
        assert!(added[0].is_ok());
        assert!(added[1].is_err(), "a parameter with a suffix was taken");
        match table.lookup("GET", "/a/v0/b") {
            Lookup::Found { target, params } => {
                assert_eq!(target, "p0");
                assert_eq!(params, [("x".to_string(), "v0".to_string())]);
            }
            other => panic!("/a/v0/b: {other:?}"),
        }
        for pattern in ["/{name}.json", "/v{n}", "/a/{x}:", "/a/{x}-{y}", "/a{E}/b"] {
            assert!(pattern_problem(pattern).is_some(), "{pattern}");
        }
        for pattern in [
            "/",
            "/a/{x}",
            "/f/{*rest}",
            "/{a}/{b}/c",
            "/lit/{{x}}",
            "/{x}}}",
        ] {
            assert_eq!(pattern_problem(pattern), None, "{pattern}");
        }
    }

    /// Found by the `routes` fuzz target: matchit panicked ("Too many route
    /// parameters") inserting a pattern with 26 of them.
    #[test]
    fn too_many_parameters_are_refused_not_a_panic() {
        let pattern = |n: usize| -> String { (0..n).map(|i| format!("/{{p{i}}}")).collect() };
        let catch_all = format!("{}/{{*rest}}", pattern(MAX_PARAMS));
        let (table, added) = table(&[
            ("GET", &pattern(MAX_PARAMS)),
            ("POST", &pattern(MAX_PARAMS + 1)),
            ("PUT", &catch_all),
        ]);
        assert!(added[0].is_ok());
        assert!(added[1].is_err(), "26 parameters taken");
        assert!(added[2].is_ok(), "a catch-all is not one of the 25");
        let path: String = (0..MAX_PARAMS).map(|i| format!("/v{i}")).collect();
        assert!(matches!(table.lookup("GET", &path), Lookup::Found { .. }));
    }
}
