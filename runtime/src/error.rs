//! Errors a request can end in, and their one mapping to HTTP: status,
//! headers and an `application/problem+json` body (RFC 9457) that carries the
//! request id. Cross-cutting; the `http` layer renders, lower layers produce.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// Why a request failed. Each variant owns its status in [`ApiError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No route matches the path.
    #[error("no route matches {path}")]
    NotFound {
        /// The request path.
        path: String,
    },
    /// The path matches, the method does not.
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The methods that are, for the `Allow` header.
        allow: String,
    },
    /// The request body is over the plugin's limit.
    #[error("the request body is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A batch with more operations than `batch.max_operations`.
    #[error("a batch holds at most {limit} operations")]
    TooManyOperations {
        /// The limit.
        limit: usize,
    },
    /// A feature the request asks for is not built.
    #[error("{0}")]
    NotImplemented(String),
    /// The request body's `Content-Encoding` is not one the runtime decodes.
    #[error(
        "the request body's Content-Encoding `{0}` is not supported; use gzip, br, zstd or deflate"
    )]
    UnsupportedEncoding(String),
    /// The client took too long to send the request body.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The client started a request but did not finish its head (request
    /// line and headers) within `server.header_read_timeout`.
    #[error("the request headers did not arrive within {}", humantime::format_duration(*limit))]
    HeaderTimeout {
        /// The timeout.
        limit: Duration,
    },
    /// The request head (request line and headers) is over
    /// `server.max_header_bytes`, or has more than 100 headers.
    #[error("the request line and headers are over the limit of {limit} bytes or 100 headers")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request target is longer than the server parses.
    #[error("the request target is too long")]
    UriTooLong,
    /// The plugin already runs its maximum of instances.
    #[error("plugin `{plugin}` is at its limit of {limit} concurrent requests")]
    Overloaded {
        /// The plugin.
        plugin: String,
        /// Its concurrency limit.
        limit: u32,
    },
    /// The plugin did not answer within its deadline.
    #[error("plugin `{plugin}` did not answer within {}", humantime::format_duration(*deadline))]
    DeadlineExceeded {
        /// The plugin.
        plugin: String,
        /// Its deadline.
        deadline: Duration,
    },
    /// The plugin tried to grow its memory over its cap.
    #[error("plugin `{plugin}` exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// The plugin trapped (panic, unreachable, out-of-bounds access, ...).
    #[error("plugin `{plugin}` failed: {reason}")]
    GuestFault {
        /// The plugin.
        plugin: String,
        /// The trap, as wasmtime describes it.
        reason: String,
    },
    /// The plugin's response body is over its limit.
    #[error("plugin `{plugin}` returned {size} bytes, over its limit of {limit}")]
    ResponseTooLarge {
        /// The plugin.
        plugin: String,
        /// The body size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The plugin's response is not valid HTTP (status, header).
    #[error("plugin `{plugin}` returned an invalid response: {reason}")]
    InvalidResponse {
        /// The plugin.
        plugin: String,
        /// What is invalid.
        reason: String,
    },
    /// An admin endpoint without a valid admin token. The detail says no
    /// more than that.
    #[error("a valid admin bearer token is required")]
    Unauthorized,
    /// No job has this id (or it was pruned).
    #[error("no job has id {0}")]
    UnknownJob(String),
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// No plugin of this name is deployed.
    #[error("no plugin named `{0}` is deployed")]
    UnknownPlugin(String),
    /// A plugin version was refused (did not load, routes conflict); the
    /// old version keeps serving.
    #[error("refused: {0}")]
    PluginRefused(String),
    /// A backend the request needs does not answer; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The server is not ready (draining, or a dependency is down).
    #[error("not ready: {0}")]
    NotReady(String),
    /// The runtime itself failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error: the only place it is decided.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooManyOperations { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout | ApiError::HeaderTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnknownJob(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
            ApiError::PluginRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded { .. } | ApiError::NotReady(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::MemoryLimit { .. }
            | ApiError::GuestFault { .. }
            | ApiError::ResponseTooLarge { .. }
            | ApiError::InvalidResponse { .. }
            | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name of the error kind (`code` in the body).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooManyOperations { .. } => "too_many_operations",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            ApiError::BodyTimeout | ApiError::HeaderTimeout { .. } => "request_timeout",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::UriTooLong => "uri_too_long",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::DeadlineExceeded { .. } => "deadline_exceeded",
            ApiError::MemoryLimit { .. } => "memory_limit",
            ApiError::GuestFault { .. } => "guest_fault",
            ApiError::ResponseTooLarge { .. } => "response_too_large",
            ApiError::InvalidResponse { .. } => "invalid_response",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotReady(_) => "not_ready",
            ApiError::UnknownJob(_) => "job_not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::UnknownPlugin(_) => "plugin_not_found",
            ApiError::PluginRefused(_) => "plugin_refused",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem+json body (RFC 9457), carrying `request_id`.
    pub fn problem(&self, request_id: &str) -> Bytes {
        let status = self.status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
            "request_id": request_id,
        });
        Bytes::from(body.to_string())
    }

    /// The problem+json response, with `request_id` in the body (the
    /// pipeline adds the header).
    pub fn into_response(self, request_id: &str) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut response = Response::new(Full::new(self.problem(request_id)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    headers.insert(header::ALLOW, value);
                }
            }
            ApiError::Overloaded { .. } | ApiError::NotReady(_) | ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"trellis-admin\""),
                );
            }
            _ => {}
        }
        response
    }
}
