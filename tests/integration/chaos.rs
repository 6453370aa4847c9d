//! Chaos: a worker killed with SIGKILL mid-batch, SIGTERM with requests
//! and jobs in flight on a shared queue, a private PostgreSQL
//! stopped and started under HTTP requests that use SQL, and a private
//! Redis stopped and then frozen with SIGSTOP under cache, response-cache
//! and lock requests. Each asserts what the operator is promised: no job
//! lost and the redelivery visible to the handler; every request answered
//! within a bound, as problem+json with the request id when it fails; and
//! recovery without restarting Trellis.
//!
//! The other chaos tests live with their area (`jobs.rs`, `shutdown.rs`,
//! `locks.rs`, `cache.rs`); `just chaos` runs them all (see
//! docs/testing.md).

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_tests::kv::{kv_toml, post as kv_post};
use trellis_tests::node::ChildNode;
use trellis_tests::pg::{Namespace, Pair};
use trellis_tests::redis::{self, PrivateRedis};
use trellis_tests::tasks::{enqueue, job, post, runs_of, tasks_toml, wait_state};
use trellis_tests::{Reply, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a node for the chaos tests, run as a child process"]
async fn node_child() {
    trellis_tests::node::serve_child().await;
}

/// `request` must answer within `bound`: a hang fails the test.
async fn within(bound: Duration, what: &str, request: impl Future<Output = Reply>) -> Reply {
    let started = Instant::now();
    let reply = tokio::time::timeout(bound, request)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {bound:?}"));
    eprintln!(
        "{what}: {} in {:?}",
        reply.status.as_u16(),
        started.elapsed()
    );
    reply
}

/// Polls `check` every 100 ms until it gives a value, for at most `bound`.
async fn recovers<T, F, Fut>(bound: Duration, what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            eprintln!("{what}: recovered in {:?}", started.elapsed());
            return value;
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not recovered within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Jobs of `state` the job API lists (at most 500).
async fn listed(server: &TestServer, state: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/api/v1/jobs?state={state}&limit=500"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["jobs"].as_array().cloned().unwrap_or_default()
}

/// Enqueues `n` `record` jobs through the job API, 8 at a time; their ids.
/// The host alone answers the job API, so a node whose CPU goes to
/// spinning jobs does not push these past a plugin's deadline.
async fn backlog(server: &TestServer, n: usize) -> Vec<String> {
    let started = Instant::now();
    let mut enqueuers = Vec::new();
    for part in 0..8 {
        let client = server.client();
        let count = n / 8 + usize::from(part < n % 8);
        enqueuers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let body = json!({"plugin": "tasks", "kind": "record"}).to_string();
                let reply = client
                    .send(http::Method::POST, "/api/v1/jobs", &[], body)
                    .await;
                assert_eq!(reply.status, 202, "{}", reply.text());
                ids.push(reply.json()["id"].as_str().expect("id").to_string());
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for enqueuer in enqueuers {
        ids.extend(enqueuer.await.expect("joined"));
    }
    eprintln!("{n} jobs enqueued in {:?}", started.elapsed());
    ids
}

/// SIGKILL of a node whose every worker is mid-job (8 jobs running) with
/// 200 more waiting: another node rescues the 8 and runs the rest. No job
/// is lost (all 208 complete, none discarded), and each rescued job's
/// handler saw attempt 1 and then attempt 2, the rescue recorded as the
/// first attempt's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_busy_worker_loses_no_job_and_the_handler_sees_the_redelivery() {
    let ns = Namespace::new().await;
    let toml = tasks_toml(&ns.toml());
    let busy = ChildNode::start("chaos::node_child", &toml);
    let mut spinning = Vec::new();
    for _ in 0..8 {
        // Long on the first attempt only: a redelivery finishes at once.
        let payload = json!({"ms": 120_000, "first_only": true});
        spinning.push(enqueue(&busy.server, "spin", "", payload).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &spinning {
        while runs_of(&busy.server, id).await.is_empty() {
            assert!(Instant::now() < deadline, "job {id} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    backlog(&busy.server, 200).await;
    busy.signal("KILL");
    drop(busy);

    let rescuer = TestServer::start(&toml).await;
    recovers(Duration::from_secs(90), "every job completed", || async {
        let completed = listed(&rescuer, "completed").await.len();
        (completed == 208).then_some(())
    })
    .await;
    for state in [
        "available",
        "scheduled",
        "retryable",
        "running",
        "discarded",
    ] {
        let left = listed(&rescuer, state).await;
        assert!(left.is_empty(), "jobs left {state}: {left:?}");
    }
    let runs = rescuer.get("/tasks/runs").await.json();
    assert_eq!(runs["jobs"], 208, "{runs}");
    for id in &spinning {
        let shown = job(&rescuer, id).await;
        assert_eq!(shown["state"], "completed", "{shown}");
        assert_eq!(shown["attempt"], 2, "{shown}");
        assert!(
            shown["errors"][0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("rescued")),
            "{shown}"
        );
        // What the handler itself saw, from the row each attempt left.
        let attempts: Vec<Value> = runs_of(&rescuer, id)
            .await
            .into_iter()
            .map(|r| r["attempt"].clone())
            .collect();
        assert_eq!(attempts, vec![json!(1), json!(2)], "job {id}");
    }
    rescuer.shutdown().await;
    ns.drop_all().await;
}

/// SIGTERM to a node with 8 jobs running (every worker busy), 100 jobs
/// waiting and 50 slow requests in flight, on a queue another node shares:
/// the requests are answered, the running jobs finish within the grace,
/// the node claims nothing more and exits 0; the other node runs the
/// waiting jobs. Each of the 108 jobs runs exactly once, as attempt 1:
/// none lost, none repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_requests_and_jobs_in_flight_loses_and_repeats_no_job() {
    let ns = Namespace::new().await;
    let toml = format!(
        "{}\n[plugins.misbehave]\npath = {:?}\ngrants = [\"config\", \"sql\"]\n\n\
         [plugins.misbehave.limits]\nmax_concurrency = 64\ndeadline = \"20s\"\n",
        tasks_toml(&format!(
            "{}\n[server]\ndrain_delay = \"500ms\"\nshutdown_grace = \"30s\"\n\n\
             [engine]\nmax_instances = 128\n",
            ns.toml()
        )),
        trellis_tests::guest("misbehave"),
    );
    let mut stopping = ChildNode::start("chaos::node_child", &toml);
    let addr = stopping.server.addr();
    let mut running = Vec::new();
    for _ in 0..8 {
        // Long enough to still run when the signal comes.
        running.push(enqueue(&stopping.server, "spin", "", json!({"ms": 10_000})).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &running {
        while runs_of(&stopping.server, id).await.is_empty() {
            assert!(Instant::now() < deadline, "job {id} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let waiting = backlog(&stopping.server, 100).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let client = TestServer::at(addr);
        slow.push(tokio::spawn(async move {
            client.get("/misbehave/sleep?ms=2000").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled_ms = trellis::clock::now_ms();
    stopping.signal("TERM");
    for request in slow {
        let reply = request.await.expect("joined");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "slept");
    }
    let (status, _stopping) = tokio::task::spawn_blocking(move || {
        let status = stopping.wait_exit(Duration::from_secs(60));
        (status, stopping)
    })
    .await
    .expect("joined");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status: {status:?}"
    );
    let exited_ms = trellis::clock::now_ms();

    let other = TestServer::start(&toml).await;
    for id in &running {
        let shown = job(&other, id).await;
        assert_eq!(
            shown["state"], "completed",
            "finished within the grace: {shown}"
        );
        assert_eq!(shown["attempt"], 1, "{shown}");
    }
    recovers(Duration::from_secs(60), "the waiting jobs", || async {
        let completed = listed(&other, "completed").await.len();
        (completed == 108).then_some(())
    })
    .await;
    let runs = other.get("/tasks/runs").await.json();
    assert_eq!(runs["jobs"], 108, "{runs}");
    assert_eq!(runs["runs"], 108, "a job ran twice: {runs}");
    // Were all 8 workers still busy when the signal came (the 8 jobs
    // finished after it)? Then the stopping node had no waiting job in
    // hand, and one it ran after the signal it claimed while stopping.
    let mut busy_at_signal = true;
    for id in &running {
        let finished = runs_of(&other, id).await[0]["finished"].as_u64();
        busy_at_signal &= finished.is_some_and(|f| f > signalled_ms);
    }
    for id in &waiting {
        let runs = runs_of(&other, id).await;
        assert_eq!(runs.len(), 1, "job {id}: {runs:?}");
        let finished = runs[0]["finished"].as_u64().unwrap_or_default();
        assert!(
            !busy_at_signal || finished <= signalled_ms || finished >= exited_ms,
            "job {id} was claimed while the node was stopping: {runs:?}"
        );
    }
    if !busy_at_signal {
        eprintln!(
            "notice: the running jobs ended before the signal (a slow machine); \
             whether the stopping node claims jobs was not checked"
        );
    }
    other.shutdown().await;
    ns.drop_all().await;
}

/// How long a request may take while PostgreSQL is down: the pool's
/// `acquire_timeout` (5 s by default) of connection attempts, and room for
/// a busy machine; the plugin's deadline (10 s) would end it as a 504.
const PG_DOWN_BOUND: Duration = Duration::from_secs(9);

/// A private PostgreSQL (the runtime store, the job queue and the plugin's
/// database) stopped under a serving node: requests that need it answer
/// within a bound with a 503 problem+json carrying the request id (the
/// plugin's SQL, its enqueue, its transaction, the job API, readiness),
/// and once it is started again the same requests succeed, a new job runs
/// and the leader's schedule ticks again, without restarting Trellis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_gets_503s_with_request_ids_then_recovers() {
    let pair = Pair::start(25452);
    // A schedule every second shows the leader's work (elected through
    // PostgreSQL) going on after the restart too.
    let toml = tasks_toml(&format!(
        "[sql.postgres]\nurl = {:?}\nnamespace = \"chaos\"\n\n\
         [[jobs.schedules]]\nplugin = \"tasks\"\nname = \"tick\"\ncron = \"* * * * * *\"\n\
         kind = \"noop\"\n",
        pair.url(pair.primary_port)
    ));
    let server = TestServer::start(&toml).await;
    let before = enqueue(&server, "record", "", json!({})).await;
    wait_state(&server, &before, "completed").await;
    assert_eq!(server.get("/readyz").await.status, 200);

    pair.run("stop-primary");
    // Concurrently, as traffic would come.
    let job_path = format!("/api/v1/jobs/{before}");
    let outage = Instant::now();
    let (read, enqueued, tx, api, ready, live) = tokio::join!(
        within(PG_DOWN_BOUND, "a SQL read", server.get("/tasks/runs")),
        within(
            PG_DOWN_BOUND,
            "an enqueue",
            post(&server, "/tasks/enqueue/record", "{}")
        ),
        within(
            PG_DOWN_BOUND,
            "a transaction",
            post(&server, "/tasks/tx/record?mark=down&commit=true", "{}")
        ),
        within(PG_DOWN_BOUND, "the job API", server.get(&job_path)),
        within(PG_DOWN_BOUND, "readiness", server.get("/readyz")),
        within(PG_DOWN_BOUND, "liveness", server.get("/healthz")),
    );
    read.assert_problem(503, "sql_unavailable");
    assert_eq!(read.header("retry-after"), Some("1"));
    enqueued.assert_problem(503, "job_queue_unavailable");
    tx.assert_problem(503, "sql_unavailable");
    api.assert_problem(503, "unavailable");
    ready.assert_problem(503, "not_ready");
    assert_eq!(live.status, 200, "{}", live.text());
    eprintln!(
        "the first answers after the stop: all within {:?}",
        outage.elapsed()
    );
    // Once found down, the breaker answers at once: no request waits for
    // the pool's acquire timeout (5 s), and readiness names the database.
    let mut took = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let ready = server.get("/readyz").await;
        took.push(started.elapsed());
        let body = ready.assert_problem(503, "not_ready");
        let named = format!("PostgreSQL 127.0.0.1:{}", pair.primary_port);
        assert!(body.to_string().contains(&named), "{body}");
        let started = Instant::now();
        let read = server.get("/tasks/runs").await;
        took.push(started.elapsed());
        read.assert_problem(503, "sql_unavailable");
    }
    took.sort();
    eprintln!(
        "answers while PostgreSQL is down: median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(took[took.len() - 1] < Duration::from_secs(1), "{took:?}");

    pair.run("start-primary");
    let restarted_ms = trellis::clock::now_ms();
    recovers(Duration::from_secs(30), "SQL reads", || async {
        let reply = server.get("/tasks/runs").await;
        (reply.status == 200).then_some(())
    })
    .await;
    let after = enqueue(&server, "record", "", json!({})).await;
    wait_state(&server, &after, "completed").await;
    let tx = post(&server, "/tasks/tx/record?mark=up&commit=true", "{}").await;
    assert_eq!(tx.status, 200, "{}", tx.text());
    let committed = tx.json()["id"].as_str().expect("id").to_string();
    wait_state(&server, &committed, "completed").await;
    assert_eq!(server.get("/readyz").await.status, 200);
    recovers(Duration::from_secs(30), "the schedule", || async {
        let reply = server.get("/api/v1/jobs?kind=noop&limit=500").await;
        let jobs = reply.json()["jobs"].as_array().cloned().unwrap_or_default();
        let ticks = jobs.iter().filter_map(|j| {
            let key = j["unique_key"].as_str()?;
            key.rsplit(':').next()?.parse::<u64>().ok()
        });
        ticks.into_iter().any(|t| t > restarted_ms).then_some(())
    })
    .await;
    // The enqueue refused during the outage left no job behind.
    assert_eq!(server.get("/tasks/runs").await.json()["jobs"], 3);
    server.shutdown().await;
    drop(pair);
}

/// How long a request may take while Redis is stopped or frozen: a few
/// Redis commands of 300 ms (`redis.command_timeout`) each, and room for a
/// busy machine.
const REDIS_DOWN_BOUND: Duration = Duration::from_secs(5);

/// A private Redis stopped (killed), started again, then frozen with
/// SIGSTOP and resumed, under a node using it for its cache, its response
/// cache and its locks. While Redis is away, every request answers within
/// a bound: cache reads and writes succeed from process memory, the
/// response cache serves, a lock is a 503 `lock_unavailable` problem+json
/// with the request id, readiness says 503. After each, locks, readiness
/// and the shared tier come back without restarting Trellis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_then_frozen_redis_degrades_within_a_bound_and_recovers() {
    let mut private = PrivateRedis::start_on(25462);
    let toml = kv_toml(&redis::toml_with_timeout(
        &private.url(),
        &redis::namespace(),
        "300ms",
    ));
    let server = TestServer::start(&toml).await;
    put(&server, "k", "before").await;
    assert_eq!(value(&server, "k").await, "before");
    assert_eq!(kv_post(&server, "/locks/l/try").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);

    for fault in ["stopped", "frozen"] {
        match fault {
            "stopped" => private.stop(),
            _ => private.freeze(),
        }
        degraded(&server, fault).await;
        match fault {
            "stopped" => private.restart(),
            _ => private.thaw(),
        }
        recovered(&server, fault).await;
    }
    server.shutdown().await;
}

async fn put(server: &TestServer, key: &str, value: &str) {
    let reply = server
        .send(
            http::Method::PUT,
            &format!("/kv/{key}"),
            &[],
            value.to_string(),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text());
}

async fn value(server: &TestServer, key: &str) -> Value {
    let reply = server.get(&format!("/kv/{key}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["value"].clone()
}

/// Requests while Redis is `fault`: each within the bound.
async fn degraded(server: &TestServer, fault: &str) {
    let bound = REDIS_DOWN_BOUND;
    let read = within(
        bound,
        &format!("{fault}: a cache read"),
        server.get("/kv/k"),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.text());
    let missing = within(bound, &format!("{fault}: a miss"), server.get("/kv/nope")).await;
    assert_eq!(missing.status, 200, "{}", missing.text());
    let write = within(
        bound,
        &format!("{fault}: a cache write"),
        server.send(http::Method::PUT, "/kv/k", &[], format!("during-{fault}")),
    )
    .await;
    assert_eq!(write.status, 204, "{}", write.text());
    let reread = within(bound, &format!("{fault}: a read back"), server.get("/kv/k")).await;
    assert_eq!(reread.json()["value"], format!("during-{fault}"));
    let load = within(
        bound,
        &format!("{fault}: a read-through"),
        server.get(&format!("/kv/load/{fault}")),
    )
    .await;
    assert_eq!(load.status, 200, "{}", load.text());
    let rendered = within(
        bound,
        &format!("{fault}: a cached response"),
        server.get(&format!("/kv/render/{fault}")),
    )
    .await;
    assert_eq!(rendered.status, 200, "{}", rendered.text());
    let lock = within(
        bound,
        &format!("{fault}: a lock"),
        kv_post(server, "/locks/l/try"),
    )
    .await;
    lock.assert_problem(503, "lock_unavailable");
    let ready = within(bound, &format!("{fault}: readiness"), server.get("/readyz")).await;
    ready.assert_problem(503, "not_ready");
}

/// After Redis is back from `fault`: locks and readiness recover, and a
/// write goes through to the shared tier.
async fn recovered(server: &TestServer, fault: &str) {
    recovers(
        Duration::from_secs(15),
        &format!("{fault}: locks"),
        || async { (kv_post(server, "/locks/l/try").await.status == 200).then_some(()) },
    )
    .await;
    recovers(
        Duration::from_secs(15),
        &format!("{fault}: readiness"),
        || async { (server.get("/readyz").await.status == 200).then_some(()) },
    )
    .await;
    // Let the node see the reconnection (it flushes its process tier).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = format!("after-{fault}");
    put(server, "k", &after).await;
    assert_eq!(value(server, "k").await, after.as_str());
}
