//! hello and echo over HTTP/1.1 and HTTP/2: params, query, headers, body;
//! routing errors; request ids.

use http::Method;
use trellis_tests::{Protocol, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_over_http1_and_http2() {
    let server = TestServer::start("").await;
    let reply = server.get("/hello").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello, world!");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let reply = server
        .send_on(Protocol::Http2, Method::GET, "/hello/Ada", &[], "")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["greeting"], "Hello, Ada!");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_reflects_every_part_of_the_request() {
    let server = TestServer::start("").await;
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let path = "/echo/a/b%20c?x=1&y=two%20words&x=3";
        let headers = [("x-custom", "value-1"), ("content-type", "text/plain")];
        let reply = server
            .send_on(protocol, Method::PUT, path, &headers, "the body")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let echo = reply.json();
        assert_eq!(echo["method"], "PUT");
        assert_eq!(echo["path"], "/echo/a/b%20c");
        // The path as sent; its parameters percent-decoded.
        assert_eq!(echo["params"], serde_json::json!([["rest", "a/b c"]]));
        assert_eq!(
            echo["query"],
            serde_json::json!([["x", "1"], ["y", "two words"], ["x", "3"]])
        );
        let headers = echo["headers"].as_array().expect("headers array");
        assert!(headers.contains(&serde_json::json!(["x-custom", "value-1"])));
        assert_eq!(echo["body"], "the body");
        assert_eq!(
            echo["request_id"],
            reply.header("x-request-id").expect("id")
        );
    }
    server.shutdown().await;
}

/// Path parameters reach the guest percent-decoded (RFC 3986, UTF-8): an
/// encoded `/` stays inside its segment's value, and a value that is not
/// UTF-8 once decoded is a 400. (A mounted wasi:http component gets the
/// path as sent, as under `wasmtime serve`: it has no parameters.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_are_percent_decoded() {
    let server = TestServer::start("").await;
    let greeting = |reply: trellis_tests::Reply| reply.json()["greeting"].clone();
    assert_eq!(
        greeting(server.get("/hello/John%20Smith").await),
        "Hello, John Smith!"
    );
    assert_eq!(greeting(server.get("/hello/a%2Fb").await), "Hello, a/b!");
    assert_eq!(
        greeting(server.get("/hello/%C3%A9t%C3%A9").await),
        "Hello, été!"
    );
    server
        .get("/hello/%FF")
        .await
        .assert_problem(400, "bad_request");

    let created = server
        .send(
            Method::POST,
            "/notes",
            &[("content-type", "application/json")],
            r#"{"title":"encoded","body":"id"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].to_string();
    let encoded: String = id.bytes().map(|b| format!("%{b:02X}")).collect();
    let reply = server.get(&format!("/notes/{encoded}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["title"], "encoded");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_propagated_or_generated() {
    let server = TestServer::start("").await;
    let reply = server
        .send(Method::GET, "/hello", &[("x-request-id", "trace-42")], "")
        .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-42"));
    let reply = server.get("/hello").await;
    let generated = reply.header("x-request-id").expect("generated id");
    assert_eq!(generated.len(), 36);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let server = TestServer::start("").await;
    server
        .get("/nowhere")
        .await
        .assert_problem(404, "not_found");
    let reply = server.send(Method::DELETE, "/hello", &[], "").await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body() {
    let server = TestServer::start("").await;
    let reply = server.send(Method::HEAD, "/hello", &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("13"));
    assert!(reply.body.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_errors_are_problem_json_from_the_sdk() {
    let server = TestServer::start("").await;
    let reply = server
        .send(Method::POST, "/echo-json", &[], "{not json")
        .await;
    let body = reply.assert_problem(400, "bad_request");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON")
    );
    let reply = server
        .send(Method::POST, "/echo-json", &[], r#"{"a":[1,2]}"#)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"a": [1, 2]}));
    server.shutdown().await;
}
