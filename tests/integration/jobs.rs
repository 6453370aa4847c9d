//! The job queue end to end, on SQLite and on the machine's PostgreSQL: the
//! `tasks` test plugin enqueues and runs jobs, every attempt leaves a row in
//! its `runs` table, and the job API shows their state. Several processes
//! share one PostgreSQL queue in the multi-node tests.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use trellis_tests::TestServer;
use trellis_tests::node::ChildNode;
use trellis_tests::pg::{Namespace, Pair};
use trellis_tests::tasks::{enqueue, job, post, runs_of, tasks_toml, wait_runs, wait_state};

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// A server with the tasks plugin on `db`; the namespace to drop after.
async fn start(db: Db, extra: &str) -> (TestServer, Option<Namespace>) {
    match db {
        Db::Sqlite => (TestServer::start(&tasks_toml(extra)).await, None),
        Db::Postgres => {
            let ns = Namespace::new().await;
            let server = TestServer::start(&tasks_toml(&format!("{}{extra}", ns.toml()))).await;
            (server, Some(ns))
        }
    }
}

async fn finish(server: TestServer, ns: Option<Namespace>) {
    server.shutdown().await;
    if let Some(ns) = ns {
        ns.drop_all().await;
    }
}

/// Runs a scenario on both backends.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::Postgres).await;
            }
        }
    )*};
}

on_both!(
    three_processes_run_ten_thousand_jobs_exactly_once,
    a_job_of_a_killed_worker_is_rescued,
    two_schedulers_enqueue_each_tick_once_and_survive_the_leader,
    delivery_and_the_api,
    retries_backoff_and_discard,
    timeouts_snoozes_and_cancellation,
    idempotency_and_transactional_enqueue,
    priorities_and_queue_concurrency,
    invalid_requests_get_clear_errors,
);

/// 50 jobs from the plugin run exactly once each; a job enqueued through
/// the API answers 202 with its `Location`, completes, and its run joins
/// the trace of the request that enqueued it.
async fn delivery_and_the_api(db: Db) {
    let (server, ns) = start(db, "").await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(enqueue(&server, "record", "", json!({})).await);
    }
    let seen = wait_runs(&server, 50, Duration::from_secs(20)).await;
    for id in &ids {
        let done = wait_state(&server, id, "completed").await;
        assert_eq!(done["attempt"], 1);
        assert!(done["result"]["seq"].is_i64(), "{done}");
    }
    let seen_after = server.get("/tasks/runs").await.json();
    assert_eq!(
        seen_after["runs"], 50,
        "every job ran once: {seen} {seen_after}"
    );
    assert_eq!(seen_after["jobs"], 50);

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let reply = server
        .send(
            Method::POST,
            "/api/v1/jobs",
            &[("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01"))],
            json!({"plugin": "tasks", "kind": "record", "payload": {"from": "api"}}).to_string(),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let location = reply.header("location").expect("Location").to_string();
    let id = reply.json()["id"].as_str().expect("id").to_string();
    assert_eq!(location, format!("/api/v1/jobs/{id}"));
    assert_eq!(reply.json()["payload"]["from"], "api");
    wait_state(&server, &id, "completed").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let trace = server
            .get(&format!("/api/v1/monitoring/traces/{trace_id}"))
            .await;
        let has_job_span = trace.status == 200
            && trace.json()["span_list"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["name"] == "job record"));
        if has_job_span {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job's run is not in the enqueuer's trace: {}",
            trace.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finish(server, ns).await;
}

