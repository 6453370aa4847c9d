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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_is_431() {
    let server = TestServer::start("").await;
    let big = "a".repeat(32 * 1024);
    let request = format!("GET /hello HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n");
    let answer = raw_exchange(server.addr(), request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let server = TestServer::start("[server]\nheader_read_timeout = \"300ms\"\n").await;
    let started = Instant::now();
    // Never finishes its headers: the server must close the connection
    // itself, well before the client would give up.
    let _ = raw_exchange(
        server.addr(),
        b"GET /hello HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(30),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "connection was held open"
    );
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}
