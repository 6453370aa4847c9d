//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`) of what this node
//! serves now: every plugin route (tagged by plugin, its path parameters,
//! the conventions every route gets: `fields`, problem+json errors, and for
//! cacheable routes the ETag/304 behaviour) and the runtime's own endpoints
//! (admin ones marked with the bearer scheme). Built from the routing
//! table on each request, so it follows reloads; `http::api` serves it.
//! Layer: inside `http`, above `router`.

use serde_json::{Map, Value, json};

use super::api::{batch, openapi::PATH};
use crate::router::{Router, Target};

/// The document for `router`.
pub fn document(router: &Router) -> Value {
    let mut paths = Map::new();
    // A mount's any-method route has no OpenAPI operation: its usual
    // methods are listed by name.
    let named = router
        .targets()
        .filter(|(method, ..)| *method != crate::plugin::ANY_METHOD);
    for (method, pattern, target) in named {
        let (path, operation) = plugin_operation(method, pattern, target);
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[method.to_ascii_lowercase()] = operation;
    }
    for (path, method, summary, admin) in BUILTIN {
        let (path, operation) = builtin_operation(path, method, summary, *admin);
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Trellis",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Plugin routes and the runtime's own endpoints on this node.",
        },
        "paths": paths,
        "components": components(),
    })
}

/// A plugin route's operation, under its OpenAPI path.
fn plugin_operation(method: &str, pattern: &str, target: &Target) -> (String, Value) {
    let (path, params) = openapi_path(pattern);
    let plugin = target.plugin.name();
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    parameters.push(json!({"$ref": "#/components/parameters/fields"}));
    let mut responses = Map::new();
    responses.insert(
        "default".into(),
        json!({"description": "The plugin's response", "content": {"*/*": {}}}),
    );
    responses.insert(
        "4XX".into(),
        json!({"$ref": "#/components/responses/Problem"}),
    );
    responses.insert(
        "5XX".into(),
        json!({"$ref": "#/components/responses/Problem"}),
    );
    let mut operation = json!({
        "operationId": operation_id(plugin, method, pattern),
        "tags": [plugin],
        "parameters": parameters,
        "responses": responses,
    });
    if let Some((policy, _)) = target.plugin.response_cache(target.route) {
        operation["description"] = json!(format!(
            "Cached by the runtime for {}: answers carry an ETag, a matching If-None-Match \
             gets 304, Cache-Control: no-cache refreshes.",
            humantime::format_duration(policy.ttl)
        ));
        operation["responses"]["304"] = json!({"description": "Not modified"});
    }
    let (request_schema, response_schema) = target.plugin.schemas(target.route);
    if let Some(schema) = response_schema {
        operation["responses"]["2XX"] = json!({
            "description": "The plugin's response",
            "content": {"application/json": {"schema": schema}},
        });
    }
    match request_schema {
        Some(schema) => {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        None if matches!(method, "POST" | "PUT" | "PATCH") => {
            operation["requestBody"] = json!({"content": {"*/*": {}}});
        }
        None => {}
    }
    (path, operation)
}

/// One of the runtime's own operations, under its OpenAPI path.
fn builtin_operation(path: &str, method: &str, summary: &str, admin: bool) -> (String, Value) {
    let mut operation = json!({
        "operationId": operation_id("trellis", method, path),
        "tags": ["trellis"],
        "summary": summary,
        "responses": {
            "default": {"description": summary, "content": {"*/*": {}}},
            "4XX": {"$ref": "#/components/responses/Problem"},
            "5XX": {"$ref": "#/components/responses/Problem"},
        },
    });
    if admin {
        operation["security"] = json!([{"bearer": []}]);
    }
    match method {
        "POST" if path == batch::PATH => {
            operation["requestBody"] = json!({"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}
            }});
        }
        "POST" => operation["requestBody"] = json!({"content": {"application/json": {}}}),
        "PUT" => {
            operation["requestBody"] = json!({"required": true, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }});
        }
        _ => {}
    }
    let (path, params) = openapi_path(path);
    if !params.is_empty() {
        operation["parameters"] = params
            .iter()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
    }
    (path, operation)
}

