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
        .request_schema(|| {
            serde_json::json!({
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1}},
            })
        })
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

// Handlers run natively in unit tests, without a server: `cargo test-native`
// in a project made by `trellis new` (an alias for `cargo test --target
// <this machine>`).
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use trellis_sdk::testing::{TestRequest, send};

    #[test]
    fn hello_greets_by_name() {
        let res = send(&app(), TestRequest::get("/template/hello/you"));
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.body_json::<Value>().unwrap(),
            json!({"greeting": "Hello, you!"})
        );
    }

    #[test]
    fn echo_returns_the_message_and_names_a_bad_field() {
        let ok = send(
            &app(),
            TestRequest::post("/template/echo").json(&json!({"text": "hi"})),
        );
        assert_eq!(ok.body_json::<Value>().unwrap(), json!({"text": "hi"}));

        let bad = send(
            &app(),
            TestRequest::post("/template/echo").json(&json!({"text": 7})),
        );
        assert_eq!(bad.status(), 400);
        let problem: Value = bad.body_json().unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("`text`"),
            "{problem}"
        );

        let empty = send(
            &app(),
            TestRequest::post("/template/echo").json(&json!({"text": ""})),
        );
        assert_eq!(empty.status(), 422);
    }
}
