//! The same black-box suite against `hello` written in each guest language:
//! Rust (`plugins/hello`, with the SDK), Python (`plugins/python-hello`,
//! componentize-py) and JavaScript (`plugins/js-hello`, componentize-js).
//! A language whose toolchain this machine lacks is skipped with a notice;
//! CI's machine has them.

use http::Method;
use trellis_tests::{Protocol, TestServer, guest};

/// Builds a non-Rust guest with its script; `None` (after a notice) when
/// the toolchain is missing.
pub(crate) fn build(script: &str) -> Option<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::process::Command::new("bash")
        .arg(root.join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Some(String::from_utf8_lossy(&output.stdout).trim().to_string()),
        Some(3) => {
            eprintln!("{}", stderr.trim());
            None
        }
        _ => panic!("{script} failed:\n{stderr}"),
    }
}

/// Serves the `hello` component at `path` and runs the suite against it.
async fn check_hello(path: &str) {
    let server = TestServer::start(&format!(
        r#"
[plugins.hello]
path = {path:?}
grants = ["config"]
[plugins.hello.config]
greeting = "Hi"
"#
    ))
    .await;
    hello_suite(&server).await;
    server.shutdown().await;
}

/// What every `hello` must do, whatever it is written in.
async fn hello_suite(server: &TestServer) {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let reply = server
            .send_on(protocol, Method::GET, "/hello", &[], "")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "Hi, world!");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain"))
        );
        let reply = server
            .send_on(protocol, Method::GET, "/hello/Ada", &[], "")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["greeting"], "Hi, Ada!");
    }
    let reply = server
        .send(Method::GET, "/hello", &[("x-request-id", "lang-1")], "")
        .await;
    assert_eq!(reply.header("x-request-id"), Some("lang-1"));
    let head = server.send(Method::HEAD, "/hello", &[], "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let reply = server.send(Method::DELETE, "/hello", &[], "").await;
    let body = reply.assert_problem(405, "method_not_allowed");
    assert!(body["detail"].is_string());
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    server
        .get("/hello/a/b")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_rust() {
    check_hello(guest("hello")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_python() {
    if let Some(path) = build("plugins/python-hello/build.sh") {
        check_hello(&path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_javascript() {
    if let Some(path) = build("plugins/js-hello/build.sh") {
        check_hello(&path).await;
    }
}

/// componentize-py imports every interface of the world it builds
/// against; one that imports a capability it was not granted is refused
/// with the config line that would grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_without_its_grant_is_refused_by_name() {
    let Some(path) = build("plugins/python-hello/build.sh") else {
        return;
    };
    let toml = format!("[plugins.hello]\npath = {path:?}\ngrants = []\n");
    let Err(err) = trellis::Server::start(&trellis_tests::config(&toml)).await else {
        panic!("a plugin importing `config` loaded without the grant");
    };
    let message = err.to_string();
    assert!(
        message.contains("`config`") && message.contains("grants"),
        "{message}"
    );
}

/// `notes` (Rust, built in), `python-notes` and `js-notes` are twins: the
/// same API under their own prefix, each over `sql` (with its migrations),
/// `cache` (cached reads that writes invalidate) and `jobs` (an index job
/// enqueued with each insert), so one black-box suite checks all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_in_rust() {
    let server = TestServer::start("").await;
    notes_suite(&server, "/notes").await;
    server.shutdown().await;
}

/// The Python twin, on SQLite (the default) and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_in_python() {
    notes_twin("python-notes").await;
}

/// The JavaScript twin, on SQLite (the default) and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_in_javascript() {
    notes_twin("js-notes").await;
}

/// Builds the twin `name` (in `plugins/<name>`) and runs the suite against
/// it on SQLite and on PostgreSQL.
async fn notes_twin(name: &str) {
    let Some(path) = build(&format!("plugins/{name}/build.sh")) else {
        return;
    };
    let plugin =
        format!("[plugins.{name}]\npath = {path:?}\ngrants = [\"sql\", \"cache\", \"jobs\"]\n");
    let server = TestServer::start(&plugin).await;
    notes_suite(&server, &format!("/{name}")).await;
    server.shutdown().await;

    let namespace = trellis_tests::pg::Namespace::new().await;
    let server = TestServer::start(&format!("{}\n{plugin}", namespace.toml())).await;
    notes_suite(&server, &format!("/{name}")).await;
    server.shutdown().await;
    namespace.drop_all().await;
}

/// What each notes twin must do, seen from HTTP only.
async fn notes_suite(server: &TestServer, base: &str) {
    let json = [("content-type", "application/json")];
    let post = |body: &'static str| server.send(Method::POST, base, &json, body);

    // Create: 201, the note, its location.
    let created = post(r#"{"title": "first", "body": "one two three"}"#).await;
    assert_eq!(created.status, 201, "{base}: {}", created.text());
    let note = created.json();
    let id = note["id"].as_i64().expect("an id");
    assert_eq!(note["title"], "first");
    assert_eq!(note["body"], "one two three");
    let created_at = note["created_at"].as_i64().expect("created_at");
    assert!(created_at > 1_600_000_000_000_000, "microseconds: {note}");
    assert_eq!(note["updated_at"], created_at);
    let location = format!("{base}/{id}");
    assert_eq!(created.header("location"), Some(location.as_str()));

    // Read, from the response cache the second time.
    let read = server.get(&location).await;
    assert_eq!(read.status, 200, "{base}: {}", read.text());
    assert_eq!(read.json(), note);
    assert_eq!(read.header("x-trellis-cache"), Some("miss"), "{base}");
    let again = server.get(&location).await;
    assert_eq!(again.header("x-trellis-cache"), Some("hit"), "{base}");
    assert_eq!(again.json(), note);

    // Bad input: a taken title, a wrong type, an unknown field, a title
    // out of range, an id that is not one, a note that does not exist.
    let body = post(r#"{"title": "first"}"#)
        .await
        .assert_problem(409, "conflict");
    assert!(body["detail"].is_string(), "{base}: {body}");
    let body = post(r#"{"title": 7}"#)
        .await
        .assert_problem(400, "bad_request");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("title"), "{base}: {detail}");
    post(r#"{"title": "x", "colour": "red"}"#)
        .await
        .assert_problem(400, "bad_request");
    post("{not json").await.assert_problem(400, "bad_request");
    post(r#"{"title": "   "}"#)
        .await
        .assert_problem(422, "unprocessable_content");
    server
        .get(&format!("{base}/999999"))
        .await
        .assert_problem(404, "not_found");
    server
        .get(&format!("{base}/x"))
        .await
        .assert_problem(400, "bad_request");

    // The list pages by id with an opaque cursor; a new note invalidates
    // the cached list.
    let listed = server.get(base).await;
    assert_eq!(listed.status, 200, "{base}: {}", listed.text());
    assert_eq!(listed.json()["items"].as_array().map(Vec::len), Some(1));
    for title in ["second", "third"] {
        let reply = server
            .send(
                Method::POST,
                base,
                &json,
                format!(r#"{{"title": "{title}"}}"#),
            )
            .await;
        assert_eq!(reply.status, 201, "{base}: {}", reply.text());
    }
    let mut titles = Vec::new();
    let mut path = format!("{base}?limit=2");
    for _ in 0..3 {
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{base}: {}", page.text());
        let page = page.json();
        for item in page["items"].as_array().expect("items") {
            titles.push(item["title"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{base}?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(titles, ["first", "second", "third"], "{base}");
    for bad in ["?limit=0", "?limit=101", "?limit=ten", "?cursor=42"] {
        server
            .get(&format!("{base}{bad}"))
            .await
            .assert_problem(400, "bad_request");
    }

    // The index job counts the words of each note, soon after its insert.
    let index = wait_for(server, &format!("{location}/index")).await;
    assert_eq!(index["note_id"], id, "{base}: {index}");
    assert_eq!(index["words"], 3, "{base}: {index}");

    // Update: the cached read is invalidated, the index follows.
    let updated = server
        .send(
            Method::PUT,
            &location,
            &json,
            r#"{"title": "first", "body": "one two three four five"}"#,
        )
        .await;
    assert_eq!(updated.status, 200, "{base}: {}", updated.text());
    assert_eq!(updated.json()["body"], "one two three four five");
    let read = server.get(&location).await;
    assert_eq!(read.json()["body"], "one two three four five", "{base}");
    let mut words = serde_json::Value::Null;
    for _ in 0..100 {
        words = wait_for(server, &format!("{location}/index")).await["words"].clone();
        if words == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(words, 5, "{base}: the index did not follow the update");
    server
        .send(
            Method::PUT,
            &format!("{base}/999999"),
            &json,
            r#"{"title": "y"}"#,
        )
        .await
        .assert_problem(404, "not_found");

    // Bulk: each input answered on its own.
    let bulk = server
        .send(
            Method::POST,
            &format!("{base}/bulk"),
            &json,
            r#"[{"title": "fourth"}, {"title": "first"}, {"title": ""}]"#,
        )
        .await;
    assert_eq!(bulk.status, 200, "{base}: {}", bulk.text());
    let statuses: Vec<_> = bulk.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(statuses, [201, 409, 422], "{base}");

    // Delete: 204, then the note and its cached read are gone.
    let deleted = server.send(Method::DELETE, &location, &[], "").await;
    assert_eq!(deleted.status, 204, "{base}: {}", deleted.text());
    server.get(&location).await.assert_problem(404, "not_found");
    server
        .send(Method::DELETE, &location, &[], "")
        .await
        .assert_problem(404, "not_found");
}

/// GETs `path` until it is a 200 (a job's result appears), for up to 10 s.
async fn wait_for(server: &TestServer, path: &str) -> serde_json::Value {
    let mut reply = server.get(path).await;
    for _ in 0..200 {
        if reply.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        reply = server.get(path).await;
    }
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()
}

/// The JavaScript cache example: values stored, read, deleted; a computed
/// result served from the cache the second time; a value over the plugin's
/// cache limit is its 413, from the host's typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_in_javascript() {
    let Some(path) = build("plugins/js-cache/build.sh") else {
        return;
    };
    let server = TestServer::start(&format!(
        "[plugins.js-cache]\npath = {path:?}\ngrants = [\"cache\"]\n\
         [plugins.js-cache.limits]\nmax_cache_value = \"1KiB\"\n"
    ))
    .await;
    let put = server
        .send(Method::PUT, "/js-cache/values/greeting", &[], "hello")
        .await;
    assert_eq!(put.status, 204, "{}", put.text());
    let got = server.get("/js-cache/values/greeting").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hello");
    let deleted = server
        .send(Method::DELETE, "/js-cache/values/greeting", &[], "")
        .await;
    assert_eq!(deleted.status, 204);
    server
        .get("/js-cache/values/greeting")
        .await
        .assert_problem(404, "not_found");

    let first = server.get("/js-cache/squares/1000").await;
    assert_eq!(first.header("x-cache"), Some("miss"), "{}", first.text());
    assert_eq!(first.json()["sum"], "333833500");
    let second = server.get("/js-cache/squares/1000").await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.json(), first.json());

    let big = "x".repeat(4096);
    let body = server
        .send(Method::PUT, "/js-cache/values/big", &[], big)
        .await
        .assert_problem(413, "content_too_large");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("1024")),
        "{body}"
    );
    server
        .send(Method::PUT, "/js-cache/values/k?ttl_ms=0", &[], "v")
        .await
        .assert_problem(400, "bad_request");
    server.shutdown().await;
}

/// A plugin built against `trellis:plugin@0.1.0`, the first released WIT
/// (`plugins/hello-v010`, its WIT frozen, no SDK), loads and serves under
/// this runtime: its imports (`log`, `config` at 0.1.0) link, its exports
/// are called, and it gets what a newer plugin gets (decoded parameters,
/// its settings). Compatibility within 0.1.x is tested, not assumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_the_first_wit_still_serves() {
    let path = guest("hello_v010");
    let server = TestServer::start(&format!(
        "[plugins.old]\npath = {path:?}\n\n[plugins.old.config]\ngreeting = \"Hej\"\n"
    ))
    .await;
    let reply = server.get("/v010/Ada%20L").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["greeting"], "Hej, Ada L!");
    let plugins = server.get("/admin/plugins").await.json();
    let text = plugins.to_string();
    assert!(text.contains("\"old\""), "{text}");
    server.shutdown().await;
}
