//! Graceful shutdown of a node in its own process: SIGTERM with 100 slow
//! requests and a job in flight.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use http::Method;
use trellis_tests::node::ChildNode;
use trellis_tests::{TestServer, config_in, fresh_dir, guest};

#[tokio::test]
#[ignore = "a child process's body, run by the tests below"]
async fn node_child() {
    trellis_tests::node::serve_child().await;
}

/// A node on the stopped node's data directory that runs no jobs, to read
/// what became of them.
async fn job_reader(dir: &std::path::Path) -> TestServer {
    let toml = format!(
        "data_dir = {:?}\n[jobs]\nqueues = {{}}\n",
        dir.display().to_string()
    );
    TestServer::start_config(&config_in(&toml, dir)).await
}

/// Waits until job `job` of the `tasks` plugin has started a run.
async fn wait_started(server: &TestServer, job: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runs = server.get(&format!("/tasks/runs/{job}")).await.json();
        if runs["runs"].as_array().is_some_and(|r| !r.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_jobs_then_exits_0() {
    let dir = fresh_dir();
    let toml = format!(
        "data_dir = {:?}

[server]
drain_delay = \"1s\"
shutdown_grace = \"20s\"

[engine]
max_instances = 160

[jobs]
poll_interval = \"50ms\"

[plugins.misbehave]
path = {:?}
grants = [\"config\", \"sql\"]

[plugins.misbehave.limits]
max_concurrency = 128
deadline = \"20s\"

[plugins.tasks]
path = {:?}
grants = [\"log\", \"sql\", \"jobs\"]
",
        dir.display().to_string(),
        guest("misbehave"),
        guest("tasks"),
    );
    let mut node = ChildNode::start("shutdown::node_child", &toml);
    let addr = node.server.addr();

    // A job that is running when the signal comes.
    let enqueued = node
        .server
        .send(Method::POST, "/tasks/enqueue/spin", &[], r#"{"ms": 1500}"#)
        .await;
    assert_eq!(enqueued.status, 200, "{}", enqueued.text());
    let job = enqueued.json()["id"].as_str().expect("an id").to_string();
    wait_started(&node.server, &job).await;

    // 100 slow requests, each on a connection of its own.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let client = TestServer::at(addr);
        slow.push(tokio::spawn(async move {
            client.get("/misbehave/sleep?ms=2500").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.signal("TERM");

    // Draining: not ready, still accepting for the drain delay.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = TestServer::at(addr).get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    // Then new connections are refused while the slow ones finish.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "a new connection was accepted after the drain delay"
    );
    for request in slow {
        let reply = request.await.expect("joined");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "slept");
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = node.wait_exit(Duration::from_secs(30));
        (status, node)
    })
    .await
    .expect("joined");
    assert!(
        status.0.is_some_and(|s| s.success()),
        "exit status: {:?}",
        status.0
    );

    // The job finished (or went back to the queue): never lost.
    let server = job_reader(&dir).await;
    let shown = server.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    let state = shown.json()["state"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ["completed", "available", "retryable"].contains(&state.as_str()),
        "job state after shutdown: {state}"
    );
    eprintln!("job after shutdown: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let toml = format!(
        "[server]\nshutdown_grace = \"30s\"\n\n[plugins.misbehave]\npath = {:?}\n\
         grants = [\"config\", \"sql\"]\n\n[plugins.misbehave.limits]\ndeadline = \"20s\"\n",
        guest("misbehave")
    );
    let mut node = ChildNode::start("shutdown::node_child", &toml);
    let client = TestServer::at(node.server.addr());
    let slow = tokio::spawn(async move { client.get("/misbehave/sleep?ms=15000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.signal("TERM");
    let started = Instant::now();
    let (status, _node) =
        tokio::task::spawn_blocking(move || (node.wait_exit(Duration::from_secs(10)), node))
            .await
            .expect("joined");
    assert_eq!(status.and_then(|s| s.code()), Some(143), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    slow.abort();
}

/// A job that outlasts the grace period does not hold the process: at the
/// end of the grace it is handed back and interrupted, and the node exits
/// within a second or so of the grace, whatever the job would still do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_the_grace_period_is_interrupted_and_the_node_exits() {
    let dir = fresh_dir();
    let toml = format!(
        "data_dir = {:?}\n\n[server]\ndrain_delay = \"0s\"\nshutdown_grace = \"1s\"\n\n\
         [jobs]\npoll_interval = \"50ms\"\n\n[plugins.tasks]\npath = {:?}\n\
         grants = [\"log\", \"sql\", \"jobs\"]\n",
        dir.display().to_string(),
        guest("tasks"),
    );
    let mut node = ChildNode::start("shutdown::node_child", &toml);
    let enqueued = node
        .server
        .send(Method::POST, "/tasks/enqueue/spin", &[], r#"{"ms": 30000}"#)
        .await;
    assert_eq!(enqueued.status, 200, "{}", enqueued.text());
    let job = enqueued.json()["id"].as_str().expect("an id").to_string();
    wait_started(&node.server, &job).await;
    node.signal("TERM");
    let signalled = Instant::now();
    let (status, _node) =
        tokio::task::spawn_blocking(move || (node.wait_exit(Duration::from_secs(40)), node))
            .await
            .expect("joined");
    let took = signalled.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status: {status:?}"
    );
    // The grace (1 s) plus the bound (1 s), with room for a slow machine;
    // the job alone would have run 29 s more.
    assert!(
        took < Duration::from_secs(4),
        "exited {took:?} after SIGTERM"
    );

    let server = job_reader(&dir).await;
    let shown = server.get(&format!("/api/v1/jobs/{job}")).await.json();
    assert_eq!(shown["state"], "scheduled", "{shown}");
    assert_eq!(shown["attempt"], 1, "the cut-off run counts: {shown}");
}
