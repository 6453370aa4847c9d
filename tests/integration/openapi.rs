//! `/api/v1/openapi.json`: every plugin route and built-in endpoint, and a
//! document that validates as OpenAPI 3.1 (openapi-spec-validator, installed
//! from PyPI by `tests/scripts/openapi-validate.sh`).

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
    let file = fresh_dir().join("openapi.json");
    std::fs::write(&file, reply.body.as_ref()).expect("write");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/openapi-validate.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(&file)
        .output()
        .expect("bash runs");
    match output.status.code() {
        Some(0) => {}
        Some(2) => eprintln!(
            "notice: no Python to validate the OpenAPI document: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        _ => panic!(
            "the OpenAPI document does not validate: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
    server.shutdown().await;
}
