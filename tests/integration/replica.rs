//! Read replicas against a real streaming replica: a private PostgreSQL
//! primary and standby made by `tests/scripts/pg-pair.sh` on their own
//! loopback ports. Replay is paused to create lag; reads see earlier writes
//! by token and by principal.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use trellis_tests::pg::Pair;
use trellis_tests::{Reply, TestServer};

/// A config on the pair: the primary with its replica.
fn pair_config(pair: &Pair, extra: &str) -> String {
    format!(
        "[sql.postgres]\nurl = {:?}\nnamespace = \"rt\"\nreplicas = [{:?}]\n\
         replica_wait = \"300ms\"\nlag_sample_interval = \"50ms\"\n{extra}\
         [sql.pool]\nacquire_timeout = \"1s\"\n\
         [plugins.notes]\nbuiltin = \"notes\"\ngrants = [\"sql\", \"cache\", \"jobs\"]\n",
        pair.url(pair.primary_port),
        pair.url(pair.replica_port),
    )
}

async fn create(server: &TestServer, title: &str) -> (i64, String) {
    let reply = server
        .send(
            Method::POST,
            "/notes",
            &[],
            json!({ "title": title }).to_string(),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let token = reply
        .header("x-trellis-lsn")
        .expect("a write returns a consistency token")
        .to_string();
    (reply.json()["id"].as_i64().expect("id"), token)
}

async fn get(server: &TestServer, id: i64, token: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = token
        .map(|t| vec![("x-trellis-lsn", t)])
        .unwrap_or_default();
    server
        .send(Method::GET, &format!("/notes/{id}"), &headers, "")
        .await
}

/// Polls `check` until it holds or 10 s pass.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_routing_lag_read_your_writes_and_failover() {
    let pair = Pair::start(25432);
    let server = TestServer::start(&pair_config(&pair, "")).await;

    let (a, _) = create(&server, "a").await;
    eventually("the replica to replay note a", async || {
        get(&server, a, None).await.status == 200
    })
    .await;

    // Replay paused: a replica-ok read without a token goes to the
    // (lagging, but within bounds) replica and does not see note b ...
    pair.run("pause-replay");
    let (b, token_b) = create(&server, "b").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(&server, b, None).await.status,
        404,
        "the read should go to the replica"
    );
    // ... while the same read carrying b's token waits, then reads the primary.
    let reply = get(&server, b, Some(&token_b)).await;
    assert_eq!(reply.status, 200, "read-your-writes: {}", reply.text());

    // By principal: within the causal window a client's own reads see its
    // writes without a token; another client's may read the replica.
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    let written = server
        .send(
            Method::POST,
            "/notes",
            &alice,
            json!({"title": "by alice"}).to_string(),
        )
        .await;
    assert_eq!(written.status, 201, "{}", written.text());
    let path = format!("/notes/{}", written.json()["id"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stale = server.send(Method::GET, &path, &bob, "").await;
    assert_eq!(stale.status, 404, "bob reads the lagging replica");
    let own = server.send(Method::GET, &path, &alice, "").await;
    assert_eq!(own.status, 200, "alice sees her write: {}", own.text());

    // A replica further behind than the bound is skipped altogether.
    let strict = TestServer::start(&pair_config(&pair, "max_replica_lag_bytes = 1\n")).await;
    eventually("the lagging replica to be skipped", async || {
        get(&strict, b, None).await.status == 200
    })
    .await;
    strict.shutdown().await;
    pair.run("resume-replay");
    eventually("the replica to catch up", async || {
        get(&server, b, None).await.status == 200
    })
    .await;

    // Primary down: writes get 503 + Retry-After, replica reads go on, and
    // writes recover without a restart once the primary is back.
    pair.run("stop-primary");
    let reply = server
        .send(
            Method::POST,
            "/notes",
            &[],
            json!({"title": "c"}).to_string(),
        )
        .await;
    reply.assert_problem(503, "sql_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        get(&server, a, None).await.status,
        200,
        "reads go on from the replica"
    );
    pair.run("start-primary");
    eventually("writes to recover", async || {
        server
            .send(
                Method::POST,
                "/notes",
                &[],
                json!({"title": "d"}).to_string(),
            )
            .await
            .status
            == 201
    })
    .await;

    // Replica down: replica-ok reads fall back to the primary.
    pair.run("stop-replica");
    eventually("reads to fall back to the primary", async || {
        get(&server, a, None).await.status == 200
    })
    .await;
    assert_eq!(get(&server, a, None).await.status, 200);
    server.shutdown().await;
}
