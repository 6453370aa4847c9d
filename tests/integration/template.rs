//! `trellis new`: a project made from the template builds into a component
//! with the plain cargo command its README gives, and serves.

use std::path::Path;
use std::process::Command;

use http::Method;
use serde_json::json;
use trellis_tests::{TestServer, fresh_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_builds_and_serves() {
    let dir = fresh_dir().join("demo");
    trellis::scaffold::new_plugin("demo", &dir, Path::new(trellis::scaffold::SDK))
        .expect("project written");
    // The guests' target directory: the SDK's dependencies are built there
    // already, with the same release profile.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        // The host build's flags are not the guest's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "the new plugin does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/demo.wasm");
    assert!(wasm.is_file(), "{} missing", wasm.display());

    let server = TestServer::start(&format!(
        "[plugins.demo]\npath = {:?}\n",
        wasm.display().to_string()
    ))
    .await;
    let hello = server.get("/demo/hello/you").await;
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.json(), json!({"greeting": "Hello, you!"}));
    let echo = server
        .send(
            Method::POST,
            "/demo/echo",
            &[("content-type", "application/json")],
            r#"{"text": "hi"}"#,
        )
        .await;
    assert_eq!(echo.json(), json!({"text": "hi"}));
    server
        .send(Method::POST, "/demo/echo", &[], r#"{"txt": 1}"#)
        .await
        .assert_problem(400, "bad_request");
    assert_eq!(server.get("/demo").await.json()["plugin"], "demo");
    server.shutdown().await;
}
