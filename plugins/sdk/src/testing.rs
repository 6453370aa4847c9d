//! Unit tests for handlers, without a server and without WebAssembly.
//!
//! A plugin crate's tests run natively (`cargo test --target <host triple>`;
//! a project made by `trellis new` has `cargo test-native` for it). Build a
//! request with [`TestRequest`] and either call a handler directly or
//! [`send`] it through the [`App`]'s routes the way the host would match it:
//!
//! ```
//! use trellis_sdk::prelude::*;
//! use trellis_sdk::testing::{TestRequest, send};
//!
//! fn app() -> App {
//!     App::new("hello", "0.1.0").get("/hello/{name}", hello)
//! }
//!
//! fn hello(req: Request) -> Result<Response> {
//!     let name: String = req.param("name")?;
//!     Ok(Response::text(format!("Hello, {name}!")))
//! }
//!
//! let res = send(&app(), TestRequest::get("/hello/you"));
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.body_text(), "Hello, you!");
//! assert_eq!(send(&app(), TestRequest::get("/nope")).status(), 404);
//! assert_eq!(send(&app(), TestRequest::post("/hello/you")).status(), 405);
//! ```
//!
//! Host capabilities (`sql`, `cache`, `jobs`, `lock`, `log`, `trace`,
//! `config`) exist only inside the runtime: a handler that calls one panics
//! here. Test those handlers over HTTP against `trellis serve` (or `trellis
//! dev`).

use serde::Serialize;

use crate::bindings::trellis::plugin::types::Request as RawRequest;
use crate::{App, Error, Request, Response};

/// A request for a unit test, built like the host builds one.
#[derive(Debug, Clone)]
pub struct TestRequest {
    raw: RawRequest,
}

impl TestRequest {
    /// A `method` request to `target`, a path with an optional query string
    /// (`/notes?limit=10`; the pairs are decoded as the host decodes them).
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        TestRequest {
            raw: RawRequest {
                route: 0,
                method: method.to_ascii_uppercase(),
                path: path.to_string(),
                params: Vec::new(),
                query: form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect(),
                headers: Vec::new(),
                body: Vec::new(),
                request_id: "test-request".to_string(),
            },
        }
    }

    /// A `GET` request.
    pub fn get(target: &str) -> Self {
        TestRequest::new("GET", target)
    }

    /// A `POST` request.
    pub fn post(target: &str) -> Self {
        TestRequest::new("POST", target)
    }

    /// A `PUT` request.
    pub fn put(target: &str) -> Self {
        TestRequest::new("PUT", target)
    }

    /// A `PATCH` request.
    pub fn patch(target: &str) -> Self {
        TestRequest::new("PATCH", target)
    }

    /// A `DELETE` request.
    pub fn delete(target: &str) -> Self {
        TestRequest::new("DELETE", target)
    }

    /// Adds a header (the name is lower-cased, as the host does).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.raw
            .headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets a path parameter, for a handler called directly ([`send`] fills
    /// them from the route pattern).
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.raw.params.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.raw.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    ///
    /// # Panics
    /// When `value` cannot be serialized (a map with non-string keys).
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("a test body serializes to JSON");
        self.header("content-type", "application/json").body(body)
    }

    /// Sets the request id (default `test-request`).
    pub fn request_id(mut self, id: &str) -> Self {
        self.raw.request_id = id.to_string();
        self
    }

    /// The request a handler receives.
    pub fn build(self) -> Request {
        Request::from_raw(self.raw)
    }
}

/// Matches `request` against the app's routes as the host does (method and
/// pattern; `{name}` is one segment, `{*name}` the rest of the path) and runs
/// the handler. No matching path is a 404, a path without the method a 405,
/// both problem+json like the host's; a handler's error becomes its
/// problem+json response.
pub fn send(app: &App, request: TestRequest) -> Response {
    let mut raw = request.raw;
    let mut path_matched = false;
    for (index, (method, pattern)) in app.route_patterns().enumerate() {
        let Some(params) = match_path(pattern, &raw.path) else {
            continue;
        };
        path_matched = true;
        if method == raw.method || (raw.method == "HEAD" && method == "GET") {
            raw.route = u32::try_from(index).unwrap_or(u32::MAX);
            raw.params = params;
            return Response::from_raw(crate::__rt::handle(app, raw));
        }
    }
    let error = if path_matched {
        Error::new(
            405,
            format!("{} is not allowed on {}", raw.method, raw.path),
        )
    } else {
        Error::not_found(format!("no route matches {}", raw.path))
    };
    error.into_response(&raw.request_id)
}

/// The parameters of `path` under `pattern`, in pattern order, or `None`.
fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    for want in pattern.trim_start_matches('/').split('/') {
        if let Some(name) = want.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
            let rest: Vec<&str> = segments.collect();
            params.push((name.to_string(), rest.join("/")));
            return Some(params);
        }
        let got = segments.next()?;
        match want.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !got.is_empty() => params.push((name.to_string(), got.to_string())),
            None if got == want => {}
            _ => return None,
        }
    }
    segments.next().is_none().then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn paths_match_like_the_host() {
        assert_eq!(match_path("/notes", "/notes"), pairs(&[]));
        assert_eq!(match_path("/notes/{id}", "/notes/7"), pairs(&[("id", "7")]));
        assert_eq!(
            match_path("/a/{x}/b/{y}", "/a/1/b/2"),
            pairs(&[("x", "1"), ("y", "2")])
        );
        assert_eq!(
            match_path("/files/{*rest}", "/files/a/b.txt"),
            pairs(&[("rest", "a/b.txt")])
        );
        assert_eq!(match_path("/notes/{id}", "/notes"), None);
        assert_eq!(match_path("/notes/{id}", "/notes/"), None);
        assert_eq!(match_path("/notes/{id}", "/notes/7/x"), None);
        assert_eq!(match_path("/notes", "/notes/7"), None);
        assert_eq!(match_path("/notes", "/other"), None);
    }
}
