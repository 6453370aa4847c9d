//! Requests to a mounted `wasi:http` component (a plugin that exports
//! `wasi:http/incoming-handler`, mounted at a path prefix): the request is
//! rewritten to what the component sees and handed over with its body
//! streaming under the plugin's limit; the response streams back. No
//! response cache, field selection or pagination apply.
//! Layer: inside `http`, above `plugin` (`plugin::wasi_http` runs the call).

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Body;
use opentelemetry::Context;

use super::{App, ResponseBody, convert};
use crate::error::ApiError;

/// A request to a mounted `wasi:http` component: the path it sees is
/// the part below the mount (`x-forwarded-prefix` names the mount), and
/// the bodies stream both ways under the plugin's limits. The route's
/// metrics count the time to the response head.
#[allow(clippy::too_many_arguments)]
pub(super) async fn call<B>(
    app: &App,
    target: &crate::router::Target,
    mount: &str,
    mut parts: http::request::Parts,
    body: B,
    started: Instant,
    request_id: &str,
    trace: &Context,
) -> Result<Response<ResponseBody>, ApiError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = target.plugin.limits().max_request_body.as_u64();
    let connect = parts.method == http::Method::CONNECT;
    let declared = convert::declared_length(&parts.headers);
    let result = if declared.is_some_and(|length| length > limit) {
        Err(ApiError::PayloadTooLarge { limit })
    } else {
        mounted_request(&mut parts, mount)?;
        let request =
            Request::from_parts(parts, crate::plugin::wasi_http::request_body(body, limit));
        target
            .plugin
            .handle_wasi_http(request, trace, request_id)
            .await
            .and_then(|response| {
                if connect {
                    connect_answer(response, target.plugin.name())
                } else {
                    Ok(response)
                }
            })
    };
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(err) => err.status().as_u16(),
    };
    if let Some(stats) = target.plugin.route_stats(target.route) {
        stats.record(status, started.elapsed());
    }
    match result {
        Ok(response) => {
            if status >= 500 {
                let message = format!("status {status}");
                app.record_failure(target, "plugin_error", &message, None, request_id, trace);
            }
            Ok(response.map(|body| body.map_err(std::io::Error::other).boxed_unsync()))
        }
        Err(err) => {
            if status >= 500 {
                let message = err.to_string();
                app.record_failure(target, err.code(), &message, None, request_id, trace);
            }
            Err(err)
        }
    }
}

/// Rewrites a request to a component mounted at `mount` into what the
/// component sees: the path below the mount (`/` for the mount itself), the
/// query kept, `x-forwarded-prefix: <mount>`, and a `Host` when the client
/// sent none (wasi:http requires an authority).
fn mounted_request(parts: &mut http::request::Parts, mount: &str) -> Result<(), ApiError> {
    let below = crate::router::below(parts.uri.path(), mount).unwrap_or_default();
    let path = if below.is_empty() { "/" } else { below };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    uri.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("invalid request target: {e}")))?,
    );
    parts.uri = http::Uri::from_parts(uri)
        .map_err(|e| ApiError::BadRequest(format!("invalid request target: {e}")))?;
    if let Ok(mount) = HeaderValue::from_str(mount) {
        parts.headers.insert("x-forwarded-prefix", mount);
    }
    if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
        parts
            .headers
            .insert(http::header::HOST, HeaderValue::from_static("localhost"));
    }
    Ok(())
}

/// A 2xx answer to `CONNECT` opens a tunnel and carries no
/// `Content-Length`, `Transfer-Encoding` or body (RFC 9110 §9.3.6); hyper
/// would drop the connection without a word. A `content-length: 0` is
/// taken off; a body is the component's error, answered as one.
fn connect_answer<T>(mut response: Response<T>, plugin: &str) -> Result<Response<T>, ApiError> {
    if !response.status().is_success() {
        return Ok(response);
    }
    let headers = response.headers_mut();
    if headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() == b"0")
    {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    if headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        return Err(ApiError::InvalidResponse {
            plugin: plugin.to_string(),
            reason: "a 2xx answer to CONNECT opens a tunnel and carries no body, \
                     Content-Length or Transfer-Encoding (RFC 9110 section 9.3.6)"
                .into(),
        });
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)]) -> Result<Response<()>, ApiError> {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        connect_answer(response.body(()).expect("a valid response"), "tunnel")
    }

    #[test]
    fn a_2xx_answer_to_connect_carries_no_body() {
        // A tunnel: an empty length is taken off, nothing else is touched.
        let open = answer(200, &[("content-length", "0"), ("x-a", "1")]).expect("a tunnel");
        assert!(!open.headers().contains_key("content-length"));
        assert_eq!(open.headers()["x-a"], "1");
        // Not a tunnel: passed on as it is.
        let refused = answer(407, &[("content-length", "5")]).expect("passed on");
        assert_eq!(refused.headers()["content-length"], "5");
        // A body on a tunnel is the component's error.
        for framing in [("content-length", "5"), ("transfer-encoding", "chunked")] {
            match answer(200, &[framing]) {
                Err(ApiError::InvalidResponse { plugin, reason }) => {
                    assert_eq!(plugin, "tunnel");
                    assert!(reason.contains("RFC 9110"), "{reason}");
                }
                other => panic!("{framing:?}: {other:?}"),
            }
        }
    }
}
