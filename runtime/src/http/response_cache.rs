//! The HTTP response cache: GET responses of routes that declare
//! `cache-ttl` (see `plugin::route_options`) are kept in the two-tier cache
//! under the plugin's namespace and served without instantiating the
//! plugin. Concurrent misses of one variant on one node call the plugin
//! once (the cache's single-flight). Responses carry an `ETag`; a matching
//! `If-None-Match` gets 304. A client's `Cache-Control: no-cache` (or
//! `Pragma: no-cache`) skips the lookup and refreshes the entry. A plugin
//! invalidates entries through the tags its route declares
//! (`cache::invalidate-tag`).
//!
//! Only 200 responses without `Set-Cookie` and without `Cache-Control:
//! no-store` or `private` are stored. A stored 200 is also kept compressed,
//! once per variant and coding the clients ask for (see
//! `http::compression`). Inside an atomic batch nothing is cached: the
//! batch may roll back.
//!
//! The pipeline hands every routed request to [`through`], with the plugin
//! call still to make; the steps (key, lookup, single-flight ticket, ETag
//! and 304, storing, compressed variants, the counters and the span's
//! `trellis.response_cache` attribute) are this module's.
//! Layer: inside `http`, above `plugin` (route policies), `backend` (the
//! cache) and `monitor` (the counters).

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH, PRAGMA, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use sha2::{Digest, Sha256};

use super::App;
use super::compression::{self, Coding};
use super::convert::body_bytes;
use crate::backend::cache::{CacheService, Fetched, LoadTicket};
use crate::capability::sql::AmbientSlot;
use crate::error::ApiError;
use crate::monitor::ResponseCacheStats;
use crate::plugin::RouteCache;
use crate::router::Target;

/// A routed request's answer: through the response cache when its route
/// caches (`GET`/`HEAD` to a route with `cache-ttl`, not inside an atomic
/// batch), else straight from `call`. `call` makes the plugin call (at
/// most once) from the request head and the path parameters.
pub(super) async fn through<F, Fut>(
    app: &App,
    target: &Target,
    parts: Parts,
    params: Vec<(String, String)>,
    trace: &Context,
    call: F,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    F: FnOnce(Parts, Vec<(String, String)>) -> Fut,
    Fut: Future<Output = Result<Response<Full<Bytes>>, ApiError>>,
{
    let in_batch = parts.extensions.get::<AmbientSlot>().is_some();
    let cached = matches!(parts.method, http::Method::GET | http::Method::HEAD)
        .then(|| target.plugin.response_cache(target.route))
        .flatten()
        .filter(|_| !in_batch);
    let Some((policy, stats)) = cached else {
        return call(parts, params).await;
    };
    let variant = Variant {
        cache: app.host.cache(),
        compressible: app.compressible,
        plugin: target.plugin.name(),
        policy,
        stats,
        trace,
        key: key(target.route, &parts, policy),
        tags: policy.tags_for(&params),
        if_none_match: if_none_match(&parts.headers),
        coding: compression::negotiate(&parts.headers),
    };
    if no_cache(&parts.headers) {
        return variant.refresh(call(parts, params)).await;
    }
    variant.fetch_or_call(call(parts, params)).await
}

/// One variant of a cached route's response, as one request asks for it.
struct Variant<'a> {
    cache: &'a CacheService,
    compressible: compression::Compressible,
    plugin: &'a str,
    policy: &'a RouteCache,
    stats: &'a ResponseCacheStats,
    trace: &'a Context,
    key: String,
    tags: Vec<String>,
    if_none_match: Option<HeaderValue>,
    coding: Option<Coding>,
}

