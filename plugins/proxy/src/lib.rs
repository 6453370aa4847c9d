//! A plugin that fetches from an upstream: `GET /proxy/{*path}` answers
//! with the status, content type and body of `<upstream>/{path}` (the query
//! kept), where `upstream` is its setting (`[plugins.proxy.config]`). The
//! operator grants `outbound-http` and lists the upstream in
//! `allowed_outbound_hosts`; a refused or failed fetch is a problem+json
//! 502, 503 or 504.

use trellis_sdk::http;
use trellis_sdk::prelude::*;

fn app() -> App {
    App::new("proxy", env!("CARGO_PKG_VERSION"))
        .capability("config")
        .capability("outbound-http")
        .get("/proxy/{*path}", proxy)
}

fn proxy(req: Request) -> Result<Response> {
    let upstream = trellis_sdk::config::get("upstream")
        .ok_or_else(|| Error::internal("the plugin setting `upstream` is not set"))?;
    let path: String = req.param("path")?;
    let mut url = format!("{}/{path}", upstream.trim_end_matches('/'));
    let query: Vec<String> = req
        .query_pairs()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let mut fetch = http::get(url);
    if let Some(accept) = req.header("accept") {
        fetch = fetch.header("accept", accept);
    }
    let answer = fetch.send()?;
    let mut response = Response::new(answer.status).body(answer.body.clone());
    if let Some(content_type) = answer.header("content-type") {
        response = response.header("content-type", content_type);
    }
    Ok(response)
}

trellis_sdk::plugin!(app);