/// A job failing twice completes on its third attempt; one failing every
/// time is discarded after its kind's 4 attempts, errors kept; a fatal one
/// is discarded at once, and the API's retry runs it again.
async fn retries_backoff_and_discard(db: Db) {
    let (server, ns) = start(db, "").await;
    let twice = enqueue(&server, "flaky", "", json!({"fail_times": 2})).await;
    let always = enqueue(&server, "flaky", "", json!({"fail_times": 100})).await;
    let fatal = enqueue(&server, "fatal", "", json!({})).await;

    let done = wait_state(&server, &twice, "completed").await;
    assert_eq!(done["attempt"], 3);
    assert_eq!(done["errors"].as_array().map(Vec::len), Some(2), "{done}");
    assert_eq!(done["result"], "ok after 3 attempts");

    let discarded = wait_state(&server, &always, "discarded").await;
    assert_eq!(discarded["attempt"], 4);
    assert_eq!(discarded["errors"].as_array().map(Vec::len), Some(4));
    assert_eq!(runs_of(&server, &always).await.len(), 4);

    let discarded = wait_state(&server, &fatal, "discarded").await;
    assert_eq!(discarded["attempt"], 1);
    assert!(
        discarded["errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("never succeed")),
        "{discarded}"
    );
    let retried = post(&server, &format!("/api/v1/jobs/{fatal}/retry"), "").await;
    assert_eq!(retried.status, 200, "{}", retried.text());
    wait_state(&server, &fatal, "discarded").await;
    assert_eq!(runs_of(&server, &fatal).await.len(), 2);
    post(&server, &format!("/api/v1/jobs/{twice}/retry"), "")
        .await
        .assert_problem(409, "conflict");
    finish(server, ns).await;
}

/// An attempt past its kind's timeout fails (and the job is discarded after
/// its 2 attempts); a snoozed job runs again without spending an attempt; a
/// running job and a waiting one are cancelled.
async fn timeouts_snoozes_and_cancellation(db: Db) {
    let (server, ns) = start(db, "").await;
    let boxed = enqueue(&server, "timeboxed", "", json!({"ms": 10_000})).await;
    let snoozy = enqueue(&server, "snooze", "", json!({})).await;
    let long = enqueue(&server, "spin", "", json!({"ms": 60_000})).await;
    let later = enqueue(&server, "record", "?delay_ms=600000", json!({})).await;

    let discarded = wait_state(&server, &boxed, "discarded").await;
    assert_eq!(discarded["attempt"], 2);
    assert!(
        discarded["errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{discarded}"
    );

    let done = wait_state(&server, &snoozy, "completed").await;
    assert_eq!(done["attempt"], 1, "a snooze spends no attempt: {done}");
    let attempts: Vec<Value> = runs_of(&server, &snoozy)
        .await
        .into_iter()
        .map(|r| r["attempt"].clone())
        .collect();
    assert_eq!(attempts, vec![json!(1), json!(1)]);

    wait_state(&server, &long, "running").await;
    let started = Instant::now();
    let reply = post(&server, &format!("/api/v1/jobs/{long}/cancel"), "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    wait_state(&server, &long, "cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a running job stops at its next epoch tick"
    );

    assert_eq!(job(&server, &later).await["state"], "scheduled");
    let reply = post(&server, &format!("/api/v1/jobs/{later}/cancel"), "").await;
    assert_eq!(reply.json()["state"], "cancelled", "{}", reply.text());
    post(&server, &format!("/api/v1/jobs/{later}/cancel"), "")
        .await
        .assert_problem(409, "conflict");
    finish(server, ns).await;
}

/// The same idempotency key while the first job waits returns the first
/// job; a rolled-back transaction leaves no job, a committed one does.
async fn idempotency_and_transactional_enqueue(db: Db) {
    let (server, ns) = start(db, "").await;
    let first = enqueue(&server, "record", "?delay_ms=600000&key=k1", json!({})).await;
    let again = enqueue(&server, "record", "?delay_ms=600000&key=k1", json!({})).await;
    assert_eq!(first, again);
    let reply = post(
        &server,
        "/api/v1/jobs",
        &json!({"plugin": "tasks", "kind": "record", "idempotency_key": "k1"}).to_string(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "a duplicate is not a new job: {}",
        reply.text()
    );
    assert_eq!(reply.json()["id"], first.as_str());
    // Once the first is finished the key is free again.
    post(&server, &format!("/api/v1/jobs/{first}/cancel"), "").await;
    let third = enqueue(&server, "record", "?key=k1", json!({})).await;
    assert_ne!(third, first);

    let reply = post(&server, "/tasks/tx/record?mark=rolled-back", "{}").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let rolled_back = reply.json()["id"].as_str().expect("id").to_string();
    let reply = post(&server, "/tasks/tx/record?mark=committed&commit=true", "{}").await;
    let committed = reply.json()["id"].as_str().expect("id").to_string();
    wait_state(&server, &committed, "completed").await;
    // Give a wrongly kept job every chance to appear.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .get(&format!("/api/v1/jobs/{rolled_back}"))
        .await
        .assert_problem(404, "job_not_found");
    assert!(runs_of(&server, &rolled_back).await.is_empty());
    finish(server, ns).await;
}

/// In a queue of concurrency 1, jobs waiting behind a busy one run highest
/// priority first, and never two at once.
async fn priorities_and_queue_concurrency(db: Db) {
    let (server, ns) = start(db, "").await;
    let blocker = enqueue(&server, "serial", "", json!({"ms": 700})).await;
    wait_state(&server, &blocker, "running").await;
    let low = enqueue(&server, "record", "?queue=serial&priority=0", json!({})).await;
    let high = enqueue(&server, "record", "?queue=serial&priority=10", json!({})).await;
    let mid = enqueue(&server, "record", "?queue=serial&priority=5", json!({})).await;
    let mut serial = Vec::new();
    for _ in 0..4 {
        serial.push(enqueue(&server, "serial", "", json!({"ms": 100})).await);
    }
    for id in [&low, &high, &mid].into_iter().chain(&serial) {
        wait_state(&server, id, "completed").await;
    }
    let seq = |runs: Vec<Value>| runs[0]["seq"].as_i64().expect("seq");
    let (low, high, mid) = (
        seq(runs_of(&server, &low).await),
        seq(runs_of(&server, &high).await),
        seq(runs_of(&server, &mid).await),
    );
    assert!(high < mid && mid < low, "high {high}, mid {mid}, low {low}");
    assert_eq!(server.get("/tasks/runs").await.json()["overlaps"], 0);
    finish(server, ns).await;
}

/// Bad input to the job API and the plugin's enqueue: clear problem+json.
async fn invalid_requests_get_clear_errors(db: Db) {
    let (server, ns) = start(db, "").await;
    let bad = |body: Value| {
        let server = &server;
        async move { post(server, "/api/v1/jobs", &body.to_string()).await }
    };
    bad(json!({"plugin": "nope", "kind": "record"}))
        .await
        .assert_problem(400, "bad_request");
    let unknown = bad(json!({"plugin": "tasks", "kind": "nope"}))
        .await
        .assert_problem(400, "bad_request");
    assert!(
        unknown["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nope"))
    );
    bad(json!({"plugin": "tasks", "kind": "record", "queue": "Bad Queue"}))
        .await
        .assert_problem(400, "bad_request");
    bad(json!({"plugin": "tasks", "kind": "record", "run_at": "tomorrow"}))
        .await
        .assert_problem(400, "bad_request");
    post(&server, "/api/v1/jobs", "{not json")
        .await
        .assert_problem(400, "bad_request");
    let big = "x".repeat(70 * 1024);
    bad(json!({"plugin": "tasks", "kind": "record", "payload": big}))
        .await
        .assert_problem(413, "payload_too_large");
    server
        .get("/api/v1/jobs/0190b5c2-0000-7000-8000-000000000000")
        .await
        .assert_problem(404, "job_not_found");
    server
        .get("/api/v1/jobs/not-an-id")
        .await
        .assert_problem(404, "job_not_found");
    server
        .get("/api/v1/jobs?state=lost")
        .await
        .assert_problem(400, "bad_request");
    server
        .get("/api/v1/jobs?limit=0")
        .await
        .assert_problem(400, "bad_request");
    server
        .get("/api/v1/jobs?cursor=zzz")
        .await
        .assert_problem(400, "bad_request");
    server
        .send(Method::DELETE, "/api/v1/jobs", &[], "")
        .await
        .assert_problem(405, "method_not_allowed");
    // The plugin's own enqueue of an undeclared kind is its bug: a 500.
    post(&server, "/tasks/enqueue/undeclared", "{}")
        .await
        .assert_problem(500, "job_invalid");

    // Pagination: five waiting jobs, two a page.
    for _ in 0..5 {
        enqueue(&server, "record", "?delay_ms=600000", json!({})).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/jobs?state=scheduled&limit=2".to_string();
    loop {
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let body = page.json();
        for j in body["jobs"].as_array().expect("jobs") {
            seen.push(j["id"].as_str().expect("id").to_string());
        }
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                assert!(
                    page.header("link")
                        .is_some_and(|l| l.contains("rel=\"next\""))
                );
                path = format!("/api/v1/jobs?state=scheduled&limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "{seen:?}");
    assert_eq!(sorted, seen, "ids come in enqueue order");
    finish(server, ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a node for the multi-process job tests, run as a child process"]
async fn node_child() {
    trellis_tests::node::serve_child().await;
}

/// The config of nodes sharing one queue: one PostgreSQL namespace, or one
/// data directory (the SQLite files) for processes on this machine.
async fn shared(db: Db, extra: &str) -> (String, Option<Namespace>) {
    match db {
        Db::Sqlite => {
            let dir = trellis_tests::fresh_dir();
            let toml = format!(
                "data_dir = {:?}\n{}",
                dir.display().to_string(),
                tasks_toml(extra)
            );
            (toml, None)
        }
        Db::Postgres => {
            let ns = Namespace::new().await;
            let toml = tasks_toml(&format!("{}{extra}", ns.toml()));
            (toml, Some(ns))
        }
    }
}

/// Three worker processes share one queue: 10,000 jobs each run exactly
/// once (one `runs` row per job, none twice).
async fn three_processes_run_ten_thousand_jobs_exactly_once(db: Db) {
    let (toml, ns) = shared(db, "").await;
    let a = TestServer::start(&toml).await;
    let b = ChildNode::start("jobs::node_child", &toml);
    let c = ChildNode::start("jobs::node_child", &toml);
    for _ in 0..50 {
        let reply = post(&a, "/tasks/many/record?n=200", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let seen = wait_runs(&a, 10_000, Duration::from_secs(300)).await;
    let jobs = a.get("/api/v1/jobs?state=completed&limit=1").await.json();
    assert!(jobs["jobs"].as_array().is_some_and(|j| !j.is_empty()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_after = a.get("/tasks/runs").await.json();
    assert_eq!(seen_after["runs"], 10_000, "{seen} {seen_after}");
    assert_eq!(seen_after["jobs"], 10_000);
    drop((b, c));
    finish(a, ns).await;
}

/// A worker killed with SIGKILL mid-job: another node's rescuer sends the
/// job back to the queue and it completes on its second attempt.
async fn a_job_of_a_killed_worker_is_rescued(db: Db) {
    let (toml, ns) = shared(db, "").await;
    let b = ChildNode::start("jobs::node_child", &toml);
    let id = enqueue(
        &b.server,
        "spin",
        "",
        json!({"ms": 120_000, "first_only": true}),
    )
    .await;
    // Running, and past its first host call: the attempt left its row.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs_of(&b.server, &id).await.is_empty() {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.signal("KILL");
    drop(b);
    let a = TestServer::start(&toml).await;
    let done = wait_state(&a, &id, "completed").await;
    assert_eq!(done["attempt"], 2, "{done}");
    assert!(
        done["errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("rescued")),
        "{done}"
    );
    let attempts: Vec<Value> = runs_of(&a, &id)
        .await
        .into_iter()
        .map(|r| r["attempt"].clone())
        .collect();
    assert_eq!(attempts, vec![json!(1), json!(2)]);
    finish(a, ns).await;
}

/// Two scheduler nodes and a schedule every second: each tick is enqueued
/// once; when the leader is killed the other node carries on. (On SQLite
/// both processes lead; the unique key per tick still admits one job.)
async fn two_schedulers_enqueue_each_tick_once_and_survive_the_leader(db: Db) {
    let (toml, ns) = shared(
        db,
        "[[jobs.schedules]]\nplugin = \"tasks\"\nname = \"tick\"\ncron = \"* * * * * *\"\nkind = \"record\"\n",
    )
    .await;
    // The child starts first, so it leads.
    let b = ChildNode::start("jobs::node_child", &toml);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = TestServer::start(&toml).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.signal("KILL");
    drop(b);
    let killed_at = now_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let jobs = a.get("/api/v1/jobs?kind=record&limit=500").await.json();
    let ticks: Vec<i64> = jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            let key = j["unique_key"]
                .as_str()
                .expect("a scheduled job has a unique key");
            key.rsplit(':')
                .next()
                .and_then(|t| t.parse().ok())
                .expect("tick")
        })
        .collect();
    let mut distinct = ticks.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "a tick enqueued twice: {ticks:?}"
    );
    assert!(ticks.len() >= 6, "too few ticks: {ticks:?}");
    assert!(
        ticks.iter().filter(|t| **t > killed_at + 1000).count() >= 2,
        "no ticks after the leader died: {ticks:?}"
    );
    finish(a, ns).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// On shutdown a worker hands a job it could not finish within the grace
/// period back to the queue and interrupts it: the run stops there (its
/// row never gets `finished`), and the restarted node runs the job again as
/// attempt 2, so the handler can tell it is a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_and_returns_unfinished_jobs() {
    let dir = trellis_tests::fresh_dir();
    let config =
        trellis_tests::config_in(&tasks_toml("[server]\nshutdown_grace = \"300ms\"\n"), &dir);
    let server = TestServer::start_config(&config).await;
    let id = enqueue(&server, "spin", "", json!({"ms": 1500})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs_of(&server, &id).await.is_empty() {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;

    let server = TestServer::start_config(&config).await;
    let done = wait_state(&server, &id, "completed").await;
    assert_eq!(done["attempt"], 2, "{done}");
    let runs = runs_of(&server, &id).await;
    let attempts: Vec<Value> = runs.iter().map(|r| r["attempt"].clone()).collect();
    assert_eq!(attempts, vec![json!(1), json!(2)]);
    // Both runs spin for 1.5 s: the first, had it run on after the hand
    // back, would have finished by the time the second did.
    assert_eq!(runs[0]["finished"], Value::Null, "{runs:?}");
    assert_ne!(runs[1]["finished"], Value::Null, "{runs:?}");
    server.shutdown().await;
}

/// PostgreSQL restarted mid-run: workers, the completer and the listener
/// reconnect by themselves; every job completes (at least once: an attempt
/// whose end could not be recorded may run again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_loses_no_job() {
    let pair = Pair::start(25442);
    let toml = tasks_toml(&format!(
        "[sql.postgres]\nurl = {:?}\nnamespace = \"jr\"\n",
        pair.url(pair.primary_port)
    ));
    let server = TestServer::start(&toml).await;
    for _ in 0..10 {
        let reply = post(&server, "/tasks/many/record?n=200", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    wait_runs(&server, 200, Duration::from_secs(60)).await;
    pair.run("stop-primary");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pair.run("start-primary");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = server.get("/tasks/runs").await;
        if reply.status == 200 && reply.json()["jobs"] == 2000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every job ran after the restart: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let waiting = server
        .get("/api/v1/jobs?state=running&limit=500")
        .await
        .json();
    let discarded = server
        .get("/api/v1/jobs?state=discarded&limit=500")
        .await
        .json();
    assert_eq!(
        discarded["jobs"].as_array().map(Vec::len),
        Some(0),
        "{discarded}"
    );
    // Jobs whose run was recorded but whose completion was not yet are
    // still finishing; none is stuck for good.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut running = waiting;
    while running["jobs"].as_array().is_some_and(|j| !j.is_empty()) {
        assert!(Instant::now() < deadline, "jobs stuck running: {running}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        running = server
            .get("/api/v1/jobs?state=running&limit=500")
            .await
            .json();
    }
    server.shutdown().await;
    drop(pair);
}

/// The queue's depth is in the monitoring summary and is an alert signal:
/// `job_queue_depth > 3` fires once five jobs wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_is_summarised_and_alerts_on() {
    let server = TestServer::start(&tasks_toml(
        "[alerts]\nevaluation_interval = \"100ms\"\n\n\
         [[alerts.rules]]\nname = \"JobsPiling\"\nexpr = \"job_queue_depth > 3\"\n",
    ))
    .await;
    for _ in 0..5 {
        enqueue(&server, "record", "?delay_ms=600000", json!({})).await;
    }
    let summary = server.get("/api/v1/monitoring/metrics").await.json();
    assert_eq!(summary["jobs"]["default"]["scheduled"], 5, "{summary}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = server.get("/api/v1/monitoring/alerts").await.json();
        if alerts["alerts"][0]["state"] == "firing" {
            assert_eq!(alerts["alerts"][0]["value"], 5.0, "{alerts}");
            break;
        }
        assert!(Instant::now() < deadline, "never fired: {alerts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}
