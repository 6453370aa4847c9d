//! Warm instances (`[plugins.<name>] reuse = N`): one instance serves up to
//! N requests of its plugin, and is dropped after a trap, a deadline, a
//! memory-limit hit, a reload, or `reuse_idle` without work. The
//! `misbehave` plugin's `/misbehave/served` counts in a global how many
//! requests its instance has served, so a reply shows which instance
//! answered: 1 is a fresh one.

use std::time::Duration;

use http::Method;
use trellis_tests::{TestServer, guest};

/// `misbehave` with `reuse` (and `reuse_idle` when given), one instance at
/// a time so the order of instances is known.
async fn server(reuse: &str) -> TestServer {
    TestServer::start(&format!(
        r#"
[plugins.misbehave]
path = {path:?}
grants = ["config", "sql"]
{reuse}
[plugins.misbehave.limits]
max_concurrency = 1
deadline = "1s"
memory = "32MiB"
"#,
        path = guest("misbehave")
    ))
    .await
}

/// What `/misbehave/served` answers.
async fn served(server: &TestServer) -> u64 {
    let reply = server.get("/misbehave/served").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["served"].as_u64().expect("a count")
}

async fn sequence(server: &TestServer, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(served(server).await);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reuse_every_request_gets_a_fresh_instance() {
    let server = server("").await;
    assert_eq!(sequence(&server, 3).await, [1, 1, 1]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_serves_reuse_requests_then_a_fresh_one_follows() {
    let server = server("reuse = 3").await;
    assert_eq!(sequence(&server, 7).await, [1, 2, 3, 1, 2, 3, 1]);
    let metrics = server.get("/metrics").await.text();
    let reused = metrics
        .lines()
        .find(|l| l.starts_with("trellis_instances_reused_total{plugin=\"misbehave\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok());
    assert_eq!(reused, Some(4.0), "{metrics}");
    server.shutdown().await;
}

/// A trap, a deadline and a memory-limit hit each end the instance: the
/// next request gets a fresh one, and gets it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_discards_the_instance() {
    let server = server("reuse = 100").await;
    for (path, status, code) in [
        ("/misbehave/trap", 500, "guest_fault"),
        ("/misbehave/loop", 504, "deadline_exceeded"),
        ("/misbehave/memory", 500, "memory_limit"),
    ] {
        assert_eq!(sequence(&server, 2).await, [1, 2], "before {path}");
        server.get(path).await.assert_problem(status, code);
        assert_eq!(served(&server).await, 1, "after {path}");
        // The fresh one is warm in its turn.
        assert_eq!(served(&server).await, 2, "after {path}");
        // Start the next round from a fresh instance.
        server.get("/misbehave/trap").await;
    }
    // An error the guest answers itself is not a fault: the instance stays.
    assert_eq!(served(&server).await, 1);
    let failed = server.get("/misbehave/fail").await;
    assert!(failed.status.is_server_error(), "{}", failed.text());
    assert_eq!(served(&server).await, 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_is_dropped_after_reuse_idle() {
    let server = server("reuse = 100\nreuse_idle = \"200ms\"").await;
    assert_eq!(sequence(&server, 2).await, [1, 2]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sequence(&server, 2).await, [1, 2]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_starts_from_fresh_instances() {
    let server = server("reuse = 100").await;
    assert_eq!(sequence(&server, 2).await, [1, 2]);
    let reloaded = server
        .send(
            Method::POST,
            "/admin/plugins/misbehave/reload",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    assert_eq!(sequence(&server, 2).await, [1, 2]);
    server.shutdown().await;
}

/// Concurrent requests each get an instance of their own: with two at a
/// time, two instances are warm, and no count passes `reuse`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_share_an_instance() {
    let server = std::sync::Arc::new(
        TestServer::start(&format!(
            r#"
[plugins.misbehave]
path = {path:?}
grants = ["config", "sql"]
reuse = 5
"#,
            path = guest("misbehave")
        ))
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move { sequence(&server, 25).await }));
    }
    let mut counts = Vec::new();
    for task in tasks {
        counts.extend(task.await.expect("joined"));
    }
    assert_eq!(counts.len(), 100);
    assert!(counts.iter().all(|n| (1..=5).contains(n)), "{counts:?}");
    // Each instance counts 1, 2, ... in turn: a count is never seen more
    // often than the count below it.
    let times = |n: u64| counts.iter().filter(|&&c| c == n).count();
    for n in 2..=5 {
        assert!(times(n) <= times(n - 1), "{counts:?}");
    }
    assert!(times(2) > 0, "no instance was reused: {counts:?}");
}
