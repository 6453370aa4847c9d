//! A plugin built against `trellis:plugin@0.1.0` (its WIT frozen in
//! `wit/`), with bindings of its own and no SDK, as a plugin compiled then
//! would be. `GET /v010/{name}` answers
//! `{"greeting": "<config greeting, or Hello>, <name>!"}` and logs the call
//! through the 0.1.0 `log` import.

wit_bindgen::generate!({
    world: "plugin",
    path: "wit",
});

use exports::trellis::plugin::http_handler::Guest as HttpHandler;
use exports::trellis::plugin::manifest::{Guest as Manifest, PluginManifest, Route};
use trellis::plugin::types::{Request, Response};
use trellis::plugin::{config, log};

struct Plugin;

impl Manifest for Plugin {
    fn describe() -> PluginManifest {
        PluginManifest {
            name: "hello-v010".into(),
            version: "0.1.0".into(),
            routes: vec![Route {
                method: "GET".into(),
                path: "/v010/{name}".into(),
                options: Vec::new(),
            }],
            capabilities: vec!["log".into(), "config".into()],
        }
    }
}

impl HttpHandler for Plugin {
    fn handle(req: Request) -> Response {
        let name = req
            .params
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
        log::log(
            log::Level::Info,
            "greeted",
            &[("name".to_string(), name.clone())],
        );
        let body = format!(
            "{{\"greeting\":\"{greeting}, {}!\"}}",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        );
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }
}

export!(Plugin);
