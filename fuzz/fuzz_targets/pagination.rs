//! Pagination cursors: the `Link: <…>; rel="next"` the host derives from
//! a JSON page's `next_cursor` (`http::pagination`), and the error-group
//! cursors of `GET /api/v1/monitoring/errors` (`monitor::ErrorCursor`).
//!
//! Input: a line with the request URI, a line with a cursor as a client
//! sends it, then the response body.
//!
//! Invariants: a `Link` is added exactly when the body (JSON with the
//! literal key `"next_cursor"`) holds a string cursor; its target is the
//! request's path, with the request's other query pairs in order and
//! `cursor` last, holding exactly that cursor. An error cursor that
//! decodes re-encodes to one that decodes to the same cursor; every
//! cursor the runtime can encode (any time, any fingerprint) that fits
//! the decoder's bound decodes back to itself, re-encoding to the same
//! text.

#![no_main]

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LINK};
use http::{Response, Uri};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use trellis::monitor::ErrorCursor;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(uri), Some(cursor), body) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let body = body.unwrap_or_default();
    if let Ok(uri) = std::str::from_utf8(uri)
        && let Ok(uri) = uri.parse::<Uri>()
    {
        link(&uri, body);
    }
    if let Ok(cursor) = std::str::from_utf8(cursor) {
        error_cursor(cursor, body.len() as u64);
    }
});

fn link(uri: &Uri, body: &[u8]) {
    let mut response = Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a response");
    trellis::http::pagination::link_next(&mut response, uri);
    let literal = body.windows(13).any(|w| w == b"\"next_cursor\"");
    let next = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("next_cursor")?.as_str().map(str::to_string));
    let Some(link) = response.headers().get(LINK) else {
        assert!(
            !literal || next.is_none(),
            "no Link for next_cursor {next:?}"
        );
        return;
    };
    let next = next.expect("a Link only for a string next_cursor");
    // Built from a `&str`: UTF-8, though not always visible ASCII.
    let link = std::str::from_utf8(link.as_bytes()).expect("a Link is UTF-8");
    let target = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .expect("<target>; rel=\"next\"");
    let (path, query) = target.split_once('?').expect("a query");
    assert_eq!(path, uri.path());
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let (last, kept) = pairs.split_last().expect("the cursor pair");
    assert_eq!(last, &("cursor".to_string(), next));
    let others: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "cursor")
            .collect();
    assert_eq!(kept, others.as_slice(), "the request's other pairs");
}

fn error_cursor(text: &str, last_seen: u64) {
    if let Some(cursor) = ErrorCursor::decode(text) {
        let again = ErrorCursor::decode(&cursor.encode());
        assert_eq!(again.as_ref(), Some(&cursor), "{text:?} does not re-encode");
    }
    // The runtime's own encoding of (last_seen, fingerprint = text).
    let encoded: String = format!("{last_seen}:{text}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    if encoded.len() <= 256 {
        let cursor = ErrorCursor::decode(&encoded).expect("an encoded cursor decodes");
        assert_eq!(cursor.encode(), encoded);
    }
}
