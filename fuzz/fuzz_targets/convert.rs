//! The request → guest conversion (method, path, query pairs, header
//! pairs, the body under its limit and its `Content-Encoding` decoded) and
//! the guest's response → HTTP (status, headers, hop-by-hop ones dropped).
//!
//! Input, like an HTTP/1.1 message: a line `METHOD URI`, header lines
//! `name: value`, an empty line, the body. Header lines the target reads
//! itself (and removes): `x-fuzz-limit` (the body limit, default 64 KiB),
//! `x-fuzz-encode` (gzip, br, zstd or deflate: the target compresses the
//! body and sets `Content-Encoding`), `x-fuzz-status` (the guest response's
//! status; the guest response carries the same header lines and body).
//!
//! Invariants: a body the guest sees is at most the limit; without a
//! coding it is the body sent; a body the target compressed is decoded
//! back to what it compressed (and refused only when that is over the
//! limit); a decoded body's guest headers carry no `content-encoding` or
//! `content-length`; header names are lower-case and none is lost; the
//! query pairs survive a round trip through the form encoding. A guest
//! response is refused exactly when its status or a header is not valid
//! HTTP; one accepted keeps the status (100..=599, as the WIT says) and
//! every header but the hop-by-hop ones.

#![no_main]

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncReadExt;
use trellis::error::ApiError;
use trellis::http::convert::HOP_BY_HOP;
use trellis::plugin::GuestResponse;

struct Message {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    limit: u64,
    encode: Option<String>,
    status: u16,
}

fuzz_target!(|data: &[u8]| {
    let Some(message) = read(data) else {
        return;
    };
    guest_response(&message);
    guest_request(message);
});

fn read(data: &[u8]) -> Option<Message> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], data[at + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, uri) = lines.next()?.split_once(' ')?;
    let mut message = Message {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: Vec::new(),
        body,
        limit: 64 * 1024,
        encode: None,
        status: 200,
    };
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim_start();
        match name {
            "x-fuzz-limit" => message.limit = value.parse().ok()?,
            "x-fuzz-encode" => message.encode = Some(value.to_string()),
            "x-fuzz-status" => message.status = value.parse().ok()?,
            _ => message.headers.push((name.to_string(), value.to_string())),
        }
    }
    Some(message)
}

fn guest_request(message: Message) {
    let Message {
        method,
        uri,
        headers,
        body: original,
        limit,
        mut encode,
        ..
    } = message;
    let mut builder = Request::builder().method(method.as_str()).uri(uri.as_str());
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-encoding") {
            // The message names its own coding: the target makes none.
            encode = None;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut body = original.clone();
    if let Some(coding) = &encode {
        let Some(compressed) = compress(coding, &original) else {
            return;
        };
        body = compressed;
        builder = builder.header("content-encoding", coding.as_str());
    }
    // What hyper would not have let through is not a request.
    let Ok(request) = builder.body(Full::new(Bytes::from(body.clone()))) else {
        return;
    };
    let sent = request.headers().clone();
    let uri = request.uri().clone();
    // Every coding the message names, over all its Content-Encoding lines.
    let codings: Vec<String> = sent
        .get_all("content-encoding")
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    let coded = !codings.is_empty();
    let declared: Option<u64> = sent
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());

    let result = trellis::fuzz::guest_request(request, Vec::new(), limit);
    if codings.len() > 1 {
        assert!(
            matches!(
                result,
                Err(ApiError::UnsupportedEncoding(_) | ApiError::PayloadTooLarge { .. })
            ),
            "codings {codings:?} in a row, yet {:?}",
            result.map(|g| g.headers)
        );
    }
    match result {
        Ok(guest) => {
            assert!(guest.body.len() as u64 <= limit, "body over the limit");
            if encode.is_some() {
                assert_eq!(
                    guest.body, original,
                    "decoded body differs from what was sent"
                );
            } else if !coded {
                assert_eq!(guest.body, body, "body changed without a coding");
            }
            if encode.is_some() {
                assert!(
                    !guest
                        .headers
                        .iter()
                        .any(|(n, _)| n == "content-encoding" || n == "content-length"),
                    "decoded body, coding headers kept: {:?}",
                    guest.headers
                );
            } else if !coded {
                assert_eq!(guest.headers.len(), sent.len(), "headers lost");
            }
            for (name, _) in &guest.headers {
                assert_eq!(
                    *name,
                    name.to_ascii_lowercase(),
                    "header name not lower-case"
                );
            }
            assert_eq!(guest.path, uri.path());
            assert_eq!(guest.method, method);
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&guest.query)
                .finish();
            let again: Vec<(String, String)> = form_urlencoded::parse(encoded.as_bytes())
                .into_owned()
                .collect();
            assert_eq!(again, guest.query, "query pairs do not round-trip");
        }
        Err(ApiError::PayloadTooLarge { .. }) => {
            let decoded_over = match encode {
                Some(_) => original.len() as u64 > limit,
                None => coded,
            };
            assert!(
                body.len() as u64 > limit || declared.is_some_and(|d| d > limit) || decoded_over,
                "{} bytes ({} decoded) refused under a limit of {limit}",
                body.len(),
                original.len()
            );
        }
        Err(err) => {
            // Only a coding the target did not make can make a whole,
            // in-limit body unreadable.
            assert!(coded && encode.is_none(), "refused: {err:?}");
        }
    }
}

fn guest_response(message: &Message) {
    let guest = GuestResponse {
        status: message.status,
        headers: message.headers.clone(),
        body: message.body.clone(),
    };
    let valid = (100..=599).contains(&message.status)
        && StatusCode::from_u16(message.status).is_ok()
        && message.headers.iter().all(|(n, v)| {
            HeaderName::from_bytes(n.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok()
        });
    match trellis::http::convert::into_http("fuzz", guest) {
        Ok(response) => {
            assert!(valid, "accepted an invalid response: {}", message.status);
            assert_eq!(response.status().as_u16(), message.status);
            for hop in HOP_BY_HOP {
                assert!(!response.headers().contains_key(*hop), "{hop} kept");
            }
            let kept = message
                .headers
                .iter()
                .filter(|(n, _)| !HOP_BY_HOP.contains(&n.to_ascii_lowercase().as_str()))
                .count();
            assert_eq!(response.headers().len(), kept, "headers lost");
        }
        Err(err) => assert!(!valid, "refused a valid response: {err:?}"),
    }
}

/// The runtime the encoders run on, made once.
static COMPRESSOR: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

/// `body` compressed with `coding`, as a client would send it.
fn compress(coding: &str, body: &[u8]) -> Option<Vec<u8>> {
    use async_compression::Level;
    use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZlibEncoder, ZstdEncoder};
    let mut out = Vec::new();
    COMPRESSOR.block_on(async {
        match coding {
            "gzip" => {
                GzipEncoder::with_quality(body, Level::Fastest)
                    .read_to_end(&mut out)
                    .await
            }
            "br" => {
                BrotliEncoder::with_quality(body, Level::Fastest)
                    .read_to_end(&mut out)
                    .await
            }
            "zstd" => {
                ZstdEncoder::with_quality(body, Level::Fastest)
                    .read_to_end(&mut out)
                    .await
            }
            "deflate" => {
                ZlibEncoder::with_quality(body, Level::Fastest)
                    .read_to_end(&mut out)
                    .await
            }
            _ => return None,
        }
        .ok()
    })?;
    Some(out)
}
