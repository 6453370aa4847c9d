//! Standard `wasi:http/incoming-handler` components (`plugins/wasi-hello`,
//! built with the `wasip2` crate alone) mounted at a prefix: served with
//! streamed bodies both ways, and under the same limits, errors, tracing,
//! compression and metrics as our own world.

use std::time::Duration;

use async_compression::tokio::bufread::GzipDecoder;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;
use trellis_tests::{Protocol, TestServer, config, guest, raw_exchange};

const MIB: usize = 1 << 20;

fn mounted(limits: &str) -> String {
    format!(
        r#"
[plugins.wasi]
path = {wasi:?}
grants = []
mount = "/wasi"
[plugins.wasi.limits]
{limits}

[plugins.hello]
path = {hello:?}
grants = ["log", "config"]
"#,
        wasi = guest("wasi_hello"),
        hello = guest("hello"),
    )
}

/// The guest's `/upload` checksum.
fn fnv1a(bytes: &[u8]) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The guest's `/stream` pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + (i % (64 * 1024) % 26) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_http_component_serves_under_its_mount() {
    let server = TestServer::start(&mounted(
        "max_request_body = \"8MiB\"\nmax_response_body = \"8MiB\"",
    ))
    .await;
    for path in ["/wasi", "/wasi/", "/wasi/any/path?x=1"] {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let reply = server
                .send_on(protocol, Method::GET, path, &[], Bytes::new())
                .await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            assert_eq!(reply.text(), "Hello, world!");
            assert!(reply.header("x-request-id").is_some());
            assert!(reply.header("traceparent").is_some());
        }
    }
    // Our own plugins serve beside it, and paths beside the mount are not its.
    assert_eq!(server.get("/hello").await.status, 200);
    server.get("/wasix").await.assert_problem(404, "not_found");

    // A large response streams out whole, over both protocols.
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let reply = server
            .send_on(
                protocol,
                Method::GET,
                "/wasi/stream?bytes=5242880",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-length"), Some("5242880"));
        assert_eq!(reply.body.len(), 5 * MIB);
        assert!(reply.body[..] == pattern(5 * MIB)[..], "the bytes differ");
    }

    // A request body streams in: the guest reads it 64 KiB at a time.
    let upload: Vec<u8> = (0..3 * MIB + 17).map(|i| (i * 7 % 256) as u8).collect();
    let reply = server
        .send(Method::POST, "/wasi/upload", &[], upload.clone())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["bytes"], upload.len());
    assert_eq!(reply.json()["fnv1a"], fnv1a(&upload));

    // ... chunked, as a client streams it.
    let chunked = raw_exchange(
        server.addr(),
        b"POST /wasi/upload HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\
          connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert!(
        chunked.contains(&format!(
            "{{\"bytes\":11,\"fnv1a\":\"{}\"}}",
            fnv1a(b"hello world")
        )),
        "{chunked}"
    );

    // Compressed as our own responses are.
    let reply = server
        .send(
            Method::GET,
            "/wasi/stream?bytes=100000&type=text%2Fplain",
            &[("accept-encoding", "gzip")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert!(reply.body.len() < 10_000, "{} bytes", reply.body.len());
    let mut decoded = Vec::new();
    GzipDecoder::new(&reply.body[..])
        .read_to_end(&mut decoded)
        .await
        .expect("gzip");
    assert!(decoded == pattern(100_000));

    // Counted in the route metrics under the mount.
    let metrics = server.get("/metrics").await.text();
    let counted = metrics.lines().any(|line| {
        line.starts_with("trellis_http_requests_total")
            && line.contains("plugin=\"wasi\"")
            && line.contains("/wasi/{*path}")
    });
    assert!(counted, "no request count for the mount:\n{metrics}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_http_component_runs_under_the_plugin_limits() {
    let server = TestServer::start(&mounted(
        r#"deadline = "500ms"
memory = "16MiB"
max_concurrency = 1
max_queued = 0
max_request_body = "64KiB"
max_response_body = "1MiB""#,
    ))
    .await;
    // The one instance is free again when the previous guest call has
    // ended, which for a streamed or cut response can be just after the
    // client saw its end: allow it a moment.
    let still_serving = || async {
        let mut reply = server.get("/wasi").await;
        for _ in 0..200 {
            if reply.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            reply = server.get("/wasi").await;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
    };

    server
        .get("/wasi/spin")
        .await
        .assert_problem(504, "deadline_exceeded");
    still_serving().await;
    let body = server
        .get("/wasi/trap")
        .await
        .assert_problem(500, "guest_fault");
    assert!(body["detail"].as_str().unwrap_or("").contains("wasm trap"));
    still_serving().await;
    server
        .get("/wasi/memory")
        .await
        .assert_problem(500, "memory_limit");
    still_serving().await;

    // A declared body over the limit is refused before the guest runs; a
    // streamed one is cut off where it passes the limit (the guest sees
    // its stream fail).
    server
        .send(Method::POST, "/wasi/upload", &[], vec![0u8; 100_000])
        .await
        .assert_problem(413, "payload_too_large");
    let mut streamed = b"POST /wasi/upload HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\
          connection: close\r\n\r\n"
        .to_vec();
    for _ in 0..4 {
        streamed.extend_from_slice(format!("{:x}\r\n", 32 * 1024).as_bytes());
        streamed.extend(std::iter::repeat_n(b'x', 32 * 1024));
        streamed.extend_from_slice(b"\r\n");
    }
    streamed.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(server.addr(), &streamed, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    still_serving().await;

    // A response past the limit is cut: the head went out, the body stops.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{}/wasi/stream?bytes=4194304", server.addr());
    let response = client
        .get(uri.parse().expect("uri"))
        .await
        .expect("the head arrives");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await;
    assert!(body.is_err(), "a 4 MiB body passed a 1 MiB limit");
    still_serving().await;

    // One instance at a time and no queue: a second request is shed.
    // The spinning request holds the instance for its 500 ms deadline;
    // on a loaded machine it may reach the server late, or be shed itself
    // if a probe holds the instance at that moment, so probe until one is
    // shed while it spins, and start over (a few times) if it was shed.
    let mut outcome = Vec::new();
    for _ in 0..5 {
        let busy = tokio::spawn({
            let client = client.clone();
            let uri = format!("http://{}/wasi/spin", server.addr());
            async move { client.get(uri.parse().expect("uri")).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = server.get("/wasi").await;
        while probe.status == 200 && !busy.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            probe = server.get("/wasi").await;
        }
        let busy = busy.await.expect("joined").expect("answered").status();
        outcome.push((busy, probe.status));
        still_serving().await;
        if busy == 504 && probe.status == 503 {
            probe.assert_problem(503, "overloaded");
            assert!(probe.header("retry-after").is_some());
            break;
        }
    }
    assert!(
        outcome
            .last()
            .is_some_and(|&(busy, probe)| busy == 504 && probe == 503),
        "no request was shed while the instance was busy: (spin, probe) = {outcome:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_that_collides_is_refused_with_both_names() {
    let colliding = format!(
        r#"
[plugins.wasi]
path = {wasi:?}
grants = []
mount = "/hello"

[plugins.hello]
path = {hello:?}
grants = ["log", "config"]
"#,
        wasi = guest("wasi_hello"),
        hello = guest("hello"),
    );
    let Err(err) = trellis::server::Server::start(&config(&colliding)).await else {
        panic!("a mount over another plugin's route was accepted");
    };
    let message = err.to_string();
    assert!(
        message.contains("wasi") && message.contains("hello"),
        "{message}"
    );

    for (mount, why) in [
        ("wasi", "starts with `/`"),
        ("/wasi/", "starts with `/`"),
        ("/wasi/{x}", "starts with `/`"),
        ("/metrics", "served by the runtime"),
    ] {
        let toml = format!(
            "[plugins.wasi]\npath = {:?}\ngrants = []\nmount = {mount:?}\n",
            guest("wasi_hello")
        );
        let err = trellis::config::Config::parse(&toml, std::path::Path::new("t.toml"), [])
            .err()
            .unwrap_or_else(|| panic!("mount {mount} was accepted"));
        let message = err.to_string();
        assert!(
            message.contains("plugins.wasi.mount") && message.contains(why),
            "{mount}: {message}"
        );
    }
}

/// A component written for `wasi:config/store` reads its own plugin's
/// `[plugins.<name>.config]`: two plugins of the same file with the same
/// key each see their own value. Without the `config` grant it does not
/// load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_config_reads_each_plugins_own_settings() {
    let path = guest("wasi_config");
    let server = TestServer::start(&format!(
        "[plugins.one]\npath = {path:?}\n\n[plugins.one.config]\ncolour = \"red\"\nsize = 3\n\n\
         [plugins.two]\npath = {path:?}\n\n[plugins.two.config]\ncolour = \"blue\"\n"
    ))
    .await;
    let one = server.get("/one/?key=colour").await;
    assert_eq!((one.status.as_u16(), one.text().as_str()), (200, "red"));
    let two = server.get("/two/?key=colour").await;
    assert_eq!((two.status.as_u16(), two.text().as_str()), (200, "blue"));
    assert_eq!(server.get("/two/?key=size").await.status, 404);
    assert_eq!(server.get("/one/all").await.text(), "colour=red\nsize=3\n");
    server.shutdown().await;

    let err = trellis::Server::start(&trellis_tests::config(&format!(
        "[plugins.one]\npath = {path:?}\ngrants = []\n"
    )))
    .await
    .expect_err("wasi:config needs the config grant")
    .to_string();
    assert!(err.contains("capability `config`"), "{err}");
}

/// `CONNECT` reaches a mounted component with its target as sent. A 2xx
/// answer to it opens a tunnel and may carry no body (RFC 9110 §9.3.6):
/// one that does is the component's error, answered as problem+json,
/// where hyper alone would drop the connection without a word. An
/// authority-form target names no mount: a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reaches_the_mount_and_a_body_on_its_2xx_is_an_error() {
    let server = TestServer::start("").await;
    let wait = Duration::from_secs(5);
    let answer = raw_exchange(
        server.addr(),
        b"CONNECT /wasi_hello/method HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        wait,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("answer to CONNECT"), "{answer}");
    let answer = raw_exchange(
        server.addr(),
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\nconnection: close\r\n\r\n",
        wait,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // Other methods are the component's, body and all.
    let answer = raw_exchange(
        server.addr(),
        b"PROPFIND /wasi_hello/method HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        wait,
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("PROPFIND"),
        "{answer}"
    );
    server.shutdown().await;
}
