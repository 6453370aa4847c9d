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

    /// The whole query string deserialized into `T` (a struct whose fields
    /// are the parameters; `Option` fields may be absent). A missing or bad
    /// parameter is a 400 that names it.
    ///
    /// ```
    /// # use trellis_sdk::testing::TestRequest;
    /// #[derive(serde::Deserialize)]
    /// struct Page { limit: Option<u32>, after: Option<String> }
    ///
    /// let req = TestRequest::get("/notes?limit=ten").build();
    /// let err = req.query_into::<Page>().err().unwrap();
    /// assert_eq!(err.status(), 400);
    /// assert!(err.detail().contains("`limit`"), "{}", err.detail());
    /// ```
    pub fn query_into<T: DeserializeOwned>(&self) -> Result<T> {
        // The host hands the pairs over decoded; serde_urlencoded reads an
        // encoded string (and parses numbers and booleans from it).
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.raw.query)
            .finish();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map_err(|err| named(err, "invalid query parameter", "invalid query string"))
    }

    /// A header parsed as `T`, or `None` when absent; a bad value is a 400
    /// naming the header.
    pub fn header_as<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.header(name)
            .map(|value| parse(value, || format!("header `{name}`")))
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
    /// 400 that names the field (`items[2].title`) and the position.
    ///
    /// ```
    /// # use trellis_sdk::testing::TestRequest;
    /// #[derive(serde::Deserialize)]
    /// struct Note { title: String }
    ///
    /// let req = TestRequest::post("/notes").body(r#"{"title": 7}"#).build();
    /// let err = req.json::<Note>().err().unwrap();
    /// assert_eq!(err.status(), 400);
    /// assert!(err.detail().starts_with("invalid JSON at `title`"), "{}", err.detail());
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.raw.body);
        let value = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|err| named(err, "invalid JSON at", "invalid JSON"))?;
        deserializer.end()?;
        Ok(value)
    }
}

/// A 400 for a deserialization error, naming the field where it has one
/// (`what` `title`: ...) and saying `whole` when it is about the input as a
/// whole (a syntax error, the wrong top-level type).
fn named<E: std::fmt::Display>(
    err: serde_path_to_error::Error<E>,
    what: &str,
    whole: &str,
) -> Error {
    let field = err.path().to_string();
    let inner = err.into_inner();
    if field == "." {
        Error::bad_request(format!("{whole}: {inner}"))
    } else {
        Error::bad_request(format!("{what} `{field}`: {inner}"))
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
