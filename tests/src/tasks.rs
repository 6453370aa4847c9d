//! The `tasks` test plugin (`plugins/tasks`): its config with fast job
//! timings, and requests to it and to the job API. Every attempt of a job
//! leaves a row in the plugin's `runs` table with the attempt number the
//! handler saw, so a test sees each delivery and redelivery.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use crate::{Reply, TestServer, guest};

/// Fast timings, so retries, rescues and ticks happen within a test; small
/// pools, so several nodes at once stay within PostgreSQL's connections.
pub fn tasks_toml(extra: &str) -> String {
    format!(
        "{extra}
[sql.pool]
max_connections = 4

[jobs]
connections = 3
max_attempts = 100
poll_interval = \"50ms\"
heartbeat = \"200ms\"
worker_timeout = \"1s\"
maintenance_interval = \"100ms\"
backoff_base = \"50ms\"
backoff_max = \"200ms\"
max_payload = \"64KiB\"

[jobs.queues]
default = 8
serial = 1

[plugins.tasks]
path = {:?}
grants = [\"log\", \"sql\", \"jobs\"]

[plugins.tasks.limits]
max_enqueue = 5000
# A request that enqueues hundreds of jobs shares the machine with busy
# workers; these tests check delivery, not how fast one request is.
deadline = \"60s\"
",
        guest("tasks")
    )
}

/// `POST path` with `body`.
pub async fn post(server: &TestServer, path: &str, body: &str) -> Reply {
    server.send(Method::POST, path, &[], body.to_string()).await
}

/// Enqueues through the plugin; returns the job id.
pub async fn enqueue(server: &TestServer, kind: &str, query: &str, payload: Value) -> String {
    let reply = post(
        server,
        &format!("/tasks/enqueue/{kind}{query}"),
        &payload.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["id"].as_str().expect("an id").to_string()
}

/// Job `id` as the job API shows it (must exist).
pub async fn job(server: &TestServer, id: &str) -> Value {
    let reply = server.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Polls job `id` until its state is `state` (within 20 s).
pub async fn wait_state(server: &TestServer, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = job(server, id).await;
        if job["state"] == state {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never reached {state}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/tasks/runs` until `runs` rows exist (within `within`).
pub async fn wait_runs(server: &TestServer, runs: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let seen = server.get("/tasks/runs").await.json();
        if seen["runs"].as_i64() >= Some(runs) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {runs} runs within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The runs of job `id` in the plugin's table, in order:
/// `[{"attempt", "kind", "seq", "finished"}]`.
pub async fn runs_of(server: &TestServer, id: &str) -> Vec<Value> {
    server.get(&format!("/tasks/runs/{id}")).await.json()["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
