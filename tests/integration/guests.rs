//! The same black-box suite against `hello` written in each guest language:
//! Rust (`plugins/hello`, with the SDK), Python (`plugins/python-hello`,
//! componentize-py) and JavaScript (`plugins/js-hello`, componentize-js).
//! A language whose toolchain this machine lacks is skipped with a notice;
//! CI's machine has them.

use http::Method;
use trellis_tests::{Protocol, TestServer, guest};

/// Builds a non-Rust guest with its script; `None` (after a notice) when
/// the toolchain is missing.
fn build(script: &str) -> Option<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::process::Command::new("bash")
        .arg(root.join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Some(String::from_utf8_lossy(&output.stdout).trim().to_string()),
        Some(3) => {
            eprintln!("{}", stderr.trim());
            None
        }
        _ => panic!("{script} failed:\n{stderr}"),
    }
}

/// Serves the `hello` component at `path` and runs the suite against it.
async fn check_hello(path: &str) {
    let server = TestServer::start(&format!(
        r#"
[plugins.hello]
path = {path:?}
grants = ["config"]
[plugins.hello.config]
greeting = "Hi"
"#
    ))
    .await;
    hello_suite(&server).await;
    server.shutdown().await;
}

/// What every `hello` must do, whatever it is written in.
async fn hello_suite(server: &TestServer) {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let reply = server
            .send_on(protocol, Method::GET, "/hello", &[], "")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "Hi, world!");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain"))
        );
        let reply = server
            .send_on(protocol, Method::GET, "/hello/Ada", &[], "")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["greeting"], "Hi, Ada!");
    }
    let reply = server
        .send(Method::GET, "/hello", &[("x-request-id", "lang-1")], "")
        .await;
    assert_eq!(reply.header("x-request-id"), Some("lang-1"));
    let head = server.send(Method::HEAD, "/hello", &[], "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let reply = server.send(Method::DELETE, "/hello", &[], "").await;
    let body = reply.assert_problem(405, "method_not_allowed");
    assert!(body["detail"].is_string());
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    server
        .get("/hello/a/b")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_rust() {
    check_hello(guest("hello")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_python() {
    if let Some(path) = build("plugins/python-hello/build.sh") {
        check_hello(&path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_javascript() {
    if let Some(path) = build("plugins/js-hello/build.sh") {
        check_hello(&path).await;
    }
}

/// componentize-py imports every interface of the world it builds
/// against; one that imports a capability it was not granted is refused
/// with the config line that would grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_without_its_grant_is_refused_by_name() {
    let Some(path) = build("plugins/python-hello/build.sh") else {
        return;
    };
    let toml = format!("[plugins.hello]\npath = {path:?}\ngrants = []\n");
    let Err(err) = trellis::Server::start(&trellis_tests::config(&toml)).await else {
        panic!("a plugin importing `config` loaded without the grant");
    };
    let message = err.to_string();
    assert!(
        message.contains("`config`") && message.contains("grants"),
        "{message}"
    );
}
