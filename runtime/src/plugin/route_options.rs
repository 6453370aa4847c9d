//! What a route declares in its manifest options, read once at load.
//!
//! - Response caching: `cache-ttl` (a duration, e.g. `30s` or `30000ms`),
//!   `cache-vary` (request headers that select a variant, comma-separated)
//!   and `cache-tags` (tags, comma-separated; `{param}` takes the value of
//!   the route's path parameter). Only `GET` routes may declare them. The
//!   serving side is `http::response_cache`.
//! - Field selection: `fields` = `strict` (default: an unknown field in
//!   `?fields=` is a 400) or `lenient` (unknown fields are skipped). The
//!   serving side is `http::fields`.
//! - Batching: `batch` = `true` (the batch endpoint hands a batch's
//!   operations on this route to the plugin's `batch-handler` in one call)
//!   or `false` (default). The serving side is `http::api::batch`.
//! - Schemas: `request-schema` (of a JSON request body) and
//!   `response-schema` (of a 2xx JSON response), each a JSON Schema as JSON
//!   text, at most 64 KiB. The host does not validate against them; it
//!   publishes them in `/api/v1/openapi.json` (`http::openapi`).

use std::time::Duration;

use http::HeaderName;

/// Route options this module reads.
pub const OPTIONS: &[&str] = &[
    "cache-ttl",
    "cache-vary",
    "cache-tags",
    "fields",
    "batch",
    "request-schema",
    "response-schema",
];

/// Largest schema a route may attach.
const MAX_SCHEMA: usize = 64 * 1024;

/// Everything a route declares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteOptions {
    /// Response caching, when declared.
    pub cache: Option<RouteCache>,
    /// Skip unknown fields in `?fields=` instead of refusing them.
    pub lenient_fields: bool,
    /// Whether the batch endpoint groups this route's operations into one
    /// `batch-handler` call.
    pub batch: bool,
    /// JSON Schema of the request body, when declared.
    pub request_schema: Option<serde_json::Value>,
    /// JSON Schema of a 2xx response body, when declared.
    pub response_schema: Option<serde_json::Value>,
}

impl RouteOptions {
    /// The options of a route; an error names the bad option.
    pub fn parse(
        method: &str,
        path: &str,
        options: &[(String, String)],
    ) -> Result<RouteOptions, String> {
        if let Some((key, _)) = options.iter().find(|(k, _)| !OPTIONS.contains(&k.as_str())) {
            return Err(format!(
                "route {method} {path} has unknown option `{key}`; known: {}",
                OPTIONS.join(", ")
            ));
        }
        let cache: Vec<(String, String)> = options
            .iter()
            .filter(|(k, _)| k.starts_with("cache-"))
            .cloned()
            .collect();
        // An option with two values, `off` (the default) and `on`.
        let switch = |key: &str, off: &str, on: &str| -> Result<bool, String> {
            match options.iter().find(|(k, _)| k == key) {
                None => Ok(false),
                Some((_, v)) if v == off => Ok(false),
                Some((_, v)) if v == on => Ok(true),
                Some((_, v)) => Err(format!(
                    "route {method} {path}: `{key}` is `{off}` or `{on}`, not `{v}`"
                )),
            }
        };
        let lenient_fields = switch("fields", "strict", "lenient")?;
        let schema = |key: &str| -> Result<Option<serde_json::Value>, String> {
            let Some((_, text)) = options.iter().find(|(k, _)| k == key) else {
                return Ok(None);
            };
            if text.len() > MAX_SCHEMA {
                return Err(format!(
                    "route {method} {path}: `{key}` is over {MAX_SCHEMA} bytes"
                ));
            }
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) if value.is_object() || value.is_boolean() => Ok(Some(value)),
                Ok(_) => Err(format!(
                    "route {method} {path}: `{key}` is not a JSON Schema (an object or a boolean)"
                )),
                Err(err) => Err(format!("route {method} {path}: `{key}` is not JSON: {err}")),
            }
        };
        let batch = switch("batch", "false", "true")?;
        Ok(RouteOptions {
            cache: RouteCache::from_options(method, path, &cache)?,
            lenient_fields,
            batch,
            request_schema: schema("request-schema")?,
            response_schema: schema("response-schema")?,
        })
    }
}

/// Most tags a route may declare.
const MAX_TAGS: usize = 16;

