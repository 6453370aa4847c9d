//! Every per-plugin limit, triggered by the `misbehave` plugin: the right
//! status, problem+json with the request id, and a normal request answered
//! right after each.

use std::time::Duration;

use http::Method;
use trellis_tests::{TestServer, guest, raw_exchange};

async fn misbehave() -> TestServer {
    TestServer::start(&format!(
        r#"
[plugins.misbehave]
path = {path:?}
grants = ["config", "sql"]
[plugins.misbehave.limits]
deadline = "500ms"
memory = "16MiB"
max_concurrency = 1
max_queued = 0
max_request_body = "1KiB"
max_response_body = "1MiB"
"#,
        path = guest("misbehave")
    ))
    .await
}

async fn still_serving(server: &TestServer) {
    let reply = server.get("/misbehave/ok").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_hits_the_deadline() {
    let server = misbehave().await;
    let body = server
        .get("/misbehave/loop")
        .await
        .assert_problem(504, "deadline_exceeded");
    assert!(body["detail"].as_str().unwrap_or("").contains("500ms"));
    still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_in_a_host_call_hits_the_deadline() {
    let server = misbehave().await;
    server
        .get("/misbehave/sleep?ms=5000")
        .await
        .assert_problem(504, "deadline_exceeded");
    still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_memory_cap() {
    let server = misbehave().await;
    let body = server
        .get("/misbehave/memory")
        .await
        .assert_problem(500, "memory_limit");
    assert!(body["detail"].as_str().unwrap_or("").contains("16777216"));
    still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_guest_fault() {
    let server = misbehave().await;
    let body = server
        .get("/misbehave/trap")
        .await
        .assert_problem(500, "guest_fault");
    assert!(body["detail"].as_str().unwrap_or("").contains("wasm trap"));
    still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_is_refused() {
    let server = misbehave().await;
    server
        .get("/misbehave/big?bytes=2000000")
        .await
        .assert_problem(500, "response_too_large");
    let reply = server.get("/misbehave/big?bytes=1000").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 1000);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_status_is_refused() {
    let server = misbehave().await;
    server
        .get("/misbehave/status")
        .await
        .assert_problem(500, "invalid_response");
    still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_sheds_with_retry_after() {
    let server = std::sync::Arc::new(misbehave().await);
    let busy = {
        let server = server.clone();
        tokio::spawn(async move { server.get("/misbehave/sleep?ms=400").await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reply = server.get("/misbehave/ok").await;
    reply.assert_problem(503, "overloaded");
    assert_eq!(reply.header("retry-after"), Some("1"));
    let slept = busy.await.expect("task");
    assert_eq!(slept.status, 200);
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_over_the_limit_is_413() {
    let server = misbehave().await;
    let reply = server
        .send(Method::POST, "/misbehave/body", &[], vec![b'a'; 1000])
        .await;
    assert_eq!(reply.text(), "1000");
    server
        .send(Method::POST, "/misbehave/body", &[], vec![b'a'; 2000])
        .await
        .assert_problem(413, "payload_too_large");

    // A chunked body declares no length: the limit applies while reading.
    let chunk = "a".repeat(800);
    let request = format!(
        "POST /misbehave/body HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = raw_exchange(server.addr(), request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_in_a_bounded_queue() {
    let server = std::sync::Arc::new(
        TestServer::start(&format!(
            r#"
[plugins.misbehave]
path = {path:?}
grants = ["config", "sql"]
[plugins.misbehave.limits]
max_concurrency = 1
max_queued = 1
"#,
            path = guest("misbehave")
        ))
        .await,
    );
    let get = |path: &'static str| {
        let server = server.clone();
        tokio::spawn(async move { server.get(path).await })
    };
    let busy = get("/misbehave/sleep?ms=600");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let queued = get("/misbehave/ok");
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The instance is busy and the queue full: shed.
    let shed = server.get("/misbehave/ok").await;
    shed.assert_problem(503, "overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    // The queued one ran once the instance was free.
    assert_eq!(queued.await.expect("task").status, 200);
    assert_eq!(busy.await.expect("task").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_call_quotas_per_plugin() {
    let server = TestServer::start(&format!(
        r#"
[plugins.misbehave]
path = {misbehave:?}
grants = ["config", "sql"]
[plugins.misbehave.limits]
max_rows = 5

[plugins.kv]
path = {kv:?}
grants = ["cache", "lock", "sql"]
[plugins.kv.limits]
max_cache_value = "16B"

[plugins.tasks]
path = {tasks:?}
grants = ["log", "sql", "jobs"]
[plugins.tasks.limits]
max_enqueue = 3
"#,
        misbehave = guest("misbehave"),
        kv = guest("kv"),
        tasks = guest("tasks"),
    ))
    .await;
    let rows = |n: u32| {
        format!(
            r#"{{"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c"}}"#
        )
    };
    let five = server
        .send(Method::POST, "/misbehave/sql", &[], rows(5))
        .await
        .json();
    assert_eq!(five["ok"]["rows"], 5, "{five}");
    let six = server
        .send(Method::POST, "/misbehave/sql", &[], rows(6))
        .await
        .json();
    assert_eq!(six["error"], "invalid", "{six}");
    assert!(
        six["message"]
            .as_str()
            .is_some_and(|m| m.contains("limits.max_rows")),
        "{six}"
    );

    let put = |bytes: usize| server.send(Method::PUT, "/kv/quota", &[], vec![b'v'; bytes]);
    assert_eq!(put(16).await.status, 204);
    put(17).await.assert_problem(500, "cache_value_too_large");

    let reply = server
        .send(Method::POST, "/tasks/many/noop?n=3", &[], "{}")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let over = server
        .send(Method::POST, "/tasks/many/noop?n=4", &[], "{}")
        .await;
    let problem = over.assert_problem(500, "job_invalid");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("limits.max_enqueue")),
        "{problem}"
    );
}

/// `hello`'s latencies over `n` sequential requests, sorted.
async fn hello_latencies(server: &TestServer, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let reply = server.get("/hello").await;
        latencies.push(started.elapsed());
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    latencies.sort();
    latencies
}

/// On the server's own runtime (`trellis::server::runtime`), whose I/O
/// polling interval is what this measures.
#[test]
fn a_looping_neighbour_barely_slows_another_plugin() {
    trellis::server::runtime(Some(2))
        .expect("a runtime")
        .block_on(looping_neighbour());
}

async fn looping_neighbour() {
    let server = std::sync::Arc::new(
        TestServer::start(&format!(
            r#"
[plugins.hello]
builtin = "hello"

[plugins.misbehave]
path = {path:?}
grants = ["config", "sql"]
[plugins.misbehave.limits]
deadline = "1s"
max_concurrency = 2
max_queued = 0
"#,
            path = guest("misbehave")
        ))
        .await,
    );
    let p99 = |l: &[Duration]| l[l.len() * 99 / 100];
    let solo = hello_latencies(&server, 400).await;

    // Both instances of `misbehave` spin in endless loops, all the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (server, stop) = (server.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let mut timed_out = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < deadline
            {
                let status = server.get("/misbehave/loop").await.status;
                assert!(status == 504 || status == 503, "{status}");
                timed_out += u32::from(status == 504);
            }
            timed_out
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let noisy = hello_latencies(&server, 400).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut looped = 0;
    for l in loops {
        looped += l.await.expect("task");
    }
    assert!(looped >= 1, "the neighbour never looped to its deadline");
    eprintln!(
        "hello p50/p99/max solo {:?}/{:?}/{:?}, beside a looping neighbour {:?}/{:?}/{:?}",
        solo[solo.len() / 2],
        p99(&solo),
        solo[solo.len() - 1],
        noisy[noisy.len() / 2],
        p99(&noisy),
        noisy[noisy.len() - 1],
    );
    // The bound (README, "Limits"): guests yield every epoch tick (2 ms),
    // so a looping neighbour costs another plugin's request a few ticks.
    assert!(
        p99(&noisy) < p99(&solo) + Duration::from_millis(50),
        "hello p99 {:?} beside the loop, {:?} alone",
        p99(&noisy),
        p99(&solo)
    );
}
