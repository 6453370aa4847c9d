//! Outgoing HTTP requests to the hosts the operator allows the plugin
//! (`allowed_outbound_hosts`). Needs the `outbound-http` capability: ask
//! for it with `App::capability("outbound-http")`.
//!
//! ```no_run
//! use trellis_sdk::http;
//!
//! # fn run() -> trellis_sdk::Result<()> {
//! let rates: serde_json::Value = http::get("https://api.example.com/rates")
//!     .header("accept", "application/json")
//!     .send()?
//!     .error_for_status()?
//!     .json()?;
//! let created = http::post("https://api.example.com/orders")
//!     .json(&serde_json::json!({ "item": 7 }))?
//!     .send()?;
//! # Ok(()) }
//! ```
//!
//! A refused, failed or timed-out request is an [`Error`](crate::Error)
//! that `?` turns into a problem+json answer: 502 `bad_gateway` (503
//! `upstream_busy` when the plugin's concurrency is used up, 504
//! `gateway_timeout` on a timeout), naming what happened.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::trellis::plugin::outbound_http as host;
use crate::{Error, Result};

/// A request being built; [`RequestBuilder::send`] sends it.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A request with `method` to `url`.
pub fn request(method: &str, url: impl Into<String>) -> RequestBuilder {
    RequestBuilder {
        method: method.to_ascii_uppercase(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// A `GET` of `url`.
pub fn get(url: impl Into<String>) -> RequestBuilder {
    request("GET", url)
}

/// A `POST` to `url`.
pub fn post(url: impl Into<String>) -> RequestBuilder {
    request("POST", url)
}

/// A `PUT` to `url`.
pub fn put(url: impl Into<String>) -> RequestBuilder {
    request("PUT", url)
}

/// A `DELETE` of `url`.
pub fn delete(url: impl Into<String>) -> RequestBuilder {
    request("DELETE", url)
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("cannot encode the request body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends it and waits for the whole response (redirects followed).
    pub fn send(self) -> Result<Response> {
        let url = self.url.clone();
        let request = host::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
        };
        match host::fetch(&request) {
            Ok(response) => Ok(Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            }),
            Err(err) => Err(error(&url, err)),
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// Its status.
    pub status: u16,
    /// Its headers; names are lower-case.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; a 502 naming the problem when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                502,
                format!("the upstream answered with JSON that does not fit: {e}"),
            )
            .with_code("bad_gateway")
        })
    }

    /// Itself when its status is below 400; otherwise a 502 naming the
    /// upstream's status.
    pub fn error_for_status(self) -> Result<Self> {
        if self.status < 400 {
            return Ok(self);
        }
        Err(
            Error::new(502, format!("the upstream answered {}", self.status))
                .with_code("bad_gateway"),
        )
    }
}

fn error(url: &str, err: host::Error) -> Error {
    let (status, code, detail) = match err {
        host::Error::Denied(why) => (502, "bad_gateway", format!("not allowed: {why}")),
        host::Error::Invalid(why) => (500, "internal_error", format!("invalid request: {why}")),
        host::Error::Connect(why) => (502, "bad_gateway", format!("cannot connect: {why}")),
        host::Error::Timeout => (504, "gateway_timeout", "no answer in time".to_string()),
        host::Error::TooLarge(limit) => (
            502,
            "bad_gateway",
            format!("the response is larger than {limit} bytes"),
        ),
        host::Error::Limited => (
            503,
            "upstream_busy",
            "too many outgoing requests in flight".to_string(),
        ),
        host::Error::Failed(why) => (502, "bad_gateway", why),
    };
    Error::new(status, format!("{url}: {detail}")).with_code(code)
}
