//! Outgoing HTTP from a mounted `wasi:http` component (the `wasi_hello`
//! example's `/fetch?url=`) to real origins on loopback: the allow-list,
//! private addresses, pooling, timeouts, the body limit, TLS and HTTP/2,
//! trace propagation and the metrics.

use std::time::{Duration, Instant};

use http::Version;
use trellis_tests::origin::Origin;
use trellis_tests::tls::TestCa;
use trellis_tests::{Reply, TestServer};

/// `wasi_hello` granted `outbound-http` with `hosts`, plus `extra` lines
/// of its `[plugins.wasi_hello.outbound]` table.
fn toml(hosts: &[String], extra: &str) -> String {
    format!(
        "[plugins.wasi_hello]\nbuiltin = \"wasi_hello\"\ngrants = [\"outbound-http\"]\n\
         allowed_outbound_hosts = {hosts:?}\n\n[plugins.wasi_hello.outbound]\n{extra}"
    )
}

fn encode(url: &str) -> String {
    form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

async fn fetch(server: &TestServer, url: &str) -> Reply {
    server
        .get(&format!("/wasi_hello/fetch?url={}", encode(url)))
        .await
}

/// An allowed origin is reached over HTTP/1.1; five requests share one
/// pooled connection; each carries a `traceparent` of the request's
/// trace; the metrics count them by host and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_is_reached_over_a_pooled_connection() {
    let origin = Origin::start().await;
    let server = TestServer::start(&toml(&[origin.url("")], "")).await;
    let mut trace_ids = Vec::new();
    for i in 0..5 {
        let reply = fetch(&server, &origin.url(&format!("/item/{i}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("upstream /item/{i}"));
        let ours = reply.header("traceparent").expect("a traceparent");
        trace_ids.push(ours.split('-').nth(1).expect("a trace id").to_string());
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 5);
    assert_eq!(origin.connections(), 1, "the pool reuses its connection");
    for (seen, trace_id) in seen.iter().zip(&trace_ids) {
        assert_eq!(seen.version, Version::HTTP_11);
        let upstream = seen.traceparent.as_deref().expect("traceparent upstream");
        assert!(
            upstream.contains(trace_id.as_str()),
            "{upstream} vs {trace_id}"
        );
    }
    let metrics = server.get("/metrics").await.text();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("trellis_outbound_requests_total") && l.contains("status=\"200\""))
        .unwrap_or_else(|| panic!("no outbound counter: {metrics}"));
    assert!(line.contains("plugin=\"wasi_hello\""), "{line}");
    assert!(line.contains("host=\"127.0.0.1\""), "{line}");
    assert!(line.ends_with(" 5"), "{line}");
    // The pool's own figures: one connection opened, still open (idle).
    let pool = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l.contains("plugin=\"wasi_hello\""))
            .unwrap_or_else(|| panic!("no {name}: {metrics}"))
            .to_string()
    };
    assert!(pool("trellis_outbound_connections_opened_total").ends_with(" 1"));
    assert!(pool("trellis_outbound_connections_open{").ends_with(" 1"));
    server.shutdown().await;
}

