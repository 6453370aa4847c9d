//! The host's half of the pagination convention (`?limit=`, `?cursor=`,
//! `{"items": [...], "next_cursor": ...}`; the SDK's `page` module is the
//! plugin's half): a 2xx JSON response whose body has a string
//! `next_cursor` gets `Link: <path?…&cursor=…>; rel="next"`, the request's
//! other query parameters kept.
//! Layer: inside `http` (beside `convert`); nothing below `http`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LINK};
use http::{HeaderValue, Response, Uri};
use http_body_util::Full;

/// Bodies larger than this are not searched for a cursor.
const MAX_SCANNED: usize = 1 << 20;

/// Adds the `Link: rel="next"` header when the body names a next page.
pub fn link_next(response: &mut Response<Full<Bytes>>, uri: &Uri) {
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !response.status().is_success() || !json || response.headers().contains_key(LINK) {
        return;
    }
    let body = super::convert::body_bytes(response);
    let pattern = b"\"next_cursor\"";
    if body.len() > MAX_SCANNED || !body.windows(pattern.len()).any(|w| w == pattern) {
        return;
    }
    let next = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("next_cursor")?.as_str().map(str::to_string));
    let Some(next) = next else {
        return;
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if key != "cursor" {
            query.append_pair(&key, &value);
        }
    }
    query.append_pair("cursor", &next);
    let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
    if let Ok(value) = HeaderValue::from_str(&link) {
        response.headers_mut().insert(LINK, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Response<Full<Bytes>> {
        Response::builder()
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("valid")
    }

    #[test]
    fn a_next_cursor_becomes_a_link_keeping_the_other_parameters() {
        let uri: Uri = "/notes?limit=2&cursor=old&fields=id".parse().expect("uri");
        let mut page = json(r#"{"items":[1,2],"next_cursor":"abc_-"}"#);
        link_next(&mut page, &uri);
        assert_eq!(
            page.headers()[LINK],
            "</notes?limit=2&fields=id&cursor=abc_->; rel=\"next\""
        );
        let mut last = json(r#"{"items":[1],"next_cursor":null}"#);
        link_next(&mut last, &uri);
        assert!(!last.headers().contains_key(LINK));
        let mut other = json(r#"{"id":1}"#);
        link_next(&mut other, &uri);
        assert!(!other.headers().contains_key(LINK));
    }
}
