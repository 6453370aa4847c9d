//! A second version of `hello`, for the hot-reload tests: the same routes,
//! answers that name their version (body and `x-hello-version` header, so a
//! test can tell a response came from one whole version), and a migration.
//! With the setting `migration = "broken"` its second migration is invalid
//! SQL, so the version is refused.

use trellis_sdk::Migration;
use trellis_sdk::prelude::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn app() -> App {
    let broken = trellis_sdk::config::get("migration").as_deref() == Some("broken");
    let app = App::new("hello", VERSION)
        .capability("config")
        .get("/hello", hello)
        .get("/hello/{name}", greet)
        .migration(Migration {
            id: 1,
            name: "greetings",
            sqlite: "CREATE TABLE IF NOT EXISTS greetings (name TEXT PRIMARY KEY)",
            postgres: "CREATE TABLE IF NOT EXISTS greetings (name TEXT PRIMARY KEY)",
        });
    if broken {
        app.migration(Migration {
            id: 2,
            name: "broken",
            sqlite: "CREATE TABLE greetings (",
            postgres: "CREATE TABLE greetings (",
        })
    } else {
        app
    }
}

fn hello(_req: Request) -> Result<Response> {
    Ok(Response::text(format!("Hello, world! ({VERSION})")).header("x-hello-version", VERSION))
}

fn greet(req: Request) -> Result<Response> {
    let name: String = req.param("name")?;
    Response::json(
        &serde_json::json!({ "greeting": format!("Hello, {name}!"), "version": VERSION }),
    )
    .map(|r| r.header("x-hello-version", VERSION))
}

trellis_sdk::plugin!(app);