/// With `pool_idle_timeout = "0s"` every request opens its own
/// connection: the knob for an upstream that mishandles keep-alive, and
/// the fresh-connection side of the outbound benchmark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pooling_each_request_has_its_own_connection() {
    let origin = Origin::start().await;
    let server = TestServer::start(&toml(&[origin.url("")], "pool_idle_timeout = \"0s\"\n")).await;
    for i in 0..3 {
        let reply = fetch(&server, &origin.url(&format!("/item/{i}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(origin.seen().len(), 3);
    assert_eq!(origin.connections(), 3, "no connection reused");
    server.shutdown().await;
}

/// A host not on the list, a redirect to one and a plugin without the
/// grant are refused before any connection is opened to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_not_on_the_list_are_refused_without_a_connection() {
    let allowed = Origin::start().await;
    let other = Origin::start().await;
    let server = TestServer::start(&toml(&[allowed.url("")], "")).await;
    let refused = fetch(&server, &other.url("/secret")).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert!(
        refused.text().contains("HttpRequestDenied"),
        "{}",
        refused.text()
    );
    // The redirect reaches the guest as it is: following it would be a
    // request of its own, checked like this one.
    let redirect = format!("/redirect?to={}", other.url("/secret"));
    let reply = fetch(&server, &allowed.url(&redirect)).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let followed = fetch(&server, &other.url("/secret")).await;
    assert!(
        followed.text().contains("HttpRequestDenied"),
        "{}",
        followed.text()
    );
    assert_eq!(other.connections(), 0, "nothing reached the other origin");
    server.shutdown().await;

    // Without the grant, nothing goes out.
    let ungranted =
        TestServer::start("[plugins.wasi_hello]\nbuiltin = \"wasi_hello\"\ngrants = []\n").await;
    let refused = fetch(&ungranted, &allowed.url("/x")).await;
    assert!(
        refused.text().contains("HttpRequestDenied"),
        "{}",
        refused.text()
    );
    assert_eq!(allowed.connections(), 1, "only the first server's requests");
    ungranted.shutdown().await;
}

/// A wildcard entry does not reach loopback or private addresses, by
/// address or by a name that resolves to one; an entry naming the host
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_do_not_reach_private_addresses() {
    let origin = Origin::start().await;
    let wildcard = format!("http://*:{}", origin.port());
    let server = TestServer::start(&toml(&[wildcard], "")).await;
    for url in [
        origin.url("/x"),
        format!("http://localhost:{}/x", origin.port()),
    ] {
        let reply = fetch(&server, &url).await;
        assert_eq!(reply.status, 502, "{url}: {}", reply.text());
        assert!(
            reply.text().contains("DestinationIpProhibited"),
            "{url}: {}",
            reply.text()
        );
    }
    assert_eq!(origin.connections(), 0);
    server.shutdown().await;
    let named = format!("http://localhost:{}", origin.port());
    let server = TestServer::start(&toml(&[named], "")).await;
    let reply = fetch(&server, &format!("http://localhost:{}/x", origin.port())).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    server.shutdown().await;
}

/// The time to the response's head and the body's size are bounded by
/// the plugin's `outbound` table, with errors that say which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_the_body_limit_fire_as_configured() {
    let origin = Origin::start().await;
    let server = TestServer::start(&toml(
        &[origin.url("")],
        "first_byte_timeout = \"300ms\"\nmax_response_body = \"1MiB\"\n",
    ))
    .await;
    let started = Instant::now();
    let slow = fetch(&server, &origin.url("/slow")).await;
    assert_eq!(slow.status, 502, "{}", slow.text());
    assert!(
        slow.text().contains("HttpResponseTimeout"),
        "{}",
        slow.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let big = fetch(&server, &origin.url("/big")).await;
    assert_eq!(big.status, 502, "{}", big.text());
    // The guest sees the body break off with the limit named.
    let text = big.text();
    assert!(
        text.contains("HttpResponseBodySize") || text.contains("body size exceeds limit: 1048576"),
        "{text}"
    );
    // The node and the pool keep serving.
    assert_eq!(fetch(&server, &origin.url("/ok")).await.status, 200);
    server.shutdown().await;

    // Connecting is bounded too: a port nothing listens on is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let url = format!("http://127.0.0.1:{closed}");
    let server = TestServer::start(&toml(
        std::slice::from_ref(&url),
        "connect_timeout = \"500ms\"\n",
    ))
    .await;
    let reply = fetch(&server, &format!("{url}/x")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.text().contains("ConnectionRefused"),
        "{}",
        reply.text()
    );
    server.shutdown().await;
}

/// HTTPS to an origin with a certificate from a test CA
/// (`outbound.ca_file`), HTTP/2 by ALPN; without the CA the certificate
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http2_with_a_ca_file() {
    let ca = TestCa::new("origin");
    let origin = Origin::start_tls(&ca.server("origin")).await;
    let ca_file = format!("ca_file = {:?}\n", ca.cert().display().to_string());
    let server = TestServer::start(&toml(&[origin.url("")], &ca_file)).await;
    for i in 0..3 {
        let reply = fetch(&server, &origin.url(&format!("/tls/{i}"))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("upstream /tls/{i}"));
    }
    assert!(origin.seen().iter().all(|s| s.version == Version::HTTP_2));
    assert_eq!(origin.connections(), 1, "one HTTP/2 connection");
    server.shutdown().await;

    let untrusting = TestServer::start(&toml(&[origin.url("")], "")).await;
    let reply = fetch(&untrusting, &origin.url("/tls")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.text().contains("TlsCertificateError"),
        "{}",
        reply.text()
    );
    untrusting.shutdown().await;
}

/// Bad outbound config is named at start.
#[test]
fn bad_outbound_config_is_named() {
    let err = |toml: &str| {
        trellis::Config::parse(toml, std::path::Path::new("t.toml"), Vec::new())
            .expect_err("invalid")
            .to_string()
    };
    let e = err(
        "[plugins.w]\nbuiltin = \"wasi_hello\"\nallowed_outbound_hosts = [\"https://a.example\"]\n",
    );
    assert!(e.contains("outbound-http"), "{e}");
    let e = err(
        "[plugins.w]\nbuiltin = \"wasi_hello\"\ngrants = [\"outbound-http\"]\n\
         allowed_outbound_hosts = [\"https://a.example\", \"a.example\"]\n",
    );
    assert!(e.contains("allowed_outbound_hosts[1]"), "{e}");
}

/// The `proxy` example (our own world, `trellis_sdk::http`) with
/// `upstream` set to `origin` and `hosts` allowed.
fn proxy_toml(origin: &Origin, hosts: &[String]) -> String {
    format!(
        "[plugins.proxy]\npath = {:?}\ngrants = [\"config\", \"outbound-http\"]\n\
         allowed_outbound_hosts = {hosts:?}\n\n[plugins.proxy.config]\nupstream = {:?}\n",
        trellis_tests::guest("proxy"),
        origin.url(""),
    )
}

/// Our own world's `fetch`: the upstream's answer comes back through the
/// SDK over one pooled connection with the request's trace; redirects are
/// followed when their target is allowed and refused when it is not; a
/// plugin without the grant does not load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_world_fetch_pools_traces_and_checks_redirects() {
    let origin = Origin::start().await;
    let other = Origin::start().await;
    let server = TestServer::start(&proxy_toml(&origin, &[origin.url("")])).await;
    for i in 0..3 {
        let reply = server.get(&format!("/proxy/items/{i}?x=1")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("upstream /items/{i}"));
        let ours = reply
            .header("traceparent")
            .expect("a traceparent")
            .to_string();
        let trace_id = ours.split('-').nth(1).expect("a trace id").to_string();
        let seen = origin.seen();
        let upstream = seen.last().expect("seen");
        assert_eq!(upstream.target, format!("/items/{i}?x=1"));
        let parent = upstream
            .traceparent
            .as_deref()
            .expect("traceparent upstream");
        assert!(parent.contains(&trace_id), "{parent} vs {ours}");
    }
    assert_eq!(origin.connections(), 1, "one pooled connection");
    // A redirect within the allowed origin is followed ...
    let within = format!("/proxy/redirect?to={}", origin.url("/landed"));
    let reply = server.get(&within).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream /landed");
    // ... one to another host is refused before a connection.
    let away = format!("/proxy/redirect?to={}", other.url("/secret"));
    let reply = server.get(&away).await;
    let problem = reply.assert_problem(502, "bad_gateway");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not allowed")),
        "{problem}"
    );
    assert_eq!(other.connections(), 0);
    server.shutdown().await;

    let err = trellis::Server::start(&trellis_tests::config(&format!(
        "[plugins.proxy]\npath = {:?}\ngrants = [\"config\"]\n",
        trellis_tests::guest("proxy")
    )))
    .await
    .expect_err("outbound-http is not granted")
    .to_string();
    assert!(err.contains("capability `outbound-http`"), "{err}");
}

/// The SDK's errors: a timeout is a 504, a body over the limit a 502
/// naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_world_fetch_maps_timeouts_and_limits_to_problems() {
    let origin = Origin::start().await;
    let toml = format!(
        "{}\n[plugins.proxy.outbound]\nfirst_byte_timeout = \"300ms\"\nmax_response_body = \"1MiB\"\n",
        proxy_toml(&origin, &[origin.url("")])
    );
    let server = TestServer::start(&toml).await;
    server
        .get("/proxy/slow")
        .await
        .assert_problem(504, "gateway_timeout");
    let big = server
        .get("/proxy/big")
        .await
        .assert_problem(502, "bad_gateway");
    assert!(
        big["detail"]
            .as_str()
            .is_some_and(|d| d.contains("1048576")),
        "{big}"
    );
    assert_eq!(server.get("/proxy/ok").await.status, 200);
    server.shutdown().await;
}
