//! `POST /api/v1/batch`: operations through the whole pipeline, each with
//! its own status, in order; bounds and refusals.

use http::Method;
use serde_json::json;
use trellis_tests::TestServer;

async fn batch(server: &TestServer, body: serde_json::Value) -> trellis_tests::Reply {
    server
        .send(
            Method::POST,
            "/api/v1/batch",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
}

#[tokio::test]
async fn operations_run_through_the_pipeline_with_their_own_status() {
    let server = TestServer::start("").await;
    let reply = batch(
        &server,
        json!({"operations": [
            {"id": "hello", "method": "GET", "path": "/hello/Ada"},
            {"id": "create", "method": "POST", "path": "/notes", "body": {"title": "batched"}},
            {"id": "dup", "method": "POST", "path": "/notes", "body": {"title": "batched"}},
            {"id": "missing", "method": "GET", "path": "/nowhere"},
            {"id": "select", "method": "GET", "path": "/hello/Bob?fields=greeting"},
            {"id": "text", "method": "POST", "path": "/echo/x", "body": "raw text",
             "headers": {"x-extra": "1"}},
            {"id": "bad", "method": "NOT A METHOD", "path": "/hello"},
            {"id": "nested", "method": "POST", "path": "/api/v1/batch", "body": {"operations": []}},
        ]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results = reply.json()["results"].clone();
    let status = |i: usize| results[i]["status"].as_u64();
    let ids: Vec<&str> = results
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [
            "hello", "create", "dup", "missing", "select", "text", "bad", "nested"
        ]
    );
    assert_eq!(status(0), Some(200));
    assert_eq!(results[0]["body"]["greeting"], "Hello, Ada!");
    // Operations run concurrently, so either create may win; one is a 409.
    let mut creates = [status(1), status(2)];
    creates.sort();
    assert_eq!(creates, [Some(201), Some(409)]);
    let created = if status(1) == Some(201) { 1 } else { 2 };
    assert_eq!(results[created]["body"]["title"], "batched");
    assert_eq!(status(3), Some(404));
    assert_eq!(results[3]["body"]["code"], "not_found");
    assert_eq!(results[4]["body"], json!({"greeting": "Hello, Bob!"}));
    assert_eq!(results[5]["body"]["body"], "raw text");
    assert!(
        results[5]["body"]["headers"]
            .to_string()
            .contains("x-extra")
    );
    assert_eq!(status(6), Some(400));
    assert_eq!(status(7), Some(400));
    // Each operation has a request id of its own, derived from the batch's.
    let batch_id = reply.header("x-request-id").expect("id");
    assert_eq!(
        results[0]["headers"]["x-request-id"],
        format!("{batch_id}-0")
    );
    // The note really exists.
    let id = results[created]["body"]["id"].as_i64().expect("an id");
    assert_eq!(server.get(&format!("/notes/{id}")).await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn batches_are_bounded_and_malformed_ones_refused() {
    let server = TestServer::start("[batch]\nmax_operations = 3\n").await;
    let op = json!({"method": "GET", "path": "/hello"});
    batch(&server, json!({"operations": [op, op, op, op]}))
        .await
        .assert_problem(413, "too_many_operations");
    batch(&server, json!({"operations": [op], "atomic": true}))
        .await
        .assert_problem(501, "not_implemented");
    batch(&server, json!({"ops": []}))
        .await
        .assert_problem(400, "bad_request");
    server
        .get("/api/v1/batch")
        .await
        .assert_problem(405, "method_not_allowed");
    let ok = batch(&server, json!({"operations": [op, op, op]})).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    server.shutdown().await;
}
