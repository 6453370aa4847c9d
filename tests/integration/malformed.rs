//! Bad input gets a clear error and the server keeps serving: broken
//! configs, files that are not plugins, route conflicts, missing grants,
//! truncated and oversized HTTP.

use std::time::{Duration, Instant};

use trellis::{Config, Server};
use trellis_tests::{TestServer, config, raw_exchange, temp_file};

async fn start_error(toml: &str) -> String {
    let config = config(toml);
    Server::start(&config)
        .await
        .expect_err("the server must refuse this config")
        .to_string()
}

#[test]
fn config_that_is_not_toml_names_the_line() {
    let path = temp_file(
        "broken.toml",
        b"[server]\nlisten = \"127.0.0.1:1\"\nthis is not toml\n",
    );
    let err = Config::load(Some(&path)).expect_err("not TOML").to_string();
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn unknown_config_key_is_named() {
    let path = temp_file("unknown.toml", b"[limits]\ndeadlien = \"1s\"\n");
    let err = Config::load(Some(&path))
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("deadlien"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_wasm_is_refused() {
    let path = temp_file("notes.txt", b"hello, I am not a plugin");
    let err = start_error(&format!("[plugins.bad]\npath = {:?}\n", path.display())).await;
    assert!(err.contains("plugin `bad`"), "{err}");
    assert!(err.contains("not WebAssembly"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_module_is_refused_with_a_hint() {
    // The smallest valid core module: magic and version 1.
    let path = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    let err = start_error(&format!("[plugins.core]\npath = {:?}\n", path.display())).await;
    assert!(err.contains("core WebAssembly module"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_without_the_world_is_refused() {
    // The smallest valid component: magic, component version and layer.
    let path = temp_file("empty.wasm", b"\0asm\x0d\0\x01\0");
    let err = start_error(&format!("[plugins.empty]\npath = {:?}\n", path.display())).await;
    assert!(
        err.contains("does not export `trellis:plugin/manifest`: it is not a Trellis plugin"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_conflict_names_both_plugins() {
    let err =
        start_error("[plugins.one]\nbuiltin = \"hello\"\n[plugins.two]\nbuiltin = \"hello\"\n")
            .await;
    assert!(err.contains("route conflict"), "{err}");
    assert!(err.contains("plugin one"), "{err}");
    assert!(err.contains("plugin two"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_without_a_grant_is_refused_with_the_fix() {
    let err = start_error("[plugins.hello]\nbuiltin = \"hello\"\ngrants = [\"log\"]\n").await;
    assert!(err.contains("`config`"), "{err}");
    assert!(err.contains("grants"), "{err}");
    assert!(err.contains("[plugins.hello]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_garbage_requests_do_not_hurt_the_server() {
    let server = TestServer::start("").await;
    let wait = Duration::from_secs(5);
    // Headers cut off mid-way, then the client goes away.
    let _ = raw_exchange(
        server.addr(),
        b"GET /hello HTTP/1.1\r\nHost: x\r\nAcc",
        Duration::from_millis(200),
    )
    .await;
    // Not HTTP at all.
    let answer = raw_exchange(server.addr(), b"\x16\x03\x01garbage\r\n\r\n", wait).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // A body shorter than its content-length, then EOF.
    let _ = raw_exchange(
        server.addr(),
        b"POST /echo/x HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\nshort",
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

/// The status, headers and JSON body of a raw HTTP/1.1 answer that must be
/// problem+json carrying the request id of its header.
fn problem(answer: &str, status: u16) -> serde_json::Value {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {answer:.300}"
    );
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(json["status"], status, "{json}");
    let id = json["request_id"].as_str().expect("a request id");
    assert!(head.contains(&format!("x-request-id: {id}")), "{head}");
    json
}

/// What hyper refuses before a request reaches the pipeline is answered
/// like everything else: problem+json with a request id. A 1 MB header or
/// query, 10,000 `?fields=` entries, a raw `0xff` in the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_refuses_get_problem_json() {
    let server = TestServer::start("").await;
    let wait = Duration::from_secs(10);
    let big = "a".repeat(1 << 20);
    let header = format!("GET /hello HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n");
    let query = format!("GET /hello?q={big} HTTP/1.1\r\nHost: x\r\n\r\n");
    let fields = format!(
        "GET /notes?fields={} HTTP/1.1\r\nHost: x\r\n\r\n",
        vec!["a"; 10_000].join(",")
    );
    for request in [header, query, fields] {
        let answer = raw_exchange(server.addr(), request.as_bytes(), wait).await;
        let json = problem(&answer, 431);
        assert_eq!(json["code"], "headers_too_large", "{json}");
        assert!(
            json["detail"].as_str().is_some_and(|d| d.contains("16384")),
            "{json}"
        );
    }
    let answer = raw_exchange(
        server.addr(),
        b"GET /hel\xfflo HTTP/1.1\r\nHost: x\r\n\r\n",
        wait,
    )
    .await;
    assert_eq!(problem(&answer, 400)["code"], "bad_request");
    let answer = raw_exchange(
        server.addr(),
        b"GET /hello HTTP/1.1\r\nHost x\r\n\r\n",
        wait,
    )
    .await;
    problem(&answer, 400);
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

/// A client that starts a request and does not finish its headers in
/// time gets a 408 and the connection is closed, well before the client
/// would give up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_with_408() {
    let server = TestServer::start("[server]\nheader_read_timeout = \"300ms\"\n").await;
    let started = Instant::now();
    let answer = raw_exchange(
        server.addr(),
        b"GET /hello HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "connection was held open"
    );
    let json = problem(&answer, 408);
    assert_eq!(json["code"], "request_timeout", "{json}");
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

/// An HTTP/1.1 client that asks for a large response and stops reading
/// does not hold the connection: once the socket has taken no bytes for
/// `server.send_timeout`, the server closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BYTES: usize = 24 << 20;
    let server = TestServer::start(&format!(
        "[server]\nsend_timeout = \"1s\"\n\
         [plugins.misbehave]\npath = {:?}\ngrants = [\"config\", \"sql\"]\n\
         [plugins.misbehave.limits]\nmemory = \"128MiB\"\nmax_response_body = \"32MiB\"\n",
        trellis_tests::guest("misbehave")
    ))
    .await;
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("a small receive buffer");
    let mut stream = socket.connect(server.addr()).await.expect("connected");
    let request = format!("GET /misbehave/big?bytes={BYTES} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    // Read nothing for well over the send timeout...
    tokio::time::sleep(Duration::from_secs(4)).await;
    // ...then the server has given up: what it had written, then the end.
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection was held open");
    assert!(
        received.len() < BYTES,
        "the whole response arrived: {} bytes",
        received.len()
    );
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &received[..received.len().min(100)]
    );
    assert_eq!(server.get("/misbehave/ok").await.status, 200);
    server.shutdown().await;
}

/// An HTTP/2 stream whose client keeps its flow-control window shut is
/// reset after `server.send_timeout` once its response is ready; the
/// connection and the server serve on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_with_a_shut_window_is_reset() {
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let server = TestServer::start("[server]\nsend_timeout = \"1s\"\n").await;
    let tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connected");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake::<_, http_body_util::Empty<bytes::Bytes>>(TokioIo::new(tcp))
        .await
        .expect("an HTTP/2 connection");
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/hello", server.addr()))
        .body(http_body_util::Empty::new())
        .expect("a request");
    let response = sender
        .send_request(request)
        .await
        .expect("response headers");
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect()).await;
    let after = started.elapsed();
    let err = body
        .expect("the stream was held open")
        .expect_err("no body can arrive");
    assert!(format!("{err:?}").contains("CANCEL"), "{err:?}");
    assert!(after >= Duration::from_millis(800), "reset after {after:?}");
    // The connection itself is still up.
    assert!(!connection.is_finished(), "the connection was closed");
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

/// The frames an HTTP/2 server sent on `stream` until `until` holds for one
/// (type, flags, payload), or the connection ended (`None`), or `limit`
/// passed (a panic).
fn read_h2_frames(
    stream: &mut std::net::TcpStream,
    limit: Duration,
    until: impl Fn(u8, &[u8]) -> bool,
) -> Option<(u8, Vec<u8>)> {
    use std::io::Read;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no such frame within {limit:?}");
        stream.set_read_timeout(Some(left)).expect("timeout set");
        let mut head = [0u8; 9];
        if stream.read_exact(&mut head).is_err() {
            return None;
        }
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; length];
        if stream.read_exact(&mut payload).is_err() {
            return None;
        }
        if until(head[3], &payload) {
            return Some((head[3], payload));
        }
    }
}

/// HTTP/2 limits are the configured ones, and a client that stops
/// answering pings is disconnected: its connection slot is not held
/// forever. Spoken frame by frame over a raw socket, as such a client would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_announces_its_limits_and_drops_a_client_that_stops_answering() {
    use std::io::Write;
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    let server = TestServer::start(
        "[server]\nhttp2_max_concurrent_streams = 7\n\
         http2_keep_alive_interval = \"200ms\"\nhttp2_keep_alive_timeout = \"300ms\"\n",
    )
    .await;
    let addr = server.addr();
    let (settings, closed) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connected");
        // The preface and an empty SETTINGS frame, then silence.
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .expect("preface sent");
        let (_, settings) = read_h2_frames(&mut stream, Duration::from_secs(5), |kind, _| {
            kind == SETTINGS
        })
        .expect("the server's SETTINGS");
        // A ping comes, goes unanswered, and the server gives up on us.
        let started = Instant::now();
        let ping = read_h2_frames(&mut stream, Duration::from_secs(10), |kind, _| kind == PING);
        assert!(ping.is_some(), "no keep-alive ping");
        let end = read_h2_frames(&mut stream, Duration::from_secs(10), |kind, _| {
            kind == GOAWAY
        });
        (settings, (end.map(|(kind, _)| kind), started.elapsed()))
    })
    .await
    .expect("joined");
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3), in 6-byte (id, value) entries.
    let max_streams = settings.chunks_exact(6).find_map(|entry| {
        (u16::from_be_bytes([entry[0], entry[1]]) == 0x3)
            .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
    });
    assert_eq!(max_streams, Some(7), "settings: {settings:?}");
    let (ended_by, after) = closed;
    assert!(
        ended_by.is_none() || ended_by == Some(GOAWAY),
        "the connection was not closed: {ended_by:?}"
    );
    assert!(
        after < Duration::from_secs(10),
        "closed {after:?} after the ping"
    );
    // The server itself serves on.
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

/// An idle HTTP/1.1 keep-alive connection is closed once the next
/// request's headers have not come within `server.header_read_timeout`, so
/// idle clients do not hold connection slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed() {
    use std::io::{Read, Write};
    let server = TestServer::start("[server]\nheader_read_timeout = \"300ms\"\n").await;
    let addr = server.addr();
    let (answered, idle_for) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connected");
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .expect("request sent");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout set");
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while !response.ends_with(b"Hello, world!") {
            let n = stream.read(&mut buf).expect("the response");
            assert!(n > 0, "closed before answering");
            response.extend_from_slice(&buf[..n]);
        }
        // Keep-alive, then silence: the server closes the connection.
        let idle = Instant::now();
        let n = stream.read(&mut buf).unwrap_or(0);
        (
            String::from_utf8_lossy(&response).to_string(),
            (n, idle.elapsed()),
        )
    })
    .await
    .expect("joined");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let (read, after) = idle_for;
    assert_eq!(read, 0, "the idle connection was not closed");
    assert!(after < Duration::from_secs(5), "closed after {after:?}");
    server.shutdown().await;
}

/// An HTTP/2 client that keeps its connection open but sends nothing is
/// sent GOAWAY after `server.idle_timeout`: a live but idle client does
/// not hold a connection slot forever either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_gets_goaway() {
    use std::io::Write;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    let server = TestServer::start(
        "[server]\nidle_timeout = \"300ms\"\nhttp2_keep_alive_interval = \"0s\"\n",
    )
    .await;
    let addr = server.addr();
    let ended = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connected");
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .expect("preface sent");
        read_h2_frames(&mut stream, Duration::from_secs(5), |kind, _| {
            kind == SETTINGS
        })
        .expect("the server's SETTINGS");
        // Acknowledge them, as a well-behaved client does, then idle.
        stream
            .write_all(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            .expect("settings acknowledged");
        let started = Instant::now();
        let end = read_h2_frames(&mut stream, Duration::from_secs(10), |kind, _| {
            kind == GOAWAY
        });
        (end.map(|(kind, _)| kind), started.elapsed())
    })
    .await
    .expect("joined");
    assert_eq!(ended.0, Some(GOAWAY), "no GOAWAY: {ended:?}");
    assert!(ended.1 < Duration::from_secs(10), "{ended:?}");
    server.shutdown().await;
}

/// A request answered before its body is read — an upload without a token
/// (401), a body over `limits.max_request_body` (413) — is answered while
/// the client is still sending, with `connection: close` so that a pooling
/// client does not send its next request on a connection that is closing;
/// the server reads and drops the rest rather than resetting the
/// connection under its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_closes_the_connection_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start("").await;
    let length = 8 << 20;
    let heads = [
        (401, "PUT /admin/plugins/hello HTTP/1.1\r\nHost: x\r\n"),
        (413, "POST /echo/x HTTP/1.1\r\nHost: x\r\n"),
    ];
    for (status, head) in heads {
        let stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let (mut read, mut write) = stream.into_split();
        let request = format!("{head}content-length: {length}\r\n\r\nfirst bytes");
        write
            .write_all(request.as_bytes())
            .await
            .expect("head sent");
        // The answer comes while most of the body is still to be sent.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("\"request_id\"") {
            let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk))
                .await
                .expect("answered before the body was sent")
                .expect("read");
            assert!(n > 0, "closed before answering: {answer:?}");
            answer.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        problem(&text, status);
        assert!(text.contains("connection: close"), "{text:.400}");
        // The rest of the body is taken and dropped; then the server
        // closes the connection without a reset.
        let writer = tokio::spawn(async move {
            let body = vec![b'x'; 64 << 10];
            let mut sent = 0;
            while sent < length {
                if write.write_all(&body).await.is_err() {
                    break;
                }
                sent += body.len();
            }
        });
        let rest = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection");
        assert!(rest.is_ok(), "{rest:?}");
        writer.abort();
    }
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}
