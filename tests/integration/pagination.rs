//! The pagination convention: `?limit=`, opaque `?cursor=`, `next_cursor`
//! in the body and `Link: rel="next"` from the host.

use http::Method;
use trellis_tests::TestServer;

#[tokio::test]
async fn pages_follow_links_and_bad_cursors_are_400s() {
    let server = TestServer::start("").await;
    for i in 0..5 {
        let reply = server
            .send(
                Method::POST,
                "/notes",
                &[],
                format!(r#"{{"title":"n{i}"}}"#),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    // Follow the Link headers from the first page to the last.
    let mut path = "/notes?limit=2&fields=title".to_string();
    let mut titles = Vec::new();
    let mut pages = 0;
    loop {
        let reply = server.get(&path).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        for item in body["items"].as_array().expect("items") {
            titles.push(item["title"].as_str().expect("title").to_string());
        }
        pages += 1;
        assert!(pages <= 5, "pagination does not end");
        match reply.header("link") {
            Some(link) => {
                let next = body["next_cursor"]
                    .as_str()
                    .expect("a next_cursor with a Link");
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                assert!(
                    link.contains(next) && link.contains("fields=title"),
                    "{link}"
                );
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .expect("a target")
                    .to_string();
            }
            None => {
                assert!(body["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(titles, ["n0", "n1", "n2", "n3", "n4"]);

    // A cursor the endpoint did not make, and bad limits, are 400s.
    let first = server.get("/notes?limit=2").await.json();
    let cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    let mut tampered: Vec<char> = cursor.chars().collect();
    tampered[1] = if tampered[1] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for bad in [
        format!("/notes?cursor={tampered}"),
        "/notes?cursor=42".to_string(),
        "/notes?limit=0".to_string(),
        "/notes?limit=101".to_string(),
        "/notes?limit=ten".to_string(),
    ] {
        server.get(&bad).await.assert_problem(400, "bad_request");
    }
    server.shutdown().await;
}

/// 1,000 notes (created in batches), walked a page at a time while more
/// are inserted: every original note is seen exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_a_thousand_notes_sees_each_once_under_concurrent_inserts() {
    let server = TestServer::start("").await;
    for chunk in 0..10 {
        let operations: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                serde_json::json!({"method": "POST", "path": "/notes",
                                   "body": {"title": format!("walk {}", chunk * 100 + i)}})
            })
            .collect();
        let reply = server
            .send(
                Method::POST,
                "/api/v1/batch",
                &[],
                serde_json::json!({ "operations": operations }).to_string(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let created = reply.json()["results"]
            .as_array()
            .map(|r| r.iter().filter(|r| r["status"] == 201).count());
        assert_eq!(created, Some(100));
    }
    // Insert more while walking.
    let writer = {
        let client = TestServer::at(server.addr());
        tokio::spawn(async move {
            for i in 0..100 {
                let reply = client
                    .send(
                        Method::POST,
                        "/notes",
                        &[],
                        format!(r#"{{"title":"late {i}"}}"#),
                    )
                    .await;
                assert_eq!(reply.status, 201, "{}", reply.text());
            }
        })
    };
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut path = "/notes?limit=37&fields=title".to_string();
    for _ in 0..100 {
        let reply = server
            .send(Method::GET, &path, &[("cache-control", "no-cache")], "")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        for item in body["items"].as_array().expect("items") {
            *seen
                .entry(item["title"].as_str().expect("title").to_string())
                .or_default() += 1;
        }
        match body["next_cursor"].as_str() {
            Some(next) => path = format!("/notes?limit=37&fields=title&cursor={next}"),
            None => break,
        }
    }
    writer.await.expect("writer");
    assert!(seen.values().all(|n| *n == 1), "a note was seen twice");
    for i in 0..1000 {
        assert!(
            seen.contains_key(&format!("walk {i}")),
            "walk {i} was never seen"
        );
    }
    server.shutdown().await;
}
