//! Hot reload: uploads through the admin API under load, refused versions,
//! rollback and removal, a restart keeping what was uploaded, a changed
//! component file, and an upload reaching a second node through PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use trellis_tests::{Reply, TestServer, config, config_in, fresh_dir, guest};

/// The `x-hello-version` of `hello-next`.
const NEXT: &str = "0.2.0";

fn hello_bytes() -> Vec<u8> {
    std::fs::read(guest("hello")).expect("hello is built")
}

fn next_bytes() -> Vec<u8> {
    std::fs::read(guest("hello_next")).expect("hello_next is built")
}

/// `hello` from its file, granted what `hello-next` needs.
fn hello_toml() -> String {
    format!(
        "[plugins.hello]\npath = {:?}\ngrants = [\"log\", \"config\", \"sql\"]\n",
        guest("hello")
    )
}

async fn upload(server: &TestServer, name: &str, bytes: Vec<u8>) -> Reply {
    server
        .send(
            Method::PUT,
            &format!("/admin/plugins/{name}"),
            &[("content-type", "application/wasm")],
            bytes,
        )
        .await
}

async fn post(server: &TestServer, path: &str) -> Reply {
    server.send(Method::POST, path, &[], Vec::new()).await
}

/// Which version answered `/hello`: `None` for the first, `Some` for
/// `hello-next`; panics on a response mixing the two or failing.
fn version_of(reply: &Reply) -> Option<String> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let header = reply.header("x-hello-version").map(str::to_string);
    let body = reply.text();
    match &header {
        Some(v) => assert_eq!(body, format!("Hello, world! ({v})"), "mixed response"),
        None => assert_eq!(body, "Hello, world!", "mixed response"),
    }
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_drop_no_request() {
    let server = Arc::new(TestServer::start(&hello_toml()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (server, stop, served) = (server.clone(), stop.clone(), served.clone());
        clients.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut versions = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                versions.insert(version_of(&server.get("/hello").await));
                served.fetch_add(1, Ordering::Relaxed);
            }
            versions
        }));
    }
    let (hello, next) = (hello_bytes(), next_bytes());
    let mut swaps = Vec::new();
    for round in 0..20 {
        let (bytes, expected) = if round % 2 == 0 {
            (next.clone(), Some(NEXT.to_string()))
        } else {
            (hello.clone(), None)
        };
        let started = Instant::now();
        let reply = upload(&server, "hello", bytes).await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        // Serving as soon as the upload answers.
        assert_eq!(version_of(&server.get("/hello").await), expected);
        swaps.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        seen.extend(client.await.expect("client ran"));
    }
    swaps.sort();
    eprintln!(
        "20 reloads under load: {} requests, all 200; upload → serving p50 {:?}, max {:?}",
        served.load(Ordering::Relaxed),
        swaps[swaps.len() / 2],
        swaps[swaps.len() - 1]
    );
    assert_eq!(seen.len(), 2, "both versions answered: {seen:?}");
    let plugins = server.get("/admin/plugins/hello").await.json();
    assert_eq!(plugins["state"], "live");
    assert_eq!(
        plugins["source"].as_str().map(|s| s.starts_with("upload:")),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_versions_are_refused_and_the_old_one_serves() {
    let toml = format!(
        "{}[plugins.hello.config]\nmigration = \"broken\"\n",
        hello_toml()
    );
    let server = TestServer::start(&toml).await;
    let refused = |reply: Reply, needle: &str| {
        let problem = reply.assert_problem(422, "plugin_refused");
        let detail = problem["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
    };
    refused(
        upload(&server, "hello", b"not wasm at all".to_vec()).await,
        "not WebAssembly",
    );
    refused(
        upload(&server, "hello", b"\0asm\x01\0\0\0".to_vec()).await,
        "core WebAssembly module",
    );
    // An empty component: valid, but not the plugin world.
    refused(
        upload(&server, "hello", b"\0asm\x0d\0\x01\0".to_vec()).await,
        "does not export `trellis:plugin/manifest`",
    );
    refused(
        upload(&server, "hello", next_bytes()).await,
        "migration failed",
    );
    // The same routes under another name.
    let reply = server
        .send(
            Method::PUT,
            "/admin/plugins/hello-copy?grants=log,config",
            &[],
            hello_bytes(),
        )
        .await;
    refused(reply, "route conflict: GET /hello (plugin hello)");
    assert_eq!(version_of(&server.get("/hello").await), None);

    let shown = server.get("/admin/plugins/hello").await.json();
    assert_eq!(shown["state"], "live");
    assert!(
        shown["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("migration failed")),
        "{shown}"
    );
    // The copy never went live; it is listed as failed.
    let listed = server.get("/admin/plugins").await.json();
    let copy = listed["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "hello-copy"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(copy["state"], "failed", "{listed}");
    server
        .send(Method::DELETE, "/admin/plugins/hello-copy", &[], Vec::new())
        .await
        .assert_problem(404, "plugin_not_found");

    // Bad requests.
    upload(&server, "Bad_Name", hello_bytes())
        .await
        .assert_problem(400, "bad_request");
    server
        .send(
            Method::PUT,
            "/admin/plugins/x?grants=root",
            &[],
            hello_bytes(),
        )
        .await
        .assert_problem(400, "bad_request");
    server
        .send(
            Method::PUT,
            "/admin/plugins/hello?grants=log",
            &[],
            hello_bytes(),
        )
        .await
        .assert_problem(400, "bad_request");
    post(&server, "/admin/plugins/nope/reload")
        .await
        .assert_problem(404, "plugin_not_found");
    post(&server, "/admin/plugins/hello/rollback")
        .await
        .assert_problem(409, "conflict");
    server
        .send(Method::PATCH, "/admin/plugins/hello", &[], Vec::new())
        .await
        .assert_problem(405, "method_not_allowed");
    assert_eq!(version_of(&server.get("/hello").await), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_removal_and_restart() {
    let dir = fresh_dir();
    let server = TestServer::start_config(&config_in(&hello_toml(), &dir)).await;
    assert_eq!(upload(&server, "hello", next_bytes()).await.status, 200);
    assert_eq!(version_of(&server.get("/hello").await), Some(NEXT.into()));

    let back = post(&server, "/admin/plugins/hello/rollback").await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(back.json()["live"]["kind"], "config");
    assert_eq!(version_of(&server.get("/hello").await), None);
    // Twice: forward again.
    assert_eq!(
        post(&server, "/admin/plugins/hello/rollback").await.status,
        200
    );
    assert_eq!(version_of(&server.get("/hello").await), Some(NEXT.into()));

    let reloaded = post(&server, "/admin/plugins/hello/reload").await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    assert_eq!(version_of(&server.get("/hello").await), Some(NEXT.into()));

    // An unconfigured plugin, uploaded with its grants.
    let echo = std::fs::read(guest("echo")).expect("echo is built");
    let reply = server
        .send(Method::PUT, "/admin/plugins/echo?grants=log", &[], echo)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echoed = server.send(Method::POST, "/echo/x", &[], "hi").await;
    assert_eq!(echoed.status, 200, "{}", echoed.text());

    let gone = server
        .send(Method::DELETE, "/admin/plugins/hello", &[], Vec::new())
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text());
    server.get("/hello").await.assert_problem(404, "not_found");
    server
        .send(Method::DELETE, "/admin/plugins/hello", &[], Vec::new())
        .await
        .assert_problem(404, "plugin_not_found");
    assert_eq!(
        post(&server, "/admin/plugins/hello/rollback").await.status,
        200
    );
    assert_eq!(version_of(&server.get("/hello").await), Some(NEXT.into()));
    server.shutdown().await;

    // A restart on the same data directory serves what was live.
    let server = TestServer::start_config(&config_in(&hello_toml(), &dir)).await;
    assert_eq!(version_of(&server.get("/hello").await), Some(NEXT.into()));
    assert_eq!(
        server.send(Method::POST, "/echo/x", &[], "hi").await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_component_file_is_reloaded() {
    let dir = fresh_dir();
    let file = dir.join("hello.wasm");
    std::fs::write(&file, hello_bytes()).expect("write");
    let toml = format!(
        "[deploy]\ndebounce = \"100ms\"\n\n[plugins.hello]\npath = {:?}\ngrants = [\"log\", \"config\", \"sql\"]\n",
        file.display().to_string()
    );
    let server = TestServer::start_config(&config_in(&toml, &dir)).await;
    assert_eq!(version_of(&server.get("/hello").await), None);

    // Replaced by rename, as deploy tools do.
    let staged = dir.join("hello.wasm.tmp");
    std::fs::write(&staged, next_bytes()).expect("write");
    std::fs::rename(&staged, &file).expect("rename");
    wait_for(&server, Some(NEXT)).await;

    // A broken file is refused; the live version keeps serving.
    std::fs::write(&file, b"\0asm garbage").expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = server.get("/admin/plugins/hello").await.json();
        if shown["error"]["reason"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken file was not noticed: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version_of(&server.get("/hello").await), Some(NEXT.into()));

    // Written in place, in pieces: read once complete.
    let bytes = hello_bytes();
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    std::fs::write(&file, first).expect("write");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .expect("open");
        f.write_all(rest).expect("append");
    }
    wait_for(&server, None).await;
}

/// Polls `/hello` until `version` answers (within 10 s).
async fn wait_for(server: &TestServer, version: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while version_of(&server.get("/hello").await).as_deref() != version {
        assert!(Instant::now() < deadline, "{version:?} never went live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_on_one_node_goes_live_on_another() {
    let ns = trellis_tests::pg::Namespace::new().await;
    let redis = trellis_tests::redis::toml(
        &trellis_tests::redis::url(),
        &trellis_tests::redis::namespace(),
    );
    let toml = |node: &str| {
        format!(
            "{}\n{}\n[deploy]\nnode = {node:?}\npoll_interval = \"30s\"\n\n{}",
            ns.toml(),
            redis,
            hello_toml()
        )
    };
    let a = TestServer::start_config(&config(&toml("a"))).await;
    let b = TestServer::start_config(&config(&toml("b"))).await;
    assert_eq!(version_of(&b.get("/hello").await), None);

    let reply = upload(&a, "hello", next_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Announced with NOTIFY: well before the 30 s poll.
    let started = Instant::now();
    wait_for(&b, Some(NEXT)).await;
    eprintln!(
        "node b serving the upload {:?} after node a",
        started.elapsed()
    );

    // Each node reports what it serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = a.get("/admin/plugins/hello").await.json();
        let nodes = shown["nodes"].as_array().cloned().unwrap_or_default();
        let hashes: Vec<_> = nodes
            .iter()
            .map(|n| (n["node"].clone(), n["hash"].clone()))
            .collect();
        if nodes.len() == 2 && nodes.iter().all(|n| n["hash"] == shown["hash"]) {
            break;
        }
        assert!(Instant::now() < deadline, "nodes never agreed: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A rollback on b reaches a.
    assert_eq!(post(&b, "/admin/plugins/hello/rollback").await.status, 200);
    wait_for(&a, None).await;
    a.shutdown().await;
    b.shutdown().await;
    ns.drop_all().await;
}

/// A component that imports each of `imports` as an empty instance and
/// exports nothing. (An empty component, no manifest, is refused in
/// `broken_versions_are_refused_and_the_old_one_serves`.)
fn component_importing(imports: &[&str]) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut component = Component::new();
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    component.section(&types);
    let mut section = ComponentImportSection::new();
    for name in imports {
        section.import(*name, ComponentTypeRef::Instance(0));
    }
    component.section(&section);
    component.finish()
}

/// A component that imports `import` and exports a
/// `wasi:http/incoming-handler`: it reads as a wasi:http component, and
/// linking it fails on `import`.
fn wasi_http_importing(import: &str) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
        ComponentTypeRef, ComponentTypeSection, ComponentValType, InstanceType,
    };
    let mut component = Component::new();
    // `import` has a function, so a linker without it cannot supply it (an
    // empty instance links against nothing); the empty one stands in for
    // the handler the component exports.
    let mut with_function = InstanceType::new();
    with_function
        .ty()
        .function()
        .params(Vec::<(&str, ComponentValType)>::new())
        .result(None);
    with_function.export("get", ComponentTypeRef::Func(0));
    let mut types = ComponentTypeSection::new();
    types.instance(&with_function);
    types.instance(&InstanceType::new());
    component.section(&types);
    let mut imports = ComponentImportSection::new();
    imports.import(import, ComponentTypeRef::Instance(0));
    imports.import("trellis-test:empty/handler", ComponentTypeRef::Instance(1));
    component.section(&imports);
    let mut exports = ComponentExportSection::new();
    exports.export(
        "wasi:http/incoming-handler@0.2.0",
        ComponentExportKind::Instance,
        1,
        None,
    );
    component.section(&exports);
    component.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_errors_say_what_is_wrong_and_how_to_fix_it() {
    let server = TestServer::start("").await;
    let detail = |reply: Reply| {
        let problem = reply.assert_problem(422, "plugin_refused");
        problem["detail"].as_str().unwrap_or_default().to_string()
    };
    // Built against a WIT version this runtime does not implement.
    let future = detail(
        upload(
            &server,
            "alien",
            component_importing(&["trellis:plugin/log@0.2.0"]),
        )
        .await,
    );
    assert!(
        future.contains("trellis:plugin@0.2.0")
            && future.contains("trellis:plugin/log@0.2.0")
            && future.contains(&format!(
                "implements trellis:plugin@{}",
                trellis::plugin::WORLD_VERSION
            ))
            && future.contains("upgrade the runtime"),
        "{future}"
    );
    // A wasi:http component importing what this runtime does not link:
    // the import is named, with what would serve instead.
    let keyvalue = detail(
        upload(
            &server,
            "alien",
            wasi_http_importing("wasi:keyvalue/store@0.2.0-draft2"),
        )
        .await,
    );
    assert!(
        keyvalue.contains("imports `wasi:keyvalue/store@0.2.0-draft2`")
            && keyvalue.contains("does not provide")
            && keyvalue.contains("links wasi:keyvalue/{store,atomics,batch}@0.2.0-draft")
            && !keyvalue.contains("does not implement"),
        "{keyvalue}"
    );
    // The version it links, without the grant: the grant is named.
    let ungranted = detail(
        upload(
            &server,
            "alien",
            wasi_http_importing("wasi:keyvalue/store@0.2.0-draft"),
        )
        .await,
    );
    assert!(ungranted.contains("capability `keyvalue`"), "{ungranted}");
    // A capability it uses without a grant: which one, and the line.
    let notes = std::fs::read(guest("notes")).expect("notes is built");
    let ungranted = detail(upload(&server, "alien", notes).await);
    assert!(
        ungranted.contains("capability `sql`") && ungranted.contains("grants"),
        "{ungranted}"
    );
    // None of them serves, and the server does.
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

/// With no `admin.tokens`, nothing unauthenticated deploys code: an upload
/// without a token is refused even on loopback, and succeeds with the
/// node's own token from `<data_dir>/admin-token`; reads stay open on
/// loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_the_node_token_is_refused() {
    let mut server = TestServer::start(&hello_toml()).await;
    let token = server.take_admin_token().expect("the node made a token");
    assert!(token.len() >= 32, "{token}");
    let refused = upload(&server, "hello", next_bytes()).await;
    refused.assert_problem(401, "unauthorized");
    assert_eq!(version_of(&server.get("/hello").await), None);
    let wrong = server
        .send(
            Method::PUT,
            "/admin/plugins/hello",
            &[("authorization", "Bearer not-the-node-token-at-all")],
            next_bytes(),
        )
        .await;
    wrong.assert_problem(401, "unauthorized");
    let bearer = format!("Bearer {token}");
    let deployed = server
        .send(
            Method::PUT,
            "/admin/plugins/hello",
            &[("authorization", bearer.as_str())],
            next_bytes(),
        )
        .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text());
    assert_eq!(
        version_of(&server.get("/hello").await).as_deref(),
        Some(NEXT)
    );
    assert_eq!(server.get("/admin/plugins").await.status, 200);
    server.shutdown().await;
}