impl Variant<'_> {
    /// The client's `no-cache`: the plugin answers and the entry is
    /// replaced.
    async fn refresh(
        &self,
        call: impl Future<Output = Result<Response<Full<Bytes>>, ApiError>>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        self.stats.bypass.inc();
        let mut response = call.await?;
        tag(&mut response);
        if let Some(stored) = encode(&response) {
            // A full cache or a bad tag only means the next one misses.
            let _ = self
                .cache
                .set_internal(self.plugin, &self.key, stored, self.policy.ttl, &self.tags)
                .await;
        }
        Ok(self.answer(response, "bypass").await)
    }

    /// A hit from the cache; else the plugin answers, and under the key's
    /// load ticket (when this request holds it) the answer is stored for
    /// the requests waiting on it.
    async fn fetch_or_call(
        &self,
        call: impl Future<Output = Result<Response<Full<Bytes>>, ApiError>>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let ticket = match self.cache.fetch_internal(self.plugin, &self.key).await {
            Fetched::Hit(stored) => match decode(&stored) {
                Some(response) => {
                    self.stats.hit.inc();
                    return Ok(self.answer(response, "hit").await);
                }
                None => None,
            },
            Fetched::Absent => None,
            Fetched::Load(ticket) => Some(ticket),
        };
        self.stats.miss.inc();
        let mut result = call.await;
        if let Ok(response) = &mut result {
            tag(response);
        }
        if let Some(ticket) = ticket {
            self.settle_ticket(ticket, &result).await;
        }
        Ok(self.answer(result?, "miss").await)
    }

    /// Fills the key's load ticket with the plugin's answer, or lets the
    /// waiters go.
    async fn settle_ticket(
        &self,
        ticket: LoadTicket,
        result: &Result<Response<Full<Bytes>>, ApiError>,
    ) {
        match result {
            Ok(response) => match encode(response) {
                Some(stored) => {
                    let _ = ticket.fill(Some(stored), self.policy.ttl, &self.tags).await;
                }
                // A server error: waiters may have the stale answer.
                None if response.status().is_server_error() => ticket.fail(),
                // A 404 and the like: not cached; waiters ask the plugin.
                None => ticket.abandon(),
            },
            Err(_) => ticket.fail(),
        }
    }

    /// `response` as the client gets it: the outcome on the span and in
    /// the cache header, `ETag`, `Vary`, a 304 when `If-None-Match`
    /// matches, compressed as the client prefers.
    async fn answer(
        &self,
        mut response: Response<Full<Bytes>>,
        outcome: &'static str,
    ) -> Response<Full<Bytes>> {
        self.trace
            .span()
            .set_attribute(KeyValue::new("trellis.response_cache", outcome));
        if finish(
            &mut response,
            self.policy,
            self.if_none_match.as_ref(),
            outcome,
        ) {
            self.stats.not_modified.inc();
        }
        self.compressed(response).await
    }

    /// A cached 200 compressed with the client's coding, from the cache
    /// when this variant was compressed before (stored beside it, with its
    /// ttl and tags), else compressed now and stored. Anything else as it
    /// is.
    async fn compressed(&self, response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        use tower_http::compression::Predicate;
        if response.status() != StatusCode::OK || !self.compressible.should_compress(&response) {
            return response;
        }
        let (Some(coding), Some(etag)) = (self.coding, response.headers().get(ETAG).cloned())
        else {
            return response;
        };
        let encoded_key = encoded_key(&self.key, coding, &etag);
        let body = match self.cache.get_internal(self.plugin, &encoded_key).await {
            Some(Some(body)) => body,
            _ => match compression::encode(coding, &body_bytes(&response)).await {
                Ok(body) => {
                    let (ttl, tags) = (self.policy.ttl, &self.tags);
                    let _ = self
                        .cache
                        .set_internal(self.plugin, &encoded_key, body.clone(), ttl, tags)
                        .await;
                    body
                }
                Err(_) => return response,
            },
        };
        let (mut parts, _) = response.into_parts();
        parts.headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
        parts.headers.remove(http::header::CONTENT_LENGTH);
        parts
            .headers
            .append(VARY, HeaderValue::from_static("accept-encoding"));
        Response::from_parts(parts, Full::new(body))
    }
}

/// The response header that says how the cache answered.
pub const CACHE_HEADER: &str = "x-trellis-cache";

/// The cache key of one variant: the route, path, query and the values of
/// the vary headers, hashed. It starts with a control character, which no
/// plugin's own key may hold.
pub fn key(route: u32, parts: &Parts, policy: &RouteCache) -> String {
    let mut hash = Sha256::new();
    hash.update(route.to_be_bytes());
    hash.update(parts.uri.path());
    hash.update(b"?");
    hash.update(parts.uri.query().unwrap_or(""));
    for name in &policy.vary {
        hash.update(b"\0");
        hash.update(name.as_str());
        for value in parts.headers.get_all(name) {
            hash.update(b"=");
            hash.update(value.as_bytes());
        }
    }
    format!("\u{0}http:{:x}", hash.finalize())
}

/// Whether the client asked for a fresh answer.
pub fn no_cache(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, directive: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case(directive))
            })
        })
    };
    has(CACHE_CONTROL, "no-cache") || has(CACHE_CONTROL, "no-store") || has(PRAGMA, "no-cache")
}

/// The stored form of `response` (`status, header count, per header: name
/// length, name, value length, value; the body`), or `None` if it may not
/// be stored.
pub fn encode(response: &Response<Full<Bytes>>) -> Option<Bytes> {
    if response.status() != StatusCode::OK || response.headers().contains_key(SET_COOKIE) {
        return None;
    }
    let private = response.headers().get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|d| {
                matches!(
                    d.trim().to_ascii_lowercase().as_str(),
                    "no-store" | "private"
                )
            })
        })
    });
    if private {
        return None;
    }
    let body = body_bytes(response);
    let mut out = BytesMut::with_capacity(body.len() + 256);
    out.put_u16(response.status().as_u16());
    let headers: Vec<_> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != CACHE_HEADER)
        .collect();
    out.put_u16(u16::try_from(headers.len()).ok()?);
    for (name, value) in headers {
        out.put_u16(u16::try_from(name.as_str().len()).ok()?);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(u32::try_from(value.len()).ok()?);
        out.put_slice(value.as_bytes());
    }
    out.put_slice(&body);
    Some(out.freeze())
}

