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

/// Matches `request` against the app's routes as the host does: the same
/// router (matchit: a static segment wins over `{name}`, which wins over
/// `{*name}`, whatever the declaration order), `HEAD` answered by a `GET`
/// route, and the parameters percent-decoded. Then runs the handler. No
/// matching path is a 404, a path without the method a 405, both
/// problem+json like the host's; a handler's error becomes its
/// problem+json response.
pub fn send(app: &App, request: TestRequest) -> Response {
    let mut raw = request.raw;
    match route(app, &raw.method, &raw.path) {
        Routed::Found(index, params) => {
            raw.route = index;
            raw.params = params;
            Response::from_raw(crate::__rt::handle(app, raw))
        }
        Routed::NotAllowed => Error::new(
            405,
            format!("{} is not allowed on {}", raw.method, raw.path),
        )
        .into_response(&raw.request_id),
        Routed::NotFound => Error::not_found(format!("no route matches {}", raw.path))
            .into_response(&raw.request_id),
        Routed::BadParam(name) => Error::bad_request(format!(
            "path parameter `{name}` is not UTF-8 once percent-decoded"
        ))
        .into_response(&raw.request_id),
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq)]
enum Routed {
    /// The route's index and its decoded parameters, in pattern order.
    Found(u32, Vec<(String, String)>),
    NotAllowed,
    NotFound,
    /// A parameter that is not UTF-8 once decoded (the host's 400).
    BadParam(String),
}

/// Routes `method` `path` through a matchit tree of the app's patterns, as
/// the host's router does.
fn route(app: &App, method: &str, path: &str) -> Routed {
    let mut patterns: Vec<(&str, Vec<(&str, u32)>)> = Vec::new();
    for (index, (route_method, pattern)) in app.route_patterns().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        match patterns.iter_mut().find(|(p, _)| *p == pattern) {
            Some((_, methods)) => methods.push((route_method, index)),
            None => patterns.push((pattern, vec![(route_method, index)])),
        }
    }
    let mut router = matchit::Router::new();
    for (at, (pattern, _)) in patterns.iter().enumerate() {
        // A pattern the host would refuse makes the plugin fail to load;
        // here it simply matches nothing.
        let _ = router.insert(*pattern, at);
    }
    let Ok(matched) = router.at(path) else {
        return Routed::NotFound;
    };
    let methods = &patterns[*matched.value].1;
    let found = methods.iter().find(|(m, _)| *m == method).or_else(|| {
        (method == "HEAD")
            .then(|| methods.iter().find(|(m, _)| *m == "GET"))
            .flatten()
    });
    let Some((_, index)) = found else {
        return Routed::NotAllowed;
    };
    let mut params = Vec::new();
    for (name, raw) in matched.params.iter() {
        match percent_encoding::percent_decode_str(raw).decode_utf8() {
            Ok(value) => params.push((name.to_string(), value.into_owned())),
            Err(_) => return Routed::BadParam(name.to_string()),
        }
    }
    Routed::Found(*index, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::App;

    fn ok(_req: crate::Request) -> crate::Result<crate::Response> {
        Ok(crate::Response::text("ok"))
    }

    fn found(index: u32, list: &[(&str, &str)]) -> Routed {
        Routed::Found(
            index,
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn paths_match_like_the_host() {
        let app = App::new("t", "1")
            .get("/notes", ok)
            .get("/notes/{id}", ok)
            .get("/a/{x}/b/{y}", ok)
            .get("/files/{*rest}", ok)
            .post("/notes", ok);
        assert_eq!(route(&app, "GET", "/notes"), found(0, &[]));
        assert_eq!(route(&app, "POST", "/notes"), found(4, &[]));
        assert_eq!(route(&app, "HEAD", "/notes/7"), found(1, &[("id", "7")]));
        assert_eq!(
            route(&app, "GET", "/a/1/b/2"),
            found(2, &[("x", "1"), ("y", "2")])
        );
        assert_eq!(
            route(&app, "GET", "/files/a/b.txt"),
            found(3, &[("rest", "a/b.txt")])
        );
        assert_eq!(route(&app, "DELETE", "/notes"), Routed::NotAllowed);
        assert_eq!(route(&app, "GET", "/notes/7/x"), Routed::NotFound);
        assert_eq!(route(&app, "GET", "/other"), Routed::NotFound);
    }

    /// The host's router prefers a static segment to a parameter, in any
    /// declaration order; the first-declared-wins matcher this replaced
    /// sent `/users/me` to `/users/{id}`.
    #[test]
    fn a_static_segment_wins_over_a_parameter_declared_first() {
        let app = App::new("t", "1")
            .get("/users/{id}", ok)
            .get("/users/me", ok);
        assert_eq!(route(&app, "GET", "/users/me"), found(1, &[]));
        assert_eq!(route(&app, "GET", "/users/7"), found(0, &[("id", "7")]));
    }

    #[test]
    fn parameters_are_percent_decoded_like_the_host() {
        let app = App::new("t", "1").get("/hello/{name}", ok);
        assert_eq!(
            route(&app, "GET", "/hello/John%20Smith"),
            found(0, &[("name", "John Smith")])
        );
        assert_eq!(
            route(&app, "GET", "/hello/a%2Fb"),
            found(0, &[("name", "a/b")])
        );
        assert_eq!(
            route(&app, "GET", "/hello/%FF"),
            Routed::BadParam("name".into())
        );
    }
}
