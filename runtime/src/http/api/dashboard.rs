//! `/dashboard`: one page, its script and styles inline, no external
//! assets; it polls the monitoring API (which needs the admin token), so
//! the page itself is public.
//! Layer: inside `http::api`.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

use super::{Call, get_only};
use crate::error::ApiError;

/// The page.
pub(super) async fn page(call: Call<'_>) -> Result<Response<Full<Bytes>>, ApiError> {
    get_only(call.parts)?;
    const PAGE: &str = include_str!("../../../assets/dashboard.html");
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self'",
        ),
    );
    Ok(response)
}
