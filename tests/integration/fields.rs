//! Field selection: `?fields=` on plugin and built-in JSON responses.

use http::Method;
use trellis_tests::{TestServer, guest};

#[tokio::test]
async fn fields_select_nested_members_and_name_unknown_ones() {
    let server = TestServer::start("").await;
    for title in ["one", "two"] {
        let reply = server
            .send(
                Method::POST,
                "/notes",
                &[],
                format!(r#"{{"title":"{title}"}}"#),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    let note = server.get("/notes/1?fields=id,title").await;
    assert_eq!(note.status, 200, "{}", note.text());
    assert_eq!(note.json(), serde_json::json!({"id": 1, "title": "one"}));
    // The response cache keys on the selection.
    let other = server.get("/notes/1?fields=title").await;
    assert_eq!(other.json(), serde_json::json!({"title": "one"}));
    assert_eq!(
        server.get("/notes/1?fields=id,title").await.json(),
        serde_json::json!({"id": 1, "title": "one"})
    );
    // A list applies it to each item and keeps the envelope.
    let list = server.get("/notes?fields=title").await.json();
    assert_eq!(
        list,
        serde_json::json!({"items": [{"title": "one"}, {"title": "two"}], "next_cursor": null})
    );
    // Unknown and malformed selections are 400s naming the problem.
    let unknown = server.get("/notes/1?fields=id,author.name").await;
    let body = unknown.assert_problem(400, "bad_request");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("`author`"),
        "{body}"
    );
    server
        .get("/notes/1?fields=a..b")
        .await
        .assert_problem(400, "bad_request");
    // Errors pass through unselected.
    assert_eq!(server.get("/notes/99?fields=id").await.status, 404);
    // The runtime's own JSON too.
    let summary = server
        .get("/api/v1/monitoring/metrics?fields=uptime_s")
        .await
        .json();
    assert_eq!(
        summary
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["uptime_s".to_string()])
    );
    let errors = server
        .get("/api/v1/monitoring/errors?limit=5&fields=next_cursor")
        .await;
    assert_eq!(errors.status, 200, "{}", errors.text());
    assert_eq!(errors.json(), serde_json::json!({"next_cursor": null}));
    server.shutdown().await;
}

#[tokio::test]
async fn a_lenient_route_skips_unknown_fields() {
    let server = TestServer::start(&format!(
        "[plugins.kv]\npath = {:?}\ngrants = [\"cache\", \"lock\", \"sql\"]\n",
        guest("kv")
    ))
    .await;
    let reply = server.get("/kv/k?fields=key,nope").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), serde_json::json!({"key": "k"}));
    server.shutdown().await;
}
