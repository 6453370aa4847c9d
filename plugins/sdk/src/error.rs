//! Handler errors and their problem+json form (RFC 9457).

use std::fmt;

use crate::Response;

/// The result type of handlers: `Ok` is the response, `Err` an [`Error`].
pub type Result<T = Response, E = Error> = std::result::Result<T, E>;

/// An error a handler returns; it becomes an `application/problem+json`
/// response with this status, a title derived from it, and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    detail: String,
    code: Option<String>,
    headers: Vec<(String, String)>,
}

impl Error {
    /// An error with any status (400..=599) and a detail message for the client.
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        let status = if (400..=599).contains(&status) {
            status
        } else {
            500
        };
        Error {
            status,
            detail: detail.into(),
            code: None,
            headers: Vec::new(),
        }
    }

    /// Adds a header to the error response (e.g. `retry-after`).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Groups this error (a 5xx) under `fingerprint` in the runtime's error
    /// aggregation instead of the one it computes from the message. The
    /// runtime removes the header before the client sees the response.
    pub fn with_fingerprint(self, fingerprint: impl Into<String>) -> Self {
        self.with_header("x-trellis-fingerprint", fingerprint)
    }

    /// Sets the machine-readable `code` of the problem body (default: the
    /// status title in snake case, e.g. `not_found`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// 400 Bad Request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Error::new(400, detail)
    }

    /// 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Error::new(404, detail)
    }

    /// 409 Conflict.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Error::new(409, detail)
    }

    /// 422 Unprocessable Content.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Error::new(422, detail)
    }

    /// 500 Internal Server Error.
    pub fn internal(detail: impl Into<String>) -> Self {
        Error::new(500, detail)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The detail message.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The code set with [`Error::with_code`] (e.g. `lock_lost`), if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The problem+json response for this error.
    pub fn into_response(self, request_id: &str) -> Response {
        let title = title(self.status);
        let code = self
            .code
            .unwrap_or_else(|| title.to_ascii_lowercase().replace(' ', "_"));
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": self.status,
            "detail": self.detail,
            "code": code,
            "request_id": request_id,
        });
        let response = Response::new(self.status)
            .header("content-type", "application/problem+json")
            .body(body.to_string());
        self.headers
            .into_iter()
            .fold(response, |response, (name, value)| {
                response.header(name, value)
            })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, title(self.status), self.detail)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::bad_request(format!("invalid JSON: {err}"))
    }
}

fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ if status < 500 => "Client Error",
        _ => "Server Error",
    }
}
