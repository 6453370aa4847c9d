//! TLS against real peers on loopback, with a CA made at test time: the
//! HTTPS listener over HTTP/1.1 and HTTP/2 (certificate reload, client
//! certificates, wrong CA), PostgreSQL with `ssl = on` (primary and
//! replica, `sslmode=verify-full`), `redis-server --tls-port`, and OTLP
//! export to an `https://` collector.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use trellis::Server;
use trellis_tests::kv::kv_toml;
use trellis_tests::otlp::OtlpReceiver;
use trellis_tests::pg::Pair;
use trellis_tests::redis::PrivateRedis;
use trellis_tests::tls::{Issued, TestCa};
use trellis_tests::webhook::Webhook;
use trellis_tests::{TestServer, config};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// `[server.tls]` for `issued`, plus `extra`.
fn tls_toml(issued: &Issued, extra: &str) -> String {
    format!(
        "[server.tls]\ncert = {:?}\nkey = {:?}\n{extra}",
        issued.cert.display().to_string(),
        issued.key.display().to_string()
    )
}

/// A client trusting `ca` that speaks HTTP/2 only, or HTTP/1.1 only.
fn client(ca: &TestCa, http2: bool, identity: Option<&Issued>) -> HttpsClient {
    // The connector offers ALPN itself: `h2` or `http/1.1` as enabled.
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(ca.client_config(&[], identity))
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(connector)
}

async fn get(
    client: &HttpsClient,
    server: &TestServer,
    path: &str,
) -> Result<(StatusCode, Version, String), String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("https://127.0.0.1:{}{path}", server.addr().port()))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (status, version) = (response.status(), response.version());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, version, String::from_utf8_lossy(&body).into_owned()))
}

