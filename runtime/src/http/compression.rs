//! Response compression (`tower-http`'s compression layer, wrapped around
//! the pipeline by `server`): gzip, brotli, zstd or deflate as the client's
//! `Accept-Encoding` q-values prefer, `Vary: Accept-Encoding` added. Bodies
//! under `compression.min_size`, and types that are compressed already
//! (images but SVG, audio, video, archives, fonts), are sent as they are.
//! A compressed response's strong `ETag` becomes weak (`W/"…"`), since the
//! bytes differ from the identity representation's; `If-None-Match`
//! compares weakly, so revalidation still gets 304.
//!
//! Responses from the response cache are compressed once per variant and
//! encoding, not per request: [`negotiate`] picks the encoding as the
//! client prefers it and [`encode`] compresses; `http::response_cache`
//! keeps the result beside the identity entry (keyed by its ETag, so a
//! refreshed entry never meets an old variant). Such a response already
//! has its `Content-Encoding`, so the layer leaves it alone.
//!
//! Request bodies with a `Content-Encoding` are decoded in
//! `convert::read_body`, under the body limit.
//! Layer: inside `http` (`server` wraps the layer around the pipeline),
//! above `config`.

use http::header::{CONTENT_ENCODING, CONTENT_TYPE, ETAG};
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
        let size = super::convert::declared_length(response.headers())
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

/// A coding the runtime compresses cached responses with, in the order it
/// prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coding {
    /// `zstd`: the fastest to decode and usually the smallest.
    Zstd,
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
}

impl Coding {
    /// Its `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }
}

/// The coding `Accept-Encoding` prefers: the highest q-value above 0; on a
/// tie zstd, then br, then gzip. `None`: identity (nothing accepted, only
/// `identity`, or only codings this does not make).
pub fn negotiate(headers: &http::HeaderMap) -> Option<Coding> {
    let mut best: Option<(Coding, f32)> = None;
    for value in headers.get_all(http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = match parts.next().map(str::trim) {
                Some(c) if c.eq_ignore_ascii_case("zstd") => Coding::Zstd,
                Some(c) if c.eq_ignore_ascii_case("br") => Coding::Brotli,
                Some(c) if c.eq_ignore_ascii_case("gzip") => Coding::Gzip,
                _ => continue,
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let better = match best {
                None => q > 0.0,
                Some((held, best_q)) => q > best_q || (q == best_q && coding < held),
            };
            if better {
                best = Some((coding, q));
            }
        }
    }
    best.map(|(coding, _)| coding)
}

/// `body` compressed with `coding` (brotli at quality 5: close to its best
/// ratio for JSON at a fraction of quality 11's time).
pub async fn encode(coding: Coding, body: &[u8]) -> std::io::Result<bytes::Bytes> {
    use async_compression::Level;
    use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
    use tokio::io::AsyncReadExt;
    let mut out = Vec::with_capacity(body.len() / 4 + 64);
    match coding {
        Coding::Zstd => {
            ZstdEncoder::with_quality(body, Level::Default)
                .read_to_end(&mut out)
                .await?
        }
        Coding::Brotli => {
            BrotliEncoder::with_quality(body, Level::Precise(5))
                .read_to_end(&mut out)
                .await?
        }
        Coding::Gzip => {
            GzipEncoder::with_quality(body, Level::Default)
                .read_to_end(&mut out)
                .await?
        }
    };
    Ok(bytes::Bytes::from(out))
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

    fn accept(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("valid"),
        );
        headers
    }

    #[test]
    fn negotiation_follows_q_values_then_the_server_preference() {
        assert_eq!(negotiate(&accept("gzip")), Some(Coding::Gzip));
        assert_eq!(negotiate(&accept("gzip, br")), Some(Coding::Brotli));
        assert_eq!(negotiate(&accept("gzip, br, zstd")), Some(Coding::Zstd));
        assert_eq!(
            negotiate(&accept("gzip;q=0.5, br;q=1.0")),
            Some(Coding::Brotli)
        );
        assert_eq!(
            negotiate(&accept("br;q=0.1, zstd;q=0.9, gzip;q=0.5")),
            Some(Coding::Zstd)
        );
        assert_eq!(negotiate(&accept("GZIP ; q=0.8")), Some(Coding::Gzip));
        assert_eq!(negotiate(&accept("gzip;q=0")), None);
        assert_eq!(negotiate(&accept("identity")), None);
        assert_eq!(negotiate(&accept("deflate")), None);
        assert_eq!(negotiate(&http::HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn each_coding_round_trips() {
        use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
        use tokio::io::AsyncReadExt;
        let body = b"{\"items\": [1, 2, 3]} ".repeat(200);
        for coding in [Coding::Zstd, Coding::Brotli, Coding::Gzip] {
            let encoded = encode(coding, &body).await.expect("encodes");
            assert!(encoded.len() < body.len() / 4, "{coding:?}");
            let mut decoded = Vec::new();
            match coding {
                Coding::Zstd => {
                    ZstdDecoder::new(&encoded[..])
                        .read_to_end(&mut decoded)
                        .await
                }
                Coding::Brotli => {
                    BrotliDecoder::new(&encoded[..])
                        .read_to_end(&mut decoded)
                        .await
                }
                Coding::Gzip => {
                    GzipDecoder::new(&encoded[..])
                        .read_to_end(&mut decoded)
                        .await
                }
            }
            .expect("decodes");
            assert_eq!(decoded, body, "{coding:?}");
        }
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
