//! The request a handler receives, with typed access to its parts.

use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::bindings::trellis::plugin::types::Request as RawRequest;
use crate::{Error, Result};

/// An HTTP request routed to this plugin by the host.
#[derive(Debug, Clone)]
pub struct Request {
    raw: RawRequest,
}

impl Request {
    pub(crate) fn from_raw(raw: RawRequest) -> Self {
        Request { raw }
    }

    /// The upper-case method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.raw.method
    }

    /// The request path without the query string.
    pub fn path(&self) -> &str {
        &self.raw.path
    }

    /// The request id (`x-request-id`), for logs and error bodies.
    pub fn request_id(&self) -> &str {
        &self.raw.request_id
    }

    /// Path parameters in pattern order.
    pub fn params(&self) -> &[(String, String)] {
        &self.raw.params
    }

    /// A path parameter parsed as `T`; a bad value is a 400 naming the parameter.
    pub fn param<T: FromStr>(&self, name: &str) -> Result<T> {
        let value = lookup(&self.raw.params, name)
            .ok_or_else(|| Error::internal(format!("the route has no path parameter `{name}`")))?;
        parse(value, || format!("path parameter `{name}`"))
    }

    /// Query pairs in the order they were sent.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.raw.query
    }

    /// The first value of a query parameter, if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.raw.query, name)
    }

    /// A query parameter parsed as `T`, or `None` when absent; a bad value is
    /// a 400 naming the parameter.
    pub fn query_as<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.query(name)
            .map(|value| parse(value, || format!("query parameter `{name}`")))
            .transpose()
    }

    /// Headers with lower-case names.
    pub fn headers(&self) -> &[(String, String)] {
        &self.raw.headers
    }

    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.raw.body
    }

    /// The body as UTF-8 text; invalid UTF-8 is a 400.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.raw.body)
            .map_err(|err| Error::bad_request(format!("the body is not UTF-8: {err}")))
    }

    /// The body parsed as JSON into `T`; invalid JSON or a wrong shape is a
    /// 400 that says where.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.raw.body).map_err(Error::from)
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse<T: FromStr>(value: &str, what: impl FnOnce() -> String) -> Result<T> {
    value
        .parse()
        .map_err(|_| Error::bad_request(format!("invalid {}: `{value}`", what())))
}
