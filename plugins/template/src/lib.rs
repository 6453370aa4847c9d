//! The `template` plugin: a starting point made by `trellis new`. It
//! serves three routes under `/template`; change them, add capabilities
//! (`.capability("sql")` and friends) and rebuild.
//!
//! Build: `cargo build --release` (the target, wasm32-wasip2, is set in
//! `.cargo/config.toml`). Serve: `trellis serve --config trellis.toml`.

use serde::{Deserialize, Serialize};
use trellis_sdk::prelude::*;

fn app() -> App {
    App::new("template", env!("CARGO_PKG_VERSION"))
        .get("/template", index)
        .get("/template/hello/{name}", hello)
        .post("/template/echo", echo)
        .request_schema(serde_json::json!({
            "type": "object",
            "required": ["text"],
            "properties": {"text": {"type": "string", "minLength": 1}},
        }))
}

/// `GET /template`: what this plugin serves.
fn index(_req: Request) -> Result<Response> {
    Response::json(&serde_json::json!({
        "plugin": "template",
        "routes": ["GET /template/hello/{name}", "POST /template/echo"],
    }))
}

/// `GET /template/hello/{name}`: a greeting.
fn hello(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    Response::json(&serde_json::json!({ "greeting": format!("Hello, {name}!") }))
}

/// What `POST /template/echo` takes and gives back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    text: String,
}

/// `POST /template/echo` with `{"text": "…"}`: the same back. Malformed
/// JSON is a 400 that says what is wrong; an empty text a 422.
fn echo(req: Request) -> Result<Response> {
    let message: Message = req.json()?;
    if message.text.is_empty() {
        return Err(Error::unprocessable("text must not be empty"));
    }
    Response::json(&message)
}

trellis_sdk::plugin!(app);
