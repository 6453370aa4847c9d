//! Response compression (`tower-http`'s compression layer, wrapped around
//! the pipeline by `server`): gzip, brotli, zstd or deflate as the client's
//! `Accept-Encoding` q-values prefer, `Vary: Accept-Encoding` added. Bodies
//! under `compression.min_size`, and types that are compressed already
//! (images but SVG, audio, video, archives, fonts), are sent as they are.
//! A compressed response's strong `ETag` becomes weak (`W/"…"`), since the
//! bytes differ from the identity representation's; `If-None-Match`
//! compares weakly, so revalidation still gets 304.
//!
//! Request bodies with a `Content-Encoding` are decoded in
//! `convert::read_body`, under the body limit.

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use http::{HeaderValue, Response};
use hyper::body::Body;
use tower_http::compression::{CompressionLayer, Predicate};

use crate::config::CompressionConfig;

/// Content types not worth compressing again (prefixes).
const COMPRESSED_TYPES: &[&str] = &[
    "image/",
    "audio/",
    "video/",
    "font/woff",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
    "application/x-brotli",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/octet-stream",
    "application/grpc",
    "text/event-stream",
];

/// When a response is compressed.
#[derive(Debug, Clone, Copy)]
pub struct Compressible {
    enabled: bool,
    min_size: u64,
}

impl Compressible {
    /// The predicate of `config`.
    pub fn new(config: &CompressionConfig) -> Self {
        Compressible {
            enabled: config.enabled,
            min_size: config.min_size.as_u64(),
        }
    }
}

impl Predicate for Compressible {
    fn should_compress<B: Body>(&self, response: &Response<B>) -> bool {
        if !self.enabled || response.headers().contains_key(CONTENT_ENCODING) {
            return false;
        }
        let size = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact());
        if size.is_some_and(|size| size < self.min_size) {
            return false;
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let compressed = COMPRESSED_TYPES.iter().any(|t| content_type.starts_with(t))
            && !content_type.starts_with("image/svg");
        !compressed
    }
}

/// The layer for `config`.
pub fn layer(config: &CompressionConfig) -> CompressionLayer<Compressible> {
    CompressionLayer::new().compress_when(Compressible::new(config))
}

/// Makes a compressed response's strong `ETag` weak.
pub fn weaken_etag<B>(mut response: Response<B>) -> Response<B> {
    if response.headers().contains_key(CONTENT_ENCODING)
        && let Some(etag) = response.headers().get(ETAG)
        && etag.as_bytes().starts_with(b"\"")
    {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            response.headers_mut().insert(ETAG, weak);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;

    fn response(content_type: &str, size: usize) -> Response<Full<Bytes>> {
        Response::builder()
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(vec![b'a'; size])))
            .expect("valid")
    }

    #[test]
    fn small_and_already_compressed_bodies_are_left_alone() {
        let on = Compressible::new(&CompressionConfig::default());
        assert!(on.should_compress(&response("application/json", 4096)));
        assert!(on.should_compress(&response("image/svg+xml", 4096)));
        assert!(!on.should_compress(&response("application/json", 100)));
        assert!(!on.should_compress(&response("image/png", 4096)));
        assert!(!on.should_compress(&response("application/zip", 4096)));
        let off = Compressible::new(&CompressionConfig {
            enabled: false,
            ..CompressionConfig::default()
        });
        assert!(!off.should_compress(&response("application/json", 4096)));
        let mut encoded = response("text/plain", 4096);
        encoded
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(!on.should_compress(&encoded));
    }

    #[test]
    fn compressed_responses_get_weak_etags() {
        let mut compressed = response("text/plain", 10);
        compressed
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        compressed
            .headers_mut()
            .insert(ETAG, HeaderValue::from_static("\"abc\""));
        assert_eq!(weaken_etag(compressed).headers()[ETAG], "W/\"abc\"");
        let mut plain = response("text/plain", 10);
        plain
            .headers_mut()
            .insert(ETAG, HeaderValue::from_static("\"abc\""));
        assert_eq!(weaken_etag(plain).headers()[ETAG], "\"abc\"");
    }
}
