//! The HTTP response cache: ETag and 304, `no-cache`, tag invalidation,
//! vary headers, on the `notes` example and the `kv` test plugin.

use http::Method;
use trellis_tests::TestServer;

use trellis_tests::kv::{kv_toml, metric};

#[tokio::test]
async fn notes_reads_are_cached_and_writes_invalidate_them() {
    let server = TestServer::start("").await;
    let created = server
        .send(
            Method::POST,
            "/notes",
            &[],
            r#"{"title":"cached","body":"v1"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_i64().expect("id");
    let path = format!("/notes/{id}");

    let first = server.get(&path).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-trellis-cache"), Some("miss"));
    let etag = first.header("etag").expect("an ETag").to_string();
    let second = server.get(&path).await;
    assert_eq!(second.header("x-trellis-cache"), Some("hit"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    assert_eq!(second.header("content-type"), first.header("content-type"));

    // If-None-Match → 304 without a body.
    let revalidated = server
        .send(Method::GET, &path, &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));

    // Cache-Control: no-cache goes to the plugin.
    let bypass = server
        .send(Method::GET, &path, &[("cache-control", "no-cache")], "")
        .await;
    assert_eq!(bypass.header("x-trellis-cache"), Some("bypass"));

    // An update invalidates the note's tag: the next read is fresh.
    let updated = server
        .send(Method::PUT, &path, &[], r#"{"title":"cached","body":"v2"}"#)
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let after = server.get(&path).await;
    assert_eq!(after.header("x-trellis-cache"), Some("miss"));
    assert_eq!(after.json()["body"], "v2");
    assert_ne!(after.header("etag"), Some(etag.as_str()));
    // The old ETag no longer matches.
    let stale = server
        .send(Method::GET, &path, &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(stale.status, 200);

    // The list is cached too, and a create invalidates it.
    assert_eq!(
        server.get("/notes").await.header("x-trellis-cache"),
        Some("miss")
    );
    assert_eq!(
        server.get("/notes").await.header("x-trellis-cache"),
        Some("hit")
    );
    let other = server
        .send(Method::POST, "/notes", &[], r#"{"title":"another"}"#)
        .await;
    assert_eq!(other.status, 201);
    let list = server.get("/notes").await;
    assert_eq!(list.header("x-trellis-cache"), Some("miss"));
    assert_eq!(list.json()["items"].as_array().map(Vec::len), Some(2));

    // A missing note is not cached.
    assert_eq!(server.get("/notes/999999").await.status, 404);
    assert_eq!(
        server.get("/notes/999999").await.header("x-trellis-cache"),
        Some("miss")
    );
    let hits = metric(
        &server,
        "trellis_http_response_cache_total",
        "result=\"hit\"",
    )
    .await;
    assert!(hits >= 2.0, "{hits}");
    assert!(
        metric(
            &server,
            "trellis_http_response_cache_total",
            "result=\"not_modified\""
        )
        .await
            >= 1.0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn vary_headers_select_variants_and_tags_drop_them() {
    let server = TestServer::start(&kv_toml("")).await;
    let get = |lang: &'static str| {
        let client = TestServer::at(server.addr());
        async move {
            client
                .send(
                    Method::GET,
                    "/kv/render/page",
                    &[("accept-language", lang)],
                    "",
                )
                .await
        }
    };
    let en = get("en").await;
    let de = get("de").await;
    assert_eq!(en.header("x-trellis-cache"), Some("miss"));
    assert_eq!(de.header("x-trellis-cache"), Some("miss"));
    assert_eq!(en.header("vary"), Some("accept-language"));
    assert_eq!(en.json()["lang"], "en");
    assert_eq!(de.json()["lang"], "de");
    let en_again = get("en").await;
    assert_eq!(en_again.header("x-trellis-cache"), Some("hit"));
    assert_eq!(en_again.body, en.body);
    assert_eq!(get("de").await.body, de.body);
    // The plugin invalidates the route's tag through the cache interface.
    let reply = server
        .send(Method::POST, "/kv/tags/kv:page/invalidate", &[], "")
        .await;
    assert_eq!(reply.status, 204);
    let fresh = get("en").await;
    assert_eq!(fresh.header("x-trellis-cache"), Some("miss"));
    assert_ne!(fresh.json()["rendered_at"], en.json()["rendered_at"]);
    server.shutdown().await;
}