/// The HTTPS listener serves HTTP/1.1 and HTTP/2 (ALPN) to clients that
/// trust its CA; a client with another CA fails naming the certificate
/// problem; a cleartext client gets no HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_listener_serves_http1_and_http2() {
    let ca = TestCa::new("listener");
    let server = TestServer::start(&tls_toml(&ca.server("server"), "")).await;
    for http2 in [false, true] {
        let (status, version, body) = get(&client(&ca, http2, None), &server, "/hello/tls")
            .await
            .expect("served over TLS");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("tls"), "{body}");
        let expected = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        assert_eq!(version, expected);
    }
    let other = TestCa::new("other");
    let err = get(&client(&other, false, None), &server, "/hello")
        .await
        .expect_err("a certificate from an unknown CA is refused");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Cleartext to the TLS port: no HTTP answer (rustls answers with an
    // alert, or the connection closes).
    let answer = trellis_tests::raw_exchange(
        server.addr(),
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(!answer.starts_with("HTTP/"), "{answer:?}");
    server.shutdown().await;
}

/// A certificate rotated on disk (as cert-manager does) is served to new
/// connections without a restart; a half-written pair keeps the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let first = TestCa::new("first");
    let issued = first.server("server");
    let server = TestServer::start(&tls_toml(&issued, "")).await;
    let (status, ..) = get(&client(&first, false, None), &server, "/hello")
        .await
        .expect("served with the first certificate");
    assert_eq!(status, 200);
    // A key alone, not matching the certificate: the old pair stays.
    let second = TestCa::new("second");
    let next = second.server("server");
    std::fs::copy(&next.key, &issued.key).expect("key replaced");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    get(&client(&first, false, None), &server, "/hello")
        .await
        .expect("the first certificate is still served");
    // Then the certificate: the new pair is served.
    std::fs::copy(&next.cert, &issued.cert).expect("certificate replaced");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A fresh client: a new connection, a new handshake.
        match get(&client(&second, false, None), &server, "/hello").await {
            Ok((status, ..)) => {
                assert_eq!(status, 200);
                break;
            }
            Err(err) => assert!(Instant::now() < deadline, "not reloaded: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}

/// With `client_ca`, a client without a certificate from that CA is
/// refused; one with a certificate is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_requires_a_client_certificate() {
    let ca = TestCa::new("mtls");
    let clients = TestCa::new("clients");
    let extra = format!("client_ca = {:?}\n", clients.cert().display().to_string());
    let server = TestServer::start(&tls_toml(&ca.server("server"), &extra)).await;
    let stranger = ca.client("stranger");
    let alert = refusal(&ca, &server, None).await;
    assert!(alert.contains("CertificateRequired"), "{alert}");
    let alert = refusal(&ca, &server, Some(&stranger)).await;
    assert!(alert.contains("UnknownCA"), "{alert}");
    for http2 in [false, true] {
        get(&client(&ca, http2, None), &server, "/hello")
            .await
            .expect_err("no client certificate");
        get(&client(&ca, http2, Some(&stranger)), &server, "/hello")
            .await
            .expect_err("a client certificate from another CA");
        let known = clients.client("known");
        let (status, ..) = get(&client(&ca, http2, Some(&known)), &server, "/hello")
            .await
            .expect("a known client is served");
        assert_eq!(status, 200);
    }
    server.shutdown().await;
}

/// The alert the server ends a handshake with, as the client reads it.
async fn refusal(ca: &TestCa, server: &TestServer, identity: Option<&Issued>) -> String {
    use tokio::io::AsyncReadExt;
    let config = ca.client_config(&[b"http/1.1"], identity);
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connected");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a name");
    match connector.connect(name, tcp).await {
        Err(err) => err.to_string(),
        // TLS 1.3: the client's handshake ends first; the server's verdict
        // on its certificate is the first thing it reads.
        Ok(mut tls) => {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await {
                Ok(Err(err)) => err.to_string(),
                other => format!("not refused: {other:?}"),
            }
        }
    }
}

/// Files that cannot serve stop the start with an error naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_mismatched_key_stops_the_start() {
    let ca = TestCa::new("broken");
    let one = ca.server("one");
    let two = ca.server("two");
    let start = |toml: String| async move {
        Server::start(&config(&toml))
            .await
            .expect_err("the server must not start")
            .to_string()
    };
    let mismatched = Issued {
        cert: one.cert.clone(),
        key: two.key.clone(),
    };
    let err = start(tls_toml(&mismatched, "")).await;
    assert!(err.contains("server.tls"), "{err}");
    assert!(err.contains("cannot serve the certificate"), "{err}");
    let missing = Issued {
        cert: one.cert.clone(),
        key: ca.dir().join("absent-key.pem"),
    };
    let err = start(tls_toml(&missing, "")).await;
    assert!(err.contains("absent-key.pem"), "{err}");
    let not_pem = Issued {
        cert: trellis_tests::temp_file("not-a-cert.pem", b"hello"),
        key: one.key.clone(),
    };
    let err = start(tls_toml(&not_pem, "")).await;
    assert!(err.contains("not-a-cert.pem"), "{err}");
}

/// PostgreSQL that accepts TLS only, primary and replica, with
/// `sslmode=verify-full` and the test CA as `sslrootcert`: the node
/// starts, provisions, writes and reads. With another CA the start fails
/// naming the certificate problem; `sslmode=disable` is refused by the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_verify_full() {
    let ca = TestCa::new("postgres");
    let issued = ca.server("postgres");
    let pair = Pair::start_tls(25472, &issued.cert, &issued.key);
    let url = |port: u16, query: &str| format!("{}?{query}", pair.url(port));
    let verify = format!("sslmode=verify-full&sslrootcert={}", ca.cert().display());
    let toml = |query: &str| {
        format!(
            "[sql.postgres]\nurl = {:?}\nnamespace = \"tls\"\nreplicas = [{:?}]\n\
             [sql.pool]\nacquire_timeout = \"2s\"\n\
             [plugins.notes]\nbuiltin = \"notes\"\ngrants = [\"sql\", \"cache\", \"jobs\"]\n",
            url(pair.primary_port, query),
            url(pair.replica_port, query),
        )
    };
    let server = TestServer::start(&toml(&verify)).await;
    let created = server
        .send(Method::POST, "/notes", &[], r#"{"title":"over tls"}"#)
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_i64().expect("an id");
    let read = server.get(&format!("/notes/{id}")).await;
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(server.get("/readyz").await.status, 200);
    server.shutdown().await;

    let other = TestCa::new("not-postgres");
    let wrong = format!("sslmode=verify-full&sslrootcert={}", other.cert().display());
    let err = Server::start(&config(&toml(&wrong)))
        .await
        .expect_err("a server certificate from an unknown CA")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let err = Server::start(&config(&toml("sslmode=disable")))
        .await
        .expect_err("cleartext is refused by the server")
        .to_string();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba"),
        "{err}"
    );
}

