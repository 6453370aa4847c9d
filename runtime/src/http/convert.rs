//! hyper ↔ guest: the request body under its limit, query and headers as
//! pairs, and the guest's response checked into a hyper response.
//! Layer: inside `http`, above `plugin`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;

use crate::error::ApiError;
use crate::plugin::{GuestRequest, GuestResponse};

/// Headers a guest may not set: the connection's business, not the plugin's.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// The body length a message declares (`Content-Length`), when it does.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads the whole body, refusing more than `limit` bytes (413) and a client
/// that takes longer than `timeout` to send it (408), and decodes its
/// `Content-Encoding` under the same limit.
pub async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limit: u64,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if declared_length(headers).is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => decode(collected.to_bytes(), headers, limit).await,
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Ok(Err(err)) => Err(ApiError::BadRequest(format!(
            "cannot read the request body: {err}"
        ))),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

/// The body as sent, decoded when it has a `Content-Encoding` (gzip, br,
/// zstd, deflate): the limit applies to the decoded bytes too, so a small
/// compressed body that inflates past it (a zip bomb) is a 413, found
/// without holding more than the limit.
async fn decode(body: Bytes, headers: &HeaderMap, limit: u64) -> Result<Vec<u8>, ApiError> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
    use tokio::io::{AsyncRead, AsyncReadExt};
    let Some(encoding) = content_encoding(headers) else {
        return Ok(body.to_vec());
    };
    let encoding = encoding.map_err(ApiError::UnsupportedEncoding)?;
    let input: &[u8] = &body;
    let mut decoder: std::pin::Pin<Box<dyn AsyncRead + Send + '_>> = match encoding {
        "gzip" | "x-gzip" => Box::pin(GzipDecoder::new(input)),
        "br" => Box::pin(BrotliDecoder::new(input)),
        "zstd" => Box::pin(ZstdDecoder::new(input)),
        "deflate" => Box::pin(ZlibDecoder::new(input)),
        other => return Err(ApiError::UnsupportedEncoding(other.to_string())),
    };
    let mut decoded = Vec::new();
    let mut bounded = (&mut decoder).take(limit.saturating_add(1));
    bounded.read_to_end(&mut decoded).await.map_err(|e| {
        ApiError::BadRequest(format!("cannot decode the {encoding} request body: {e}"))
    })?;
    if decoded.len() as u64 > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(decoded)
}

/// The request's one content coding: `None` for none or `identity`, an
/// error naming it when there are several (on one line or over several:
/// they are one list) or one that is not text. Empty list elements
/// (`gzip,`, a lone `,`) are ignored, as RFC 9110 §5.6.1 asks.
fn content_encoding(headers: &HeaderMap) -> Option<Result<&'static str, String>> {
    let values: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    let text = values.join(", ");
    Some(match text.as_str() {
        "" | "identity" => return None,
        "gzip" => Ok("gzip"),
        "x-gzip" => Ok("x-gzip"),
        "br" => Ok("br"),
        "zstd" => Ok("zstd"),
        "deflate" => Ok("deflate"),
        _ => Err(text),
    })
}

/// Whether the body [`read_body`] returns was decoded from a
/// `Content-Encoding` (the guest then must not see that header).
pub fn was_encoded(headers: &HeaderMap) -> bool {
    content_encoding(headers).is_some()
}

