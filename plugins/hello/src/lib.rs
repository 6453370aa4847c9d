//! The smallest useful plugin: a greeting, configurable by the operator.

use trellis_sdk::prelude::*;

fn app() -> App {
    App::new("hello", env!("CARGO_PKG_VERSION"))
        .capability("config")
        .get("/hello", hello)
        .get("/hello/{name}", greet)
}

fn hello(_req: Request) -> Result<Response> {
    Ok(Response::text(format!("{}, world!", greeting())))
}

fn greet(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    Response::json(&serde_json::json!({ "greeting": format!("{}, {name}!", greeting()) }))
}

fn greeting() -> String {
    trellis_sdk::config::get("greeting").unwrap_or_else(|| "Hello".to_string())
}

trellis_sdk::plugin!(app);
