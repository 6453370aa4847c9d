//! The `cache` capability through the `kv` test plugin: in process, on a
//! shared Redis across two nodes (one in a process of its own), under a
//! stampede, and with Redis stopped and started again.

use std::time::{Duration, Instant};

use http::Method;
use trellis_tests::kv::{kv_toml, metric, post};
use trellis_tests::node::ChildNode;
use trellis_tests::redis::{self, PrivateRedis};
use trellis_tests::{Reply, TestServer};

async fn put(server: &TestServer, key: &str, value: &str, query: &str) -> Reply {
    server
        .send(
            Method::PUT,
            &format!("/kv/{key}{query}"),
            &[],
            value.to_string(),
        )
        .await
}

async fn value(server: &TestServer, key: &str) -> serde_json::Value {
    let reply = server.get(&format!("/kv/{key}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["value"].clone()
}

#[tokio::test]
async fn keys_values_tags_and_limits_in_process() {
    let server = TestServer::start(&kv_toml("")).await;
    assert_eq!(value(&server, "a").await, serde_json::Value::Null);
    assert_eq!(put(&server, "a", "one", "?tags=t1,t2").await.status, 204);
    assert_eq!(put(&server, "b", "two", "?tags=t2").await.status, 204);
    assert_eq!(put(&server, "c", "three", "").await.status, 204);
    assert_eq!(value(&server, "a").await, "one");
    // get-many answers in key order.
    let many = server
        .send(Method::POST, "/kv/many", &[], r#"["c","nope","a"]"#)
        .await;
    assert_eq!(
        many.json()["values"],
        serde_json::json!(["three", null, "one"])
    );
    // A tag drops every entry carrying it, and nothing else.
    let reply = server
        .send(Method::POST, "/kv/tags/t2/invalidate", &[], "")
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(value(&server, "a").await, serde_json::Value::Null);
    assert_eq!(value(&server, "b").await, serde_json::Value::Null);
    assert_eq!(value(&server, "c").await, "three");
    // Delete, and ttl expiry.
    assert_eq!(
        server.send(Method::DELETE, "/kv/c", &[], "").await.status,
        204
    );
    assert_eq!(value(&server, "c").await, serde_json::Value::Null);
    assert_eq!(put(&server, "short", "x", "?ttl_ms=100").await.status, 204);
    assert_eq!(value(&server, "short").await, "x");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(value(&server, "short").await, serde_json::Value::Null);
    // A value above cache.max_value (1 MiB by default) is a clear error.
    let big = server.get(&format!("/kv/big/{}", 2 * 1024 * 1024)).await;
    let body = big.assert_problem(500, "cache_value_too_large");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("1048576"),
        "{body}"
    );
    assert_eq!(server.get("/kv/big/1000").await.status, 200);
    // Metrics count the tiers.
    assert!(
        metric(
            &server,
            "trellis_cache_lookups_total",
            "tier=\"l1\",result=\"hit\""
        )
        .await
            >= 3.0
    );
    server.shutdown().await;
}

/// Keys are namespaced per plugin by the host: checked on the backend the
/// capability calls with the plugin's name.
#[tokio::test]
async fn plugins_cannot_read_each_others_keys() {
    let cache = trellis::backend::cache::CacheService::start(
        &trellis::config::CacheConfig::default(),
        None,
        trellis::monitor::CacheStats::default(),
    )
    .await;
    cache
        .set("kv", "k", Some("mine".into()), Duration::from_secs(60), &[])
        .await
        .expect("stored");
    assert_eq!(cache.get("kv2", "k").await, Ok(None));
    assert_eq!(cache.get("kv", "k").await, Ok(Some(Some("mine".into()))));
    // A plugin cannot forge the runtime's response-cache keys.
    assert!(cache.get("kv", "\u{0}http:abc").await.is_err());
    cache.invalidate_tag("kv2", "t").await.expect("ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stampede_loads_once_per_node() {
    // 100 requests wait at once, each in an instance of its own.
    let server = TestServer::start(&format!(
        "{}[plugins.kv.limits]\nmax_concurrency = 128\n",
        kv_toml("[engine]\nmax_instances = 160\n")
    ))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let client = TestServer::at(server.addr());
        tasks.push(tokio::spawn(async move {
            client.get("/kv/load/hot?delay_ms=300").await
        }));
    }
    let mut loaded = 0;
    let mut values = std::collections::BTreeSet::new();
    for task in tasks {
        let reply = task.await.expect("joined");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        loaded += usize::from(body["loaded"] == true);
        values.insert(body["value"].to_string());
    }
    assert_eq!(loaded, 1, "the loader ran more than once");
    assert_eq!(values.len(), 1, "callers saw different values: {values:?}");

    // Negative caching: "none" is remembered.
    let first = server.get("/kv/load/missing?absent=1").await.json();
    assert_eq!(first, serde_json::json!({"value": null, "loaded": true}));
    let second = server.get("/kv/load/missing?absent=1").await.json();
    assert_eq!(second, serde_json::json!({"value": null, "loaded": false}));

    // Stale-on-error: a failed reload lets the waiters have the old value.
    let fresh = server.get("/kv/load/flaky?ttl_ms=200").await.json();
    assert_eq!(fresh["loaded"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failing = {
        let client = TestServer::at(server.addr());
        tokio::spawn(async move { client.get("/kv/load/flaky?delay_ms=300&fail=1").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiter = server.get("/kv/load/flaky").await.json();
    let failed = failing.await.expect("joined");
    assert_eq!(failed.status, 503, "{}", failed.text());
    assert_eq!(waiter["value"], fresh["value"], "{waiter}");
    assert_eq!(waiter["loaded"], false);
    assert!(metric(&server, "trellis_cache_stale_served_total", "").await >= 1.0);
    assert!(metric(&server, "trellis_cache_loads_total", "result=\"failed\"").await >= 1.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a node for the multi-process tests, run as a child process"]
async fn node_child() {
    trellis_tests::node::serve_child().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_the_other_process_within_the_window() {
    let redis_toml = redis::toml(&redis::url(), &redis::namespace());
    let toml = kv_toml(&redis_toml);
    let a = TestServer::start(&toml).await;
    let b = ChildNode::start("cache::node_child", &toml);
    let b = &b.server;

    assert_eq!(put(&a, "shared", "v1", "?tags=group").await.status, 204);
    // B reads it through Redis and keeps it in its L1.
    assert_eq!(value(b, "shared").await, "v1");
    assert_eq!(value(b, "shared").await, "v1");
    // A overwrites: B stops serving v1 within the window (documented as
    // milliseconds; checked against a 2 s bound).
    assert_eq!(put(&a, "shared", "v2", "?tags=group").await.status, 204);
    eventually(|| async { value(b, "shared").await == "v2" }).await;
    // A deletes: B forgets.
    assert_eq!(
        a.send(Method::DELETE, "/kv/shared", &[], "").await.status,
        204
    );
    eventually(|| async { value(b, "shared").await.is_null() }).await;
    // A tag invalidated on B drops A's L1 entries.
    assert_eq!(put(&a, "t1", "x", "?tags=group").await.status, 204);
    assert_eq!(value(&a, "t1").await, "x");
    assert_eq!(value(b, "t1").await, "x");
    let reply = b
        .send(Method::POST, "/kv/tags/group/invalidate", &[], "")
        .await;
    assert_eq!(reply.status, 204);
    eventually(|| async { value(&a, "t1").await.is_null() }).await;
    assert!(metric(&a, "trellis_cache_invalidations_total", "origin=\"remote\"").await >= 1.0);
    a.shutdown().await;
}

/// Polls `check` for up to 2 s.
async fn eventually<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_degrades_and_recovers() {
    let mut private = PrivateRedis::start();
    let toml = kv_toml(&redis::toml(&private.url(), "fault"));
    let server = TestServer::start(&toml).await;
    // A node that stays ready without its Redis.
    let tolerant = TestServer::start(&kv_toml(&format!(
        "{}required = false\n",
        redis::toml(&private.url(), "fault-tolerant")
    )))
    .await;
    assert_eq!(put(&server, "k", "before", "").await.status, 204);
    assert_eq!(post(&server, "/locks/l/try").await.status, 200);
    assert_eq!(metric(&server, "trellis_redis_up", "").await, 1.0);
    assert_eq!(server.get("/readyz").await.status, 200);

    private.stop();
    // Requests still succeed; the cache falls back to process memory.
    eventually(|| async { metric(&server, "trellis_redis_up", "").await == 0.0 }).await;
    // Readiness says Redis is down, unless the node does not require it.
    let unready = server.get("/readyz").await;
    let problem = unready.assert_problem(503, "not_ready");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("redis")),
        "{problem}"
    );
    assert_eq!(tolerant.get("/readyz").await.status, 200);
    tolerant.shutdown().await;
    // Let the node see the drop (it flushes its process tier once).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(put(&server, "k", "during", "").await.status, 204);
    assert_eq!(value(&server, "k").await, "during");
    assert_eq!(server.get("/kv/load/x").await.status, 200);
    // Locks say so, with a typed error.
    post(&server, "/locks/l/try")
        .await
        .assert_problem(503, "lock_unavailable");
    assert!(metric(&server, "trellis_cache_redis_errors_total", "").await >= 1.0);

    private.restart();
    let started = Instant::now();
    loop {
        let reply = post(&server, "/locks/l/try").await;
        if reply.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "locks did not recover: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(|| async { metric(&server, "trellis_redis_up", "").await == 1.0 }).await;
    assert_eq!(server.get("/readyz").await.status, 200);
    // Let the node see the reconnection (it flushes its process tier).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(put(&server, "k", "after", "").await.status, 204);
    assert_eq!(value(&server, "k").await, "after");
    server.shutdown().await;
}
