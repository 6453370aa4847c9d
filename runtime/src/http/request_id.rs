//! The request id: propagated from `x-request-id` when the client sent a
//! sane one, otherwise a new UUIDv7 (time-ordered, so logs sort).
//! Layer: inside `http`; leaf.

use http::HeaderMap;

/// The header that carries the request id both ways.
pub const HEADER: &str = "x-request-id";

/// Longest request id accepted from a client.
const MAX_LEN: usize = 128;

/// The client's request id if acceptable, else a new one.
pub fn from_headers(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_string)
        .unwrap_or_else(new)
}

/// A new request id.
pub fn new() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagates_sane_ids_and_replaces_others() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "abc-123".parse().expect("valid header"));
        assert_eq!(from_headers(&headers), "abc-123");
        headers.insert(HEADER, "has space".parse().expect("valid header"));
        assert_ne!(from_headers(&headers), "has space");
        assert_eq!(from_headers(&HeaderMap::new()).len(), 36);
    }
}