/// `rediss://` to a `redis-server` serving TLS only, trusting the test CA
/// through `redis.ca_file`: the node connects and its health says Redis
/// is up. Trusting only the system roots, it cannot connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_a_ca_file() {
    let ca = TestCa::new("redis");
    let issued = ca.server("redis");
    let redis = PrivateRedis::start_tls(&issued.cert, &issued.key);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let toml = |ca_file: &str| {
        kv_toml(&format!(
            "[redis]\nurl = {url:?}\nnamespace = {:?}\n{ca_file}",
            trellis_tests::redis::namespace()
        ))
    };
    let trusted = format!("ca_file = {:?}\n", ca.cert().display().to_string());
    let server = TestServer::start(&toml(&trusted)).await;
    let health = server.get("/api/v1/monitoring/health").await.json();
    let redis_check = health["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "redis"))
        .cloned()
        .expect("a redis check");
    assert_eq!(redis_check["status"], "ok", "{health}");
    assert_eq!(server.get("/readyz").await.status, 200);
    // A lock lives in Redis only: taking it goes over TLS.
    let locked = server
        .send(Method::POST, "/locks/tls/increment", &[], "")
        .await;
    assert_eq!(locked.status, 200, "{}", locked.text());
    server.shutdown().await;

    let untrusted = TestServer::start(&toml("")).await;
    assert_eq!(untrusted.get("/readyz").await.status, 503);
    untrusted.shutdown().await;
}

/// Alert notifications go to an `https://` webhook that the test CA
/// vouches for (`alerts.ca_file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_webhooks_over_https() {
    let ca = TestCa::new("webhook");
    let hook = Webhook::start_tls(&ca.server("hook")).await;
    assert!(hook.url().starts_with("https://"), "{}", hook.url());
    let server = TestServer::start(&format!(
        "[alerts]\nevaluation_interval = \"100ms\"\nwebhooks = [{:?}]\nca_file = {:?}\n\n\
         [[alerts.rules]]\nname = \"Always\"\nexpr = \"instances_in_use >= 0\"\n",
        hook.url(),
        ca.cert().display().to_string()
    ))
    .await;
    let delivered = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 1, "no notification arrived over https");
    assert_eq!(delivered[0]["alert"]["rule"], "Always", "{delivered:?}");
    server.shutdown().await;
}

/// Spans go to an `https://` OTLP collector that the test CA vouches for
/// (`telemetry.ca_file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_over_https() {
    let ca = TestCa::new("otlp");
    let receiver = OtlpReceiver::start_tls(&ca.server("collector")).await;
    let server = TestServer::start(&format!(
        "[telemetry]\notlp_endpoint = {:?}\nsampling_ratio = 1.0\nca_file = {:?}\n",
        receiver.endpoint(),
        ca.cert().display().to_string()
    ))
    .await;
    assert!(receiver.endpoint().starts_with("https://"));
    assert_eq!(server.get("/hello/otlp").await.status, 200);
    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| !spans.is_empty())
        .await;
    assert!(!spans.is_empty(), "no span arrived over https");
    server.shutdown().await;
}
