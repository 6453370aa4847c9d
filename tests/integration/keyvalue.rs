//! `wasi:keyvalue` for components written for `wasmtime serve -S keyvalue`
//! (the `wasi_keyvalue` example): each plugin's own buckets, in process
//! without Redis and in a real Redis with it, the grant, the named stores,
//! the limits, and a Redis that goes away.

use http::Method;
use trellis_tests::redis::{self, PrivateRedis};
use trellis_tests::{Reply, TestServer, guest};

/// Plugins `one` and `two` of the example, granted `keyvalue`; `two` may
/// open the `sessions` store too. `extra` is appended (a `[redis]` table).
fn toml(extra: &str) -> String {
    let path = guest("wasi_keyvalue");
    format!(
        "[plugins.one]\npath = {path:?}\ngrants = [\"keyvalue\"]\n\n\
         [plugins.one.limits]\nmax_cache_value = \"1KiB\"\n\n\
         [plugins.two]\npath = {path:?}\ngrants = [\"keyvalue\"]\nkeyvalue_stores = [\"sessions\"]\n\n\
         {extra}"
    )
}

async fn call(server: &TestServer, method: Method, path: &str, body: &str) -> (u16, String) {
    let reply: Reply = server.send(method, path, &[], body.to_string()).await;
    (reply.status.as_u16(), reply.text())
}

async fn put(server: &TestServer, path: &str, body: &str) {
    assert_eq!(
        call(server, Method::PUT, path, body).await.0,
        204,
        "PUT {path}"
    );
}

