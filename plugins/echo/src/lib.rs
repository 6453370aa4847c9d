//! Reflects the request back as JSON: method, path, params, query, headers
//! and body. Useful to see exactly what a plugin receives.

use serde_json::{Value, json};
use trellis_sdk::prelude::*;

fn app() -> App {
    App::new("echo", env!("CARGO_PKG_VERSION"))
        .capability("log")
        .route("GET", "/echo/{*rest}", echo)
        .route("POST", "/echo/{*rest}", echo)
        .route("PUT", "/echo/{*rest}", echo)
        .route("PATCH", "/echo/{*rest}", echo)
        .route("DELETE", "/echo/{*rest}", echo)
        .post("/echo-json", echo_json)
}

fn echo(req: Request) -> Result<Response> {
    trellis_sdk::log::debug("echo", &[("path", req.path())]);
    let body = match req.text() {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => Value::Array(req.body().iter().map(|b| json!(b)).collect()),
    };
    Response::json(&json!({
        "method": req.method(),
        "path": req.path(),
        "params": pairs(req.params()),
        "query": pairs(req.query_pairs()),
        "headers": pairs(req.headers()),
        "body": body,
        "request_id": req.request_id(),
    }))
}

/// Parses the body as JSON and returns it: a malformed body is a 400.
fn echo_json(req: Request) -> Result<Response> {
    let value: Value = req.json()?;
    Response::json(&value)
}

fn pairs(pairs: &[(String, String)]) -> Value {
    pairs.iter().map(|(k, v)| json!([k, v])).collect()
}
trellis_sdk::plugin!(app);
