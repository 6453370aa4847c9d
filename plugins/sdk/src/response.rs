//! The response a handler builds.

use serde::Serialize;

use crate::Result;
use crate::bindings::trellis::plugin::types::Response as RawResponse;

/// An HTTP response under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with a `text/plain` body.
    pub fn text(body: impl Into<String>) -> Self {
        Response::new(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// 200 with `value` serialized as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|err| crate::Error::internal(format!("cannot serialize response: {err}")))?;
        Ok(Response::new(200)
            .header("content-type", "application/json")
            .body(body))
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        Response::new(204)
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of a header (name matched case-insensitively).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced), for tests and logs.
    pub fn body_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON, for tests: a problem+json error body parses
    /// too (`body_json::<serde_json::Value>()?["detail"]`).
    pub fn body_json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    pub(crate) fn from_raw(raw: RawResponse) -> Self {
        Response {
            status: raw.status,
            headers: raw.headers,
            body: raw.body,
        }
    }

    pub(crate) fn into_raw(self) -> RawResponse {
        RawResponse {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}