/// The inverse of [`encode`]; `None` for bytes it did not write.
pub fn decode(bytes: &Bytes) -> Option<Response<Full<Bytes>>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let slice = bytes.get(at..at.checked_add(n)?)?;
        at += n;
        Some(slice)
    };
    let status = u16::from_be_bytes(take(2)?.try_into().ok()?);
    let count = u16::from_be_bytes(take(2)?.try_into().ok()?);
    let mut response = Response::builder().status(StatusCode::from_u16(status).ok()?);
    for _ in 0..count {
        let len = u16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = HeaderName::from_bytes(take(usize::from(len))?).ok()?;
        let len = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let value = HeaderValue::from_bytes(take(usize::try_from(len).ok()?)?).ok()?;
        response = response.header(name, value);
    }
    response.body(Full::new(bytes.slice(at..))).ok()
}

/// A 200's `ETag`: the plugin's, or one made from a hash of the body and
/// added; other statuses get none. Called before a response is stored, so
/// hits carry theirs and do not hash again.
pub fn tag(response: &mut Response<Full<Bytes>>) -> Option<HeaderValue> {
    if response.status() != StatusCode::OK {
        return None;
    }
    if let Some(etag) = response.headers().get(ETAG) {
        return Some(etag.clone());
    }
    let digest = Sha256::digest(body_bytes(response));
    let hex = format!("{digest:x}");
    let etag = HeaderValue::from_str(&format!("\"{}\"", &hex[..32]))
        .unwrap_or(HeaderValue::from_static("\"0\""));
    response.headers_mut().insert(ETAG, etag.clone());
    Some(etag)
}

/// The cache key of `variant`'s body compressed with `coding`: its ETag
/// names the identity body it was made from.
pub fn encoded_key(variant: &str, coding: Coding, etag: &HeaderValue) -> String {
    format!(
        "{variant}\u{0}{}\u{0}{}",
        coding.token(),
        String::from_utf8_lossy(etag.as_bytes())
    )
}

/// Adds `ETag` (the plugin's, or a hash of the body), `Vary` and the cache
/// header to a 200, and turns it into a 304 when `if_none_match` matches.
/// Returns whether it became a 304.
pub fn finish(
    response: &mut Response<Full<Bytes>>,
    policy: &RouteCache,
    if_none_match: Option<&HeaderValue>,
    outcome: &'static str,
) -> bool {
    response
        .headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(outcome));
    let Some(etag) = tag(response) else {
        return false;
    };
    if !policy.vary.is_empty() {
        let names: Vec<&str> = policy.vary.iter().map(HeaderName::as_str).collect();
        if let Ok(value) = HeaderValue::from_str(&names.join(", ")) {
            response.headers_mut().insert(VARY, value);
        }
    }
    if if_none_match.is_some_and(|inm| matches(inm, &etag)) {
        let mut not_modified = Response::new(Full::new(Bytes::new()));
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [ETAG, VARY, CACHE_CONTROL] {
            if let Some(value) = response.headers().get(&name) {
                not_modified.headers_mut().insert(name, value.clone());
            }
        }
        not_modified
            .headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static(outcome));
        *response = not_modified;
        return true;
    }
    false
}

/// `If-None-Match` against an entity tag (weak comparison, as RFC 9110
/// asks for this header).
fn matches(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let etag = etag.to_str().map(bare).unwrap_or_default();
    list.split(',').any(|t| t.trim() == "*" || bare(t) == etag)
}

/// The request's `If-None-Match`.
pub fn if_none_match(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(IF_NONE_MATCH).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_responses_round_trip_and_private_ones_are_not_stored() {
        let response = Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
            .expect("valid");
        let stored = encode(&response).expect("storable");
        let back = decode(&stored).expect("decodes");
        assert_eq!(back.status(), 200);
        assert_eq!(back.headers(), response.headers());
        assert_eq!(body_bytes(&back), body_bytes(&response));
        let private = Response::builder()
            .header("cache-control", "max-age=5, private")
            .body(Full::new(Bytes::new()))
            .expect("valid");
        assert!(encode(&private).is_none());
        let created = Response::builder()
            .status(201)
            .body(Full::new(Bytes::new()))
            .expect("valid");
        assert!(encode(&created).is_none());
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let etag = HeaderValue::from_static("\"abc\"");
        for (header, expected) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
        ] {
            assert_eq!(
                matches(&HeaderValue::from_static(header), &etag),
                expected,
                "{header}"
            );
        }
    }
}