/// The shared parameters, responses, schemas and security scheme.
fn components() -> Value {
    json!({
        "parameters": {
            "fields": {
                "name": "fields", "in": "query", "required": false,
                "description": "Keep only these members of a JSON response: comma-separated dotted paths.",
                "schema": {"type": "string"},
            },
        },
        "responses": {
            "Problem": {
                "description": "An error (RFC 9457) carrying the request id",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            },
        },
        "schemas": {
            "Batch": {
                "type": "object",
                "required": ["operations"],
                "additionalProperties": false,
                "properties": {
                    "atomic": {
                        "type": "boolean",
                        "description": "Run every operation against one plugin in one database transaction: all commit or none does.",
                    },
                    "operations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["method", "path"],
                            "additionalProperties": false,
                            "properties": {
                                "id": {"type": "string"},
                                "method": {"type": "string"},
                                "path": {"type": "string"},
                                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                                "body": {},
                            },
                        },
                    },
                },
            },
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail", "code", "request_id"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"},
                    "code": {"type": "string"}, "request_id": {"type": "string"},
                },
            },
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    })
}

/// The runtime's own endpoints: path, method, summary, admin-only.
const BUILTIN: &[(&str, &str, &str, bool)] = &[
    ("/healthz", "GET", "Liveness", false),
    (
        "/readyz",
        "GET",
        "Readiness (503 while draining or without a database)",
        false,
    ),
    ("/metrics", "GET", "Prometheus metrics", false),
    (PATH, "GET", "This document", false),
    ("/api/v1/batch", "POST", "Many requests in one", false),
    (
        "/api/v1/monitoring/health",
        "GET",
        "Dependencies and their round trips",
        false,
    ),
    (
        "/api/v1/monitoring/metrics",
        "GET",
        "Per-route summary over sliding windows",
        true,
    ),
    ("/api/v1/monitoring/traces", "GET", "Recent traces", true),
    (
        "/api/v1/monitoring/errors",
        "GET",
        "Error groups, a page at a time",
        true,
    ),
    ("/api/v1/monitoring/alerts", "GET", "Alerts and rules", true),
    (
        "/api/v1/monitoring/silences",
        "GET",
        "Silences in force",
        true,
    ),
    ("/api/v1/monitoring/silences", "POST", "A new silence", true),
    (
        "/api/v1/jobs",
        "POST",
        "Enqueue a job (202 + Location)",
        true,
    ),
    (
        "/api/v1/jobs",
        "GET",
        "Jobs by state, kind, plugin, queue; a page at a time",
        true,
    ),
    (
        "/api/v1/jobs/{id}",
        "GET",
        "One job: state, attempts, errors, result",
        true,
    ),
    (
        "/api/v1/jobs/{id}/cancel",
        "POST",
        "Cancel a waiting or running job",
        true,
    ),
    (
        "/api/v1/jobs/{id}/retry",
        "POST",
        "Run a discarded or cancelled job again",
        true,
    ),
    (
        "/admin/plugins",
        "GET",
        "Plugins: version, hash, routes, state, what each node serves",
        true,
    ),
    ("/admin/plugins/{name}", "GET", "One plugin", true),
    (
        "/admin/plugins/{name}",
        "PUT",
        "Upload a version (the body is the component; `?grants=` when unconfigured)",
        true,
    ),
    (
        "/admin/plugins/{name}",
        "DELETE",
        "Take a plugin down on every node",
        true,
    ),
    (
        "/admin/plugins/{name}/reload",
        "POST",
        "Load a plugin again from its file or stored upload",
        true,
    ),
    (
        "/admin/plugins/{name}/rollback",
        "POST",
        "Return to the version live before the last change",
        true,
    ),
];

/// `/a/{id}/{*rest}` → (`/a/{id}/{rest}`, [id, rest]).
fn openapi_path(pattern: &str) -> (String, Vec<String>) {
    let mut params = Vec::new();
    let path = pattern
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let name = name.trim_start_matches('*');
                    params.push(name.to_string());
                    format!("{{{name}}}")
                }
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/");
    (path, params)
}

fn operation_id(scope: &str, method: &str, path: &str) -> String {
    let mut id = format!("{scope}_{}", method.to_ascii_lowercase());
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_all_segments_become_plain_path_parameters() {
        assert_eq!(
            openapi_path("/echo/{*rest}"),
            ("/echo/{rest}".to_string(), vec!["rest".to_string()])
        );
        assert_eq!(
            openapi_path("/notes/{id}"),
            ("/notes/{id}".to_string(), vec!["id".to_string()])
        );
        assert_eq!(
            operation_id("notes", "GET", "/notes/{id}"),
            "notes_get_notes__id_"
        );
    }
}