/// How one route's responses are cached.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
    /// How long a response is served from the cache.
    pub ttl: Duration,
    /// Request headers whose values select the variant.
    pub vary: Vec<HeaderName>,
    /// Tag templates.
    pub tags: Vec<String>,
}

impl RouteCache {
    /// The policy of a route with `options` (its `cache-*` ones), `None`
    /// when it declares none; an error names the bad option.
    fn from_options(
        method: &str,
        path: &str,
        options: &[(String, String)],
    ) -> Result<Option<RouteCache>, String> {
        let get = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let Some(ttl) = get("cache-ttl") else {
            return match options.first() {
                Some((key, _)) => Err(format!(
                    "route {method} {path} sets `{key}` without `cache-ttl`"
                )),
                None => Ok(None),
            };
        };
        if method != "GET" {
            return Err(format!(
                "route {method} {path} declares response caching; only GET routes may"
            ));
        }
        let ttl = humantime::parse_duration(ttl.trim())
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                format!("route {method} {path}: `cache-ttl` = `{ttl}` is not a duration above 0")
            })?;
        let list = |name: &str| -> Vec<String> {
            get(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let vary = list("cache-vary")
            .into_iter()
            .map(|h| {
                HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    format!("route {method} {path}: `cache-vary` names `{h}`, not a header")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tags = list("cache-tags");
        if tags.len() > MAX_TAGS {
            return Err(format!(
                "route {method} {path}: at most {MAX_TAGS} `cache-tags`"
            ));
        }
        Ok(Some(RouteCache { ttl, vary, tags }))
    }

    /// The tags of one response: templates filled from the path parameters.
    pub fn tags_for(&self, params: &[(String, String)]) -> Vec<String> {
        self.tags
            .iter()
            .map(|template| {
                params.iter().fold(template.clone(), |tag, (name, value)| {
                    tag.replace(&format!("{{{name}}}"), value)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn route_options_parse_or_name_what_is_wrong() {
        let policy = RouteCache::from_options(
            "GET",
            "/notes/{id}",
            &options(&[
                ("cache-ttl", "30000ms"),
                ("cache-vary", "Accept-Language, x-tenant"),
                ("cache-tags", "notes,note:{id}"),
            ]),
        )
        .expect("valid")
        .expect("cached");
        assert_eq!(policy.ttl, Duration::from_secs(30));
        assert_eq!(policy.vary, ["accept-language", "x-tenant"]);
        assert_eq!(
            policy.tags_for(&[("id".into(), "7".into())]),
            ["notes", "note:7"]
        );
        assert_eq!(RouteCache::from_options("GET", "/", &[]), Ok(None));
        let err = |pairs: &[(&str, &str)], method: &str| {
            RouteCache::from_options(method, "/x", &options(pairs)).expect_err("refused")
        };
        assert!(err(&[("cache-ttl", "1s")], "POST").contains("only GET"));
        assert!(err(&[("cache-ttl", "soon")], "GET").contains("not a duration"));
        assert!(err(&[("cache-tags", "a")], "GET").contains("without `cache-ttl`"));
        let parse = |pairs: &[(&str, &str)]| RouteOptions::parse("GET", "/x", &options(pairs));
        assert!(
            parse(&[("retries", "3")])
                .expect_err("unknown")
                .contains("unknown option `retries`")
        );
        assert_eq!(
            parse(&[("fields", "lenient")]).map(|o| o.lenient_fields),
            Ok(true)
        );
        assert!(parse(&[("fields", "loose")]).is_err());
        assert_eq!(
            parse(&[("fields", "strict"), ("cache-ttl", "1s")]).map(|o| o.cache.is_some()),
            Ok(true)
        );
        assert!(
            err(&[("cache-ttl", "1s"), ("cache-vary", "bad header")], "GET")
                .contains("not a header")
        );
        let schema = parse(&[("response-schema", r#"{"type": "object"}"#)]).expect("valid");
        assert_eq!(
            schema.response_schema,
            Some(serde_json::json!({"type": "object"}))
        );
        assert!(
            parse(&[("request-schema", "{not json")])
                .expect_err("not JSON")
                .contains("`request-schema` is not JSON")
        );
        assert!(
            parse(&[("request-schema", "42")])
                .expect_err("not a schema")
                .contains("not a JSON Schema")
        );
    }
}
