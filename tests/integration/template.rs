//! Plugin authors' tools: a project made by `trellis new` builds into a
//! component with the plain cargo command its README gives, serves, and
//! its handler unit tests pass natively (`cargo test-native`); the SDK's
//! own tests and its rustdoc examples pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use http::Method;
use serde_json::json;
use trellis_tests::{TestServer, fresh_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plugin_builds_and_serves() {
    let dir = fresh_dir().join("demo");
    trellis_cli::scaffold::new_plugin("demo", &dir, Path::new(trellis_cli::scaffold::SDK))
        .expect("project written");
    succeeds(
        guest_cargo(&dir).args(["build", "--release", "--quiet"]),
        "the new plugin builds",
    );
    // Its unit tests, through the alias its .cargo/config.toml defines.
    succeeds(
        guest_cargo(&dir).args(["test-native", "--quiet"]),
        "the new plugin's unit tests pass",
    );
    let target = guest_target();
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

/// The SDK's unit tests and every rustdoc example in it, natively (the
/// examples use `trellis_sdk::testing`, so they run, not just compile).
#[test]
fn the_sdk_tests_and_examples_pass() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    succeeds(
        guest_cargo(&plugins).args([
            "test",
            "--quiet",
            "-p",
            "trellis-sdk",
            "--target",
            trellis_cli::scaffold::HOST_TARGET,
        ]),
        "the SDK's tests pass",
    );
}

/// The Python SDK's tests and the Python examples' unit tests, under
/// pytest, natively (`plugins/sdk-python/test.sh`).
#[test]
fn the_python_sdk_tests_pass() {
    sdk_script("plugins/sdk-python/test.sh");
}

/// The JavaScript SDK's tests and the JavaScript examples' unit tests,
/// under `node --test` (`plugins/sdk-js/test.sh`).
#[test]
fn the_javascript_sdk_tests_pass() {
    sdk_script("plugins/sdk-js/test.sh");
}

/// Runs an SDK's test script; its exit status 3 (the language's toolchain
/// is missing) skips the test with the script's notice.
fn sdk_script(script: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("bash")
        .arg(root.join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    if output.status.code() == Some(3) {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr).trim());
        return;
    }
    assert!(
        output.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `command`; fails the test with its output unless it succeeds.
fn succeeds(command: &mut Command, what: &str) {
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "expected: {what}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Where guests are built: the host build's guest target directory, where
/// the SDK's dependencies are built already.
pub fn guest_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests")
}

/// A cargo command in `dir` building into [`guest_target`], without the
/// host build's flags (they are not the guest's).
pub fn guest_cargo(dir: &Path) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", guest_target())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    command
}

/// `trellis new --lang python|javascript`: each project builds with its own
/// `build.sh` (pointed at the tools the examples already fetched), its
/// unit tests pass natively (pytest, `node --test`), and it serves its two
/// routes, with the greeting from its config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_python_and_javascript_plugins_build_and_serve() {
    use trellis_cli::scaffold::Language;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut toml = String::new();
    let mut names = Vec::new();
    for (language, name, example) in [
        (Language::Python, "pydemo", "plugins/python-hello/build.sh"),
        (Language::JavaScript, "jsdemo", "plugins/js-hello/build.sh"),
    ] {
        // The example's build installs the tool (or says it cannot).
        if crate::guests::build(example).is_none() {
            continue;
        }
        let dir = fresh_dir().join(name);
        trellis_cli::scaffold::new_project(
            language,
            name,
            &dir,
            Path::new(trellis_cli::scaffold::SDK),
        )
        .expect("project written");
        let mut build = Command::new("bash");
        build.arg(dir.join("build.sh"));
        match language {
            Language::Python => {
                build.env("TRELLIS_PYTHON_VENV", root.join("target/python/venv"));
            }
            _ => std::os::unix::fs::symlink(
                root.join("target/js/node_modules"),
                dir.join("node_modules"),
            )
            .expect("node_modules linked"),
        }
        succeeds(&mut build, "the new plugin builds");
        // Its unit tests, natively, against the SDK's fake host.
        let mut unit = match language {
            Language::Python => {
                let mut pytest = Command::new("bash");
                pytest
                    .arg(root.join("plugins/sdk-python/test.sh"))
                    .arg(&dir);
                pytest
            }
            _ => {
                let mut node = Command::new("node");
                node.current_dir(&dir).args(["--test", "app.test.js"]);
                node
            }
        };
        succeeds(&mut unit, "the new plugin's unit tests pass");
        toml.push_str(&format!(
            "[plugins.{name}]\npath = {:?}\ngrants = [\"config\"]\n\
             [plugins.{name}.config]\ngreeting = \"Hi\"\n",
            dir.join(format!("{name}.wasm")).display().to_string()
        ));
        names.push(name);
    }
    if names.is_empty() {
        return;
    }
    let server = TestServer::start(&toml).await;
    for name in names {
        let hello = server.get(&format!("/{name}/hello/you")).await;
        assert_eq!(hello.status, 200, "{name}: {}", hello.text());
        assert_eq!(hello.json(), json!({"greeting": "Hi, you!"}));
        let index = server.get(&format!("/{name}")).await;
        assert_eq!(index.json()["plugin"], name);
    }
    server.shutdown().await;
}