/// The body of a response the runtime built: a `Full` body is whole and
/// ready, so this never waits.
pub fn body_bytes(response: &Response<Full<Bytes>>) -> Bytes {
    futures_util::FutureExt::now_or_never(response.body().clone().collect())
        .and_then(Result::ok)
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// `a=1&b=x%20y` → [("a", "1"), ("b", "x y")].
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Header pairs with lower-case names; non-UTF-8 values lossily decoded.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The `{param}` values as the guest gets them: percent-decoded (RFC
/// 3986) as UTF-8. The router matched the raw path, so an encoded `/`
/// (`%2F`) stays inside its segment's value. A value that is not UTF-8
/// once decoded is the client's error.
pub fn decode_params(params: Vec<(String, String)>) -> Result<Vec<(String, String)>, ApiError> {
    params
        .into_iter()
        .map(|(name, raw)| {
            if !raw.contains('%') {
                return Ok((name, raw));
            }
            match percent_encoding::percent_decode_str(&raw).decode_utf8() {
                Ok(value) => Ok((name, value.into_owned())),
                Err(_) => Err(ApiError::BadRequest(format!(
                    "path parameter `{name}` is not UTF-8 once percent-decoded"
                ))),
            }
        })
        .collect()
}

/// The guest's view of a request to route `route`: its head as strings,
/// the `{param}` values, and the body [`read_body`] returned.
pub fn guest_view(
    route: u32,
    params: Vec<(String, String)>,
    parts: &http::request::Parts,
    body: Vec<u8>,
    request_id: &str,
) -> GuestRequest {
    let mut headers = header_pairs(&parts.headers);
    if was_encoded(&parts.headers) {
        // A decoded body no longer has its coding or length.
        headers.retain(|(name, _)| name != "content-encoding" && name != "content-length");
    }
    GuestRequest {
        route,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        params,
        query: query_pairs(parts.uri.query()),
        headers,
        body,
        request_id: request_id.to_string(),
    }
}

/// The guest's response as a hyper response; an invalid header is the
/// plugin's fault (500), hop-by-hop headers are dropped.
pub fn into_http(plugin: &str, guest: GuestResponse) -> Result<Response<Full<Bytes>>, ApiError> {
    let invalid = |reason: String| ApiError::InvalidResponse {
        plugin: plugin.to_string(),
        reason,
    };
    // `from_u16` takes 100..=999; the WIT allows 100..=599.
    let status = StatusCode::from_u16(guest.status)
        .ok()
        .filter(|_| (100..=599).contains(&guest.status))
        .ok_or_else(|| invalid(format!("status {} is not an HTTP status", guest.status)))?;
    let mut response = Response::new(Full::new(Bytes::from(guest.body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in guest.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| invalid(format!("invalid value for header {name}")))?;
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coding a request with these `Content-Encoding` lines names.
    fn lines(values: &[&str]) -> Option<Result<&'static str, String>> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::CONTENT_ENCODING,
                HeaderValue::from_str(value).expect("a value"),
            );
        }
        content_encoding(&headers)
    }

    /// Found by the `convert` fuzz target: with two `Content-Encoding`
    /// lines only the first was read, and a value that is not text read as
    /// none, so a body still coded reached the guest as if it were not.
    #[tokio::test]
    async fn codings_over_several_lines_or_not_text_are_refused() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (&b"coentnt5encoding"[..], &b"-tidentityxt'p/n:"[..]),
            (&b"coentnt5encoding"[..], &b"-tidentityxt'p/n:"[..]),
            (&b"content-encoding"[..], &b"t\xd6\x8flaiST xz"[..]),
            (&b"content-encoding"[..], &b"t\xd6\x8flan"[..]),
        ] {
            headers.append(
                HeaderName::from_bytes(name).expect("a name"),
                HeaderValue::from_bytes(value).expect("a value"),
            );
        }
        let body = Full::new(Bytes::from_static(b"hell~~\xa0fodye"));
        let read = read_body(body, &headers, 64 * 1024, Duration::from_secs(5)).await;
        assert!(
            matches!(read, Err(ApiError::UnsupportedEncoding(_))),
            "{read:?}"
        );

        assert_eq!(lines(&["gzip", "gzip"]), Some(Err("gzip, gzip".into())));
        assert_eq!(lines(&["gzip, br"]), Some(Err("gzip, br".into())));
        assert_eq!(lines(&["gzip", ""]), Some(Ok("gzip")));
        assert_eq!(lines(&[" Identity "]), None);
        assert_eq!(lines(&[]), None);
    }

    /// Found by the `convert` fuzz target's ten-minute run: a list with
    /// empty elements (`, `) was refused as an unknown coding, though RFC
    /// 9110 §5.6.1 has a recipient ignore them; `gzip,` is gzip.
    #[test]
    fn empty_list_elements_of_content_encoding_are_ignored() {
        assert_eq!(lines(&[", "]), None);
        assert_eq!(lines(&["gzip,"]), Some(Ok("gzip")));
        assert_eq!(lines(&[", gzip", ","]), Some(Ok("gzip")));
        assert_eq!(lines(&["identity, br"]), Some(Ok("br")));
        assert_eq!(lines(&["gzip,,br"]), Some(Err("gzip, br".into())));
    }

    fn guest(status: u16, headers: &[(&str, &str)]) -> GuestResponse {
        GuestResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: b"brotli fodye".to_vec(),
        }
    }

    /// Found by the `convert` fuzz target: status 760 was sent, though the
    /// WIT allows 100..=599 (`StatusCode::from_u16` takes up to 999).
    #[test]
    fn a_status_outside_the_wit_range_is_the_plugins_fault() {
        let headers = [("location", "/b/1"), ("connection", "close")];
        for status in [760, 600, 999, 99, 1000] {
            assert!(
                matches!(
                    into_http("p", guest(status, &headers)),
                    Err(ApiError::InvalidResponse { .. })
                ),
                "{status} accepted"
            );
        }
        let response = into_http("p", guest(599, &headers)).expect("599 is a status");
        assert_eq!(response.status().as_u16(), 599);
        assert_eq!(response.headers()["location"], "/b/1");
        assert!(!response.headers().contains_key("connection"));
    }
}
