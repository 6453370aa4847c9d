//! The same black-box suite against `hello` written in each guest language:
//! Rust (`plugins/hello`, with the SDK), Python (`plugins/python-hello`,
//! componentize-py) and JavaScript (`plugins/js-hello`, componentize-js).
//! A language whose toolchain this machine lacks is skipped with a notice;
//! CI's machine has them.

use http::Method;
use trellis_tests::{Protocol, TestServer, guest};

/// Builds a non-Rust guest with its script; `None` (after a notice) when
/// the toolchain is missing.
pub(crate) fn build(script: &str) -> Option<String> {
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

/// The Python notes example over `sql`: its migration makes the table, it
/// stores and reads notes back, and the database's unique constraint
/// becomes its 409 — on SQLite (the default) and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_in_python_over_sql() {
    let Some(path) = build("plugins/python-notes/build.sh") else {
        return;
    };
    let plugin = format!("[plugins.python-notes]\npath = {path:?}\ngrants = [\"sql\"]\n");
    let server = TestServer::start(&plugin).await;
    notes_suite(&server).await;
    server.shutdown().await;

    let namespace = trellis_tests::pg::Namespace::new().await;
    let server = TestServer::start(&format!("{}\n{plugin}", namespace.toml())).await;
    notes_suite(&server).await;
    server.shutdown().await;
    namespace.drop_all().await;
}

async fn notes_suite(server: &TestServer) {
    let json = [("content-type", "application/json")];
    let created = server
        .send(
            Method::POST,
            "/python-notes",
            &json,
            r#"{"title": "first", "body": "from Python"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let note = created.json();
    let id = note["id"].as_i64().expect("an id");
    assert_eq!(
        created.header("location"),
        Some(format!("/python-notes/{id}").as_str())
    );
    let read = server.get(&format!("/python-notes/{id}")).await;
    assert_eq!(read.json(), note);
    server
        .send(
            Method::POST,
            "/python-notes",
            &json,
            r#"{"title": "second"}"#,
        )
        .await;
    let list = server.get("/python-notes").await.json();
    let titles: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["title"].as_str())
        .collect();
    assert_eq!(titles, ["second", "first"]);

    let again = server
        .send(
            Method::POST,
            "/python-notes",
            &json,
            r#"{"title": "first"}"#,
        )
        .await;
    let body = again.assert_problem(409, "conflict");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("first")));
    let bad = server
        .send(Method::POST, "/python-notes", &json, r#"{"title": 7}"#)
        .await;
    let body = bad.assert_problem(400, "bad_request");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`title`"))
    );
    server
        .get("/python-notes/999999")
        .await
        .assert_problem(404, "not_found");
    server
        .get("/python-notes/x")
        .await
        .assert_problem(400, "bad_request");
}

/// The JavaScript cache example: values stored, read, deleted; a computed
/// result served from the cache the second time; a value over the plugin's
/// cache limit is its 413, from the host's typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_in_javascript() {
    let Some(path) = build("plugins/js-cache/build.sh") else {
        return;
    };
    let server = TestServer::start(&format!(
        "[plugins.js-cache]\npath = {path:?}\ngrants = [\"cache\"]\n\
         [plugins.js-cache.limits]\nmax_cache_value = \"1KiB\"\n"
    ))
    .await;
    let put = server
        .send(Method::PUT, "/js-cache/values/greeting", &[], "hello")
        .await;
    assert_eq!(put.status, 204, "{}", put.text());
    let got = server.get("/js-cache/values/greeting").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hello");
    let deleted = server
        .send(Method::DELETE, "/js-cache/values/greeting", &[], "")
        .await;
    assert_eq!(deleted.status, 204);
    server
        .get("/js-cache/values/greeting")
        .await
        .assert_problem(404, "not_found");

    let first = server.get("/js-cache/squares/1000").await;
    assert_eq!(first.header("x-cache"), Some("miss"), "{}", first.text());
    assert_eq!(first.json()["sum"], "333833500");
    let second = server.get("/js-cache/squares/1000").await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.json(), first.json());

    let big = "x".repeat(4096);
    let body = server
        .send(Method::PUT, "/js-cache/values/big", &[], big)
        .await
        .assert_problem(413, "content_too_large");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("1024")),
        "{body}"
    );
    server
        .send(Method::PUT, "/js-cache/values/k?ttl_ms=0", &[], "v")
        .await
        .assert_problem(400, "bad_request");
    server.shutdown().await;
}

/// A plugin built against `trellis:plugin@0.1.0`, the first released WIT
/// (`plugins/hello-v010`, its WIT frozen, no SDK), loads and serves under
/// this runtime: its imports (`log`, `config` at 0.1.0) link, its exports
/// are called, and it gets what a newer plugin gets (decoded parameters,
/// its settings). Compatibility within 0.1.x is tested, not assumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_the_first_wit_still_serves() {
    let path = guest("hello_v010");
    let server = TestServer::start(&format!(
        "[plugins.old]\npath = {path:?}\n\n[plugins.old.config]\ngreeting = \"Hej\"\n"
    ))
    .await;
    let reply = server.get("/v010/Ada%20L").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["greeting"], "Hej, Ada L!");
    let plugins = server.get("/admin/plugins").await.json();
    let text = plugins.to_string();
    assert!(text.contains("\"old\""), "{text}");
    server.shutdown().await;
}
