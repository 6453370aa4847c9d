//! `/api/v1/openapi.json`: every plugin route and built-in endpoint, a
//! document that validates as OpenAPI 3.1 (openapi-spec-validator, installed
//! from PyPI by `tests/scripts/openapi-validate.sh`), and no server error
//! from property-based requests generated from it (schemathesis, by
//! `tests/scripts/schemathesis.sh`).

use std::collections::BTreeSet;
use std::process::Command;

use trellis_tests::{TestServer, fresh_dir};

#[tokio::test]
async fn the_document_lists_every_route_and_validates() {
    let server = TestServer::start("").await;
    let reply = server.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/hello", "get"),
        ("/notes", "post"),
        ("/notes/{id}", "get"),
        ("/notes/{id}", "delete"),
        ("/echo/{rest}", "patch"),
        ("/api/v1/batch", "post"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    // Every templated parameter is declared; operation ids are unique.
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for (_, operation) in item.as_object().expect("path item") {
            assert!(
                ids.insert(operation["operationId"].to_string()),
                "duplicate id"
            );
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{path}: `{name}` undeclared");
            }
        }
    }
    assert!(
        paths["/notes/{id}"]["get"]["responses"]["304"].is_object(),
        "a cached route documents 304"
    );
    // Schemas a plugin attached to its routes.
    let create = &paths["/notes"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["required"],
        serde_json::json!(["title"])
    );
    assert_eq!(
        paths["/notes/{id}"]["get"]["responses"]["2XX"]["content"]["application/json"]["schema"]["properties"]
            ["id"]["type"],
        "integer"
    );
    // And the runtime's own: the batch body.
    assert!(
        doc["components"]["schemas"]["Batch"]["properties"]["atomic"].is_object(),
        "{}",
        doc["components"]
    );
    let file = fresh_dir().join("openapi.json");
    std::fs::write(&file, reply.body.as_ref()).expect("write");
    let file = file.display().to_string();
    script("openapi-validate.sh", &[&file]);
    server.shutdown().await;
}

/// Runs a script of `tests/scripts/`; `false` when it could not run for
/// want of Python (a notice is printed).
fn script(name: &str, args: &[&str]) -> bool {
    let path = format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(path)
        .args(args)
        .output()
        .expect("bash runs");
    match output.status.code() {
        Some(0) => true,
        Some(3) => {
            eprintln!(
                "notice: {name} could not run: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            false
        }
        _ => panic!(
            "{name} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_find_no_server_error_on_the_examples() {
    let server = TestServer::start("").await;
    let base = format!("http://{}", server.addr());
    // Blocking: the script talks to the server, which runs on the workers.
    let ran = tokio::task::spawn_blocking(move || script("schemathesis.sh", &[&base, "15"]))
        .await
        .expect("joined");
    if ran {
        // The server is still healthy afterwards.
        assert_eq!(server.get("/healthz").await.status, 200);
    }
    server.shutdown().await;
}