/// `n` `key=value` lines, keys `prefix0000`…
fn lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix}{i:04}=v{i}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_plugin_keeps_its_own_values_in_process() {
    let server = TestServer::start(&toml("")).await;
    let get = |path: &'static str| call(&server, Method::GET, path, "");

    put(&server, "/one/k/a", "1").await;
    assert_eq!(get("/one/k/a").await, (200, "1".into()));
    assert_eq!(get("/two/k/a").await.0, 404, "another plugin's bucket");
    assert_eq!(call(&server, Method::HEAD, "/one/k/a", "").await.0, 200);
    assert_eq!(call(&server, Method::HEAD, "/one/k/b", "").await.0, 404);

    // atomics: a key not set counts from 0; a value that is not a number
    // is refused, not overwritten.
    assert_eq!(
        call(&server, Method::POST, "/one/k/n?add=5", "").await,
        (200, "5".into())
    );
    assert_eq!(
        call(&server, Method::POST, "/one/k/n?add=2", "").await,
        (200, "7".into())
    );
    put(&server, "/one/k/word", "seven").await;
    let (status, text) = call(&server, Method::POST, "/one/k/word?add=1", "").await;
    assert_eq!(status, 500);
    assert!(text.contains("not a decimal number"), "{text}");
    assert_eq!(get("/one/k/word").await.1, "seven");

    // batch
    put(&server, "/one/k/word", "x").await;
    assert_eq!(
        call(&server, Method::POST, "/one/many", "x=1\ny=2\n")
            .await
            .0,
        204
    );
    assert_eq!(
        get("/one/many?keys=x,y,z").await,
        (200, "x=1\ny=2\nz\n".into())
    );
    assert_eq!(
        call(&server, Method::DELETE, "/one/many?keys=x,y", "")
            .await
            .0,
        204
    );
    assert_eq!(get("/one/many?keys=x,y").await.1, "x\ny\n");
    assert_eq!(get("/one/keys").await.1, "a\nn\nword\n");
    assert_eq!(call(&server, Method::DELETE, "/one/k/a", "").await.0, 204);
    assert_eq!(get("/one/k/a").await.0, 404);

    // More keys than one list-keys page: the guest follows the cursor.
    for chunk in [0..600, 600..1100] {
        let body = lines("p", chunk);
        assert_eq!(call(&server, Method::POST, "/two/many", &body).await.0, 204);
    }
    let keys = get("/two/keys").await.1;
    assert_eq!(keys.lines().count(), 1100);
    assert!(keys.lines().all(|k| k.starts_with('p')), "{keys}");

    // A batch over the limit, and a value over the plugin's limit.
    let (status, text) = call(&server, Method::POST, "/one/many", &lines("q", 0..1001)).await;
    assert_eq!(status, 500);
    assert!(text.contains("at most 1000 keys"), "{text}");
    assert_eq!(
        get("/one/keys").await.1,
        "n\nword\n",
        "nothing of it was kept"
    );
    let (status, text) = call(&server, Method::PUT, "/one/k/big", &"x".repeat(2048)).await;
    assert_eq!(status, 500);
    assert!(
        text.contains("larger than the limit of 1024 bytes"),
        "{text}"
    );

    // Named stores: only the listed ones open, each its own bucket.
    let (status, text) = get("/one/k/a?store=sessions").await;
    assert_eq!(status, 500);
    assert!(text.contains("NoSuchStore"), "{text}");
    put(&server, "/two/k/s?store=sessions", "open").await;
    assert_eq!(get("/two/k/s?store=sessions").await, (200, "open".into()));
    assert_eq!(get("/two/k/s").await.0, 404, "default is another bucket");
    assert_eq!(get("/two/k/s?store=default").await.0, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyvalue_grant_is_needed() {
    let path = guest("wasi_keyvalue");
    let err = trellis::Server::start(&trellis_tests::config(&format!(
        "[plugins.one]\npath = {path:?}\n"
    )))
    .await
    .expect_err("wasi:keyvalue needs the keyvalue grant")
    .to_string();
    assert!(err.contains("capability `keyvalue`"), "{err}");

    let err = trellis::Config::parse(
        &format!("[plugins.one]\npath = {path:?}\nkeyvalue_stores = [\"sessions\"]\n"),
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .expect_err("stores without the grant")
    .to_string();
    assert!(err.contains("plugins.one.keyvalue_stores"), "{err}");
}

/// With Redis the buckets are Redis's: two nodes see one value, increments
/// from both are atomic, `list-keys` pages with HSCAN's cursor, and while
/// Redis is away a call fails at once and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_nodes_share_buckets_and_a_lost_redis_fails_calls_not_the_node() {
    let mut private = PrivateRedis::start();
    let config = toml(&redis::toml_with_timeout(
        &private.url(),
        &redis::namespace(),
        "300ms",
    ));
    let a = TestServer::start(&config).await;
    let b = TestServer::start(&config).await;

    put(&a, "/one/k/shared", "from a").await;
    assert_eq!(
        call(&b, Method::GET, "/one/k/shared", "").await,
        (200, "from a".into())
    );
    assert_eq!(call(&b, Method::GET, "/two/k/shared", "").await.0, 404);

    let mut adds = tokio::task::JoinSet::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { a.client() } else { b.client() };
        adds.spawn(async move { call(&node, Method::POST, "/one/k/count?add=1", "").await.0 });
    }
    while let Some(status) = adds.join_next().await {
        assert_eq!(status.expect("the task ran"), 200);
    }
    assert_eq!(call(&a, Method::GET, "/one/k/count", "").await.1, "40");

    for chunk in [0..700, 700..1400] {
        let body = lines("p", chunk);
        assert_eq!(call(&b, Method::POST, "/two/many", &body).await.0, 204);
    }
    let keys = call(&a, Method::GET, "/two/keys", "").await.1;
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 1400, "every key, once, across HSCAN pages");

    private.stop();
    let (status, text) = call(&a, Method::PUT, "/one/k/later", "x").await;
    assert_eq!(status, 500);
    assert!(text.contains("unavailable"), "{text}");
    assert_eq!(
        a.get("/healthz").await.status,
        200,
        "the node keeps serving"
    );
    a.shutdown().await;
    b.shutdown().await;
}
