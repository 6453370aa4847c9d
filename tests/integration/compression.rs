//! Response compression negotiated from `Accept-Encoding`, and request
//! bodies decoded from `Content-Encoding` under the body limit.

use async_compression::tokio::bufread::{
    BrotliDecoder, BrotliEncoder, GzipDecoder, GzipEncoder, ZstdDecoder, ZstdEncoder,
};
use http::Method;
use tokio::io::AsyncReadExt;
use trellis_tests::{Reply, TestServer};

async fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => GzipDecoder::new(body).read_to_end(&mut out).await,
        "br" => BrotliDecoder::new(body).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(body).read_to_end(&mut out).await,
        other => panic!("unexpected encoding {other}"),
    }
    .expect("decodes");
    out
}

async fn encode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => GzipEncoder::new(body).read_to_end(&mut out).await,
        "br" => BrotliEncoder::new(body).read_to_end(&mut out).await,
        "zstd" => ZstdEncoder::new(body).read_to_end(&mut out).await,
        other => panic!("unexpected encoding {other}"),
    }
    .expect("encodes");
    out
}

/// POSTs `size` bytes to echo (which sends them back inside JSON).
async fn echo(server: &TestServer, size: usize, accept: &str) -> Reply {
    server
        .send(
            Method::POST,
            "/echo/x",
            &[("accept-encoding", accept)],
            "a".repeat(size),
        )
        .await
}

#[tokio::test]
async fn responses_are_compressed_as_the_client_prefers() {
    let server = TestServer::start("").await;
    let plain = echo(&server, 4096, "identity").await;
    assert_eq!(plain.header("content-encoding"), None);
    for (accept, expected) in [
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("zstd", Some("zstd")),
        ("gzip;q=0.5, br;q=1.0", Some("br")),
        ("br;q=0.1, zstd;q=0.9, gzip;q=0.5", Some("zstd")),
        ("gzip;q=0", None),
        ("identity", None),
    ] {
        let reply = echo(&server, 4096, accept).await;
        assert_eq!(reply.status, 200, "{accept}");
        assert_eq!(reply.header("content-encoding"), expected, "{accept}");
        let vary = reply.header("vary").unwrap_or("").to_ascii_lowercase();
        assert!(vary.contains("accept-encoding"), "{accept}: vary {vary}");
        let body = match expected {
            Some(encoding) => {
                assert!(reply.body.len() < 4096, "{accept}: not smaller");
                decode(encoding, &reply.body).await
            }
            None => reply.body.to_vec(),
        };
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["body"].as_str().map(str::len), Some(4096), "{accept}");
        // The request id and its value are the same either way.
        assert!(reply.header("x-request-id").is_some());
    }
    // Under the minimum size: as it is.
    let small = echo(&server, 10, "gzip").await;
    assert_eq!(small.header("content-encoding"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn cached_responses_revalidate_when_compressed() {
    let server = TestServer::start("").await;
    let body = format!(r#"{{"title":"zipped","body":"{}"}}"#, "text ".repeat(500));
    let created = server.send(Method::POST, "/notes", &[], body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let path = format!("/notes/{}", created.json()["id"]);
    let first = server
        .send(Method::GET, &path, &[("accept-encoding", "gzip")], "")
        .await;
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    let etag = first.header("etag").expect("etag").to_string();
    assert!(
        etag.starts_with("W/\""),
        "a compressed body has a weak ETag: {etag}"
    );
    let again = server
        .send(
            Method::GET,
            &path,
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(again.status, 304);
    server.shutdown().await;
}

#[tokio::test]
async fn compressed_request_bodies_are_decoded_under_the_limit() {
    let server = TestServer::start("").await;
    for encoding in ["gzip", "br", "zstd"] {
        let body = encode(encoding, b"hello, compressed world").await;
        let reply = server
            .send(
                Method::POST,
                "/echo/x",
                &[("content-encoding", encoding)],
                body,
            )
            .await;
        assert_eq!(reply.status, 200, "{encoding}: {}", reply.text());
        let json = reply.json();
        assert_eq!(json["body"], "hello, compressed world", "{encoding}");
        let headers = json["headers"].to_string();
        assert!(!headers.contains("content-encoding"), "{headers}");
    }
    // A zip bomb: 64 MiB of zeros in a few KiB of gzip → 413, not memory.
    let bomb = encode("gzip", &vec![0u8; 64 * 1024 * 1024]).await;
    assert!(bomb.len() < 1024 * 1024);
    server
        .send(
            Method::POST,
            "/echo/x",
            &[("content-encoding", "gzip")],
            bomb,
        )
        .await
        .assert_problem(413, "payload_too_large");
    // Garbage that claims to be gzip → 400; an unknown coding → 415.
    server
        .send(
            Method::POST,
            "/echo/x",
            &[("content-encoding", "gzip")],
            "not gzip",
        )
        .await
        .assert_problem(400, "bad_request");
    server
        .send(
            Method::POST,
            "/echo/x",
            &[("content-encoding", "compress")],
            "x",
        )
        .await
        .assert_problem(415, "unsupported_content_encoding");
    // The server still serves.
    assert_eq!(server.get("/hello/after").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn cached_responses_are_compressed_once_per_variant_and_follow_updates() {
    let server = TestServer::start("").await;
    let body = format!(r#"{{"title":"cached","body":"{}"}}"#, "word ".repeat(500));
    let created = server.send(Method::POST, "/notes", &[], body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let path = format!("/notes/{}", created.json()["id"]);
    let identity = server.get(&path).await;
    assert_eq!(identity.header("content-encoding"), None);
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, br, zstd", "zstd"),
        ("gzip;q=1, zstd;q=0.5", "gzip"),
    ] {
        for round in 0..2 {
            let reply = server
                .send(Method::GET, &path, &[("accept-encoding", accept)], "")
                .await;
            assert_eq!(reply.status, 200, "{accept}");
            assert_eq!(reply.header("content-encoding"), Some(coding), "{accept}");
            assert_eq!(reply.header("x-trellis-cache"), Some("hit"), "{accept}");
            let vary = reply.header("vary").unwrap_or("").to_ascii_lowercase();
            assert!(vary.contains("accept-encoding"), "{accept}: vary {vary}");
            assert!(
                reply.body.len() < identity.body.len() / 2,
                "{accept} {round}"
            );
            assert_eq!(decode(coding, &reply.body).await, identity.body, "{accept}");
        }
    }
    // An update invalidates the identity entry and its compressed variants.
    let updated = server
        .send(
            Method::PUT,
            &path,
            &[("content-type", "application/json")],
            format!(r#"{{"title":"cached","body":"{}"}}"#, "other ".repeat(500)),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let reply = server
        .send(Method::GET, &path, &[("accept-encoding", "gzip")], "")
        .await;
    let note: serde_json::Value =
        serde_json::from_slice(&decode("gzip", &reply.body).await).expect("json");
    assert!(
        note["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("other")),
        "{note}"
    );
    // A client's no-cache refresh is compressed too, from the new body.
    let refreshed = server
        .send(
            Method::GET,
            &path,
            &[("accept-encoding", "zstd"), ("cache-control", "no-cache")],
            "",
        )
        .await;
    assert_eq!(refreshed.header("content-encoding"), Some("zstd"));
    assert_eq!(
        decode("zstd", &refreshed.body).await,
        server.get(&path).await.body
    );
    server.shutdown().await;
}
