//! `POST /api/v1/batch`: operations through the whole pipeline, each with
//! its own status, in order; bounds and refusals; atomic batches in one
//! transaction on SQLite and PostgreSQL.

use http::Method;
use serde_json::json;
use trellis_tests::TestServer;

async fn batch(server: &TestServer, body: serde_json::Value) -> trellis_tests::Reply {
    server
        .send(
            Method::POST,
            "/api/v1/batch",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
}

#[tokio::test]
async fn operations_run_through_the_pipeline_with_their_own_status() {
    let server = TestServer::start("").await;
    let reply = batch(
        &server,
        json!({"operations": [
            {"id": "hello", "method": "GET", "path": "/hello/Ada"},
            {"id": "create", "method": "POST", "path": "/notes", "body": {"title": "batched"}},
            {"id": "dup", "method": "POST", "path": "/notes", "body": {"title": "batched"}},
            {"id": "missing", "method": "GET", "path": "/nowhere"},
            {"id": "select", "method": "GET", "path": "/hello/Bob?fields=greeting"},
            {"id": "text", "method": "POST", "path": "/echo/x", "body": "raw text",
             "headers": {"x-extra": "1"}},
            {"id": "bad", "method": "NOT A METHOD", "path": "/hello"},
            {"id": "nested", "method": "POST", "path": "/api/v1/batch", "body": {"operations": []}},
        ]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results = reply.json()["results"].clone();
    let status = |i: usize| results[i]["status"].as_u64();
    let ids: Vec<&str> = results
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [
            "hello", "create", "dup", "missing", "select", "text", "bad", "nested"
        ]
    );
    assert_eq!(status(0), Some(200));
    assert_eq!(results[0]["body"]["greeting"], "Hello, Ada!");
    // Operations run concurrently, so either create may win; one is a 409.
    let mut creates = [status(1), status(2)];
    creates.sort();
    assert_eq!(creates, [Some(201), Some(409)]);
    let created = if status(1) == Some(201) { 1 } else { 2 };
    assert_eq!(results[created]["body"]["title"], "batched");
    assert_eq!(status(3), Some(404));
    assert_eq!(results[3]["body"]["code"], "not_found");
    assert_eq!(results[4]["body"], json!({"greeting": "Hello, Bob!"}));
    assert_eq!(results[5]["body"]["body"], "raw text");
    assert!(
        results[5]["body"]["headers"]
            .to_string()
            .contains("x-extra")
    );
    assert_eq!(status(6), Some(400));
    assert_eq!(status(7), Some(400));
    // Each operation has a request id of its own, derived from the batch's.
    let batch_id = reply.header("x-request-id").expect("id");
    assert_eq!(
        results[0]["headers"]["x-request-id"],
        format!("{batch_id}-0")
    );
    // The note really exists.
    let id = results[created]["body"]["id"].as_i64().expect("an id");
    assert_eq!(server.get(&format!("/notes/{id}")).await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn batches_are_bounded_and_malformed_ones_refused() {
    let server = TestServer::start("[batch]\nmax_operations = 3\n").await;
    let op = json!({"method": "GET", "path": "/hello"});
    batch(&server, json!({"operations": [op, op, op, op]}))
        .await
        .assert_problem(413, "too_many_operations");
    batch(&server, json!({"ops": []}))
        .await
        .assert_problem(400, "bad_request");
    server
        .get("/api/v1/batch")
        .await
        .assert_problem(405, "method_not_allowed");
    let ok = batch(&server, json!({"operations": [op, op, op]})).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    server.shutdown().await;
}

fn create(id: &str, title: &str) -> serde_json::Value {
    json!({"id": id, "method": "POST", "path": "/notes", "body": {"title": title, "body": "one two three"}})
}

/// The titles of every note.
async fn titles(server: &TestServer) -> Vec<String> {
    let list = server.get("/notes?limit=100").await;
    assert_eq!(list.status, 200, "{}", list.text());
    list.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["title"].as_str().map(str::to_string))
        .collect()
}

/// All or nothing: a failing operation rolls back the ones before it (and
/// their jobs) and the rest do not run; a batch that succeeds commits,
/// reads inside it see its own writes, and its jobs run after the commit.
async fn atomic_batches_commit_all_or_nothing(toml: &str) {
    let server = TestServer::start(toml).await;
    // A note that exists before, for the duplicate to collide with.
    let before = batch(&server, json!({"operations": [create("seed", "seed")]})).await;
    assert_eq!(before.json()["results"][0]["status"], 201);

    let failed = batch(
        &server,
        json!({"atomic": true, "operations": [
            create("a", "atomic-a"),
            create("b", "atomic-b"),
            create("dup", "seed"),
            create("c", "atomic-c"),
        ]}),
    )
    .await;
    assert_eq!(failed.status, 200, "{}", failed.text());
    let body = failed.json();
    assert_eq!(body["committed"], false, "{body}");
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [201, 201, 409, 424], "{body}");
    assert!(
        body["results"][3]["body"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`dup`")),
        "{body}"
    );
    let rolled_back_id = body["results"][0]["body"]["id"].as_i64().expect("an id");
    assert_eq!(titles(&server).await, ["seed"]);

    let done = batch(
        &server,
        json!({"atomic": true, "operations": [
            create("a", "atomic-a"),
            create("b", "atomic-b"),
            {"id": "list", "method": "GET", "path": "/notes?limit=100"},
        ]}),
    )
    .await;
    let body = done.json();
    assert_eq!(body["committed"], true, "{body}");
    // The read inside the batch saw the batch's own writes.
    let listed: Vec<&str> = body["results"][2]["body"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["title"].as_str())
        .collect();
    assert_eq!(listed, ["seed", "atomic-a", "atomic-b"], "{body}");
    assert_eq!(titles(&server).await, ["seed", "atomic-a", "atomic-b"]);

    // The committed notes' jobs run; the rolled-back one's never existed.
    let id = body["results"][0]["body"]["id"].as_i64().expect("an id");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let index = server.get(&format!("/notes/{id}/index")).await;
        if index.status == 200 {
            assert_eq!(index.json()["words"], 3);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if rolled_back_id != id {
        assert_eq!(
            server
                .get(&format!("/notes/{rolled_back_id}/index"))
                .await
                .status,
            404
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batches_commit_all_or_nothing_on_sqlite() {
    atomic_batches_commit_all_or_nothing("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atomic_batches_commit_all_or_nothing_on_postgres() {
    let namespace = trellis_tests::pg::Namespace::new().await;
    atomic_batches_commit_all_or_nothing(&namespace.toml()).await;
    namespace.drop_all().await;
}

#[tokio::test]
async fn atomic_batches_run_against_one_plugin_with_a_database() {
    let server = TestServer::start("").await;
    let two_plugins = batch(
        &server,
        json!({"atomic": true, "operations": [
            create("a", "x"),
            {"id": "hi", "method": "GET", "path": "/hello/Ada"},
        ]}),
    )
    .await;
    let problem = two_plugins.assert_problem(400, "bad_request");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("one plugin")),
        "{problem}"
    );
    batch(
        &server,
        json!({"atomic": true, "operations": [{"method": "GET", "path": "/healthz"}]}),
    )
    .await
    .assert_problem(400, "bad_request");
    let no_database = batch(
        &server,
        json!({"atomic": true, "operations": [{"method": "GET", "path": "/hello/Ada"}]}),
    )
    .await
    .assert_problem(400, "bad_request");
    assert!(
        no_database["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no database")),
        "{no_database}"
    );
    // Nothing ran.
    assert!(titles(&server).await.is_empty());
    server.shutdown().await;
}

/// Instances plugin `notes` has run, from `/metrics`.
async fn notes_instances(server: &TestServer) -> f64 {
    let text = server.get("/metrics").await.text();
    text.lines()
        .filter(|l| l.starts_with("trellis_instantiate_duration_seconds_count"))
        .filter(|l| l.contains("plugin=\"notes\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_a_batching_route_share_one_instance_on_sqlite() {
    operations_on_a_batching_route_share_one_instance("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_a_batching_route_share_one_instance_on_postgres() {
    let namespace = trellis_tests::pg::Namespace::new().await;
    operations_on_a_batching_route_share_one_instance(&namespace.toml()).await;
    namespace.drop_all().await;
}

/// Operations to `POST /notes` (which batches) run in one `batch-handler`
/// call, each answered on its own; the plugin's bulk route does the same.
async fn operations_on_a_batching_route_share_one_instance(toml: &str) {
    // No worker takes the notes' jobs here, so every instance serves a
    // request.
    let server =
        TestServer::start(&format!("{toml}\n[jobs]\nqueues = {{ elsewhere = 1 }}\n")).await;
    let seed = batch(&server, json!({"operations": [create("seed", "taken")]})).await;
    assert_eq!(seed.json()["results"][0]["status"], 201);

    let before = notes_instances(&server).await;
    let mut operations: Vec<serde_json::Value> = (0..5)
        .map(|i| create(&format!("n{i}"), &format!("grouped {i}")))
        .collect();
    operations.push(create("dup", "taken"));
    operations.push(json!({"id": "bad", "method": "POST", "path": "/notes", "body": {"nope": 1}}));
    operations.push(json!({"id": "hi", "method": "GET", "path": "/hello/Ada"}));
    operations.push(
        json!({"id": "sel", "method": "POST", "path": "/notes?fields=title",
        "body": {"title": "selected"}}),
    );
    let reply = batch(&server, json!({ "operations": operations })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results = reply.json()["results"].clone();
    let status = |i: usize| results[i]["status"].as_u64();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..5 {
        assert_eq!(status(i), Some(201), "{}", results[i]);
        assert_eq!(results[i]["body"]["title"], format!("grouped {i}"));
        ids.insert(results[i]["body"]["id"].as_i64().expect("an id"));
        assert!(results[i]["headers"]["location"].is_string());
    }
    assert_eq!(ids.len(), 5, "each note its own id");
    assert_eq!(status(5), Some(409), "{}", results[5]);
    assert_eq!(results[5]["body"]["code"], "conflict");
    assert_eq!(status(6), Some(400), "{}", results[6]);
    assert_eq!(status(7), Some(200));
    assert_eq!(results[8]["body"], json!({"title": "selected"}));
    let batch_id = reply.header("x-request-id").expect("id");
    assert_eq!(
        results[5]["headers"]["x-request-id"],
        format!("{batch_id}-5")
    );
    // Eight operations on POST /notes, one instance.
    assert_eq!(notes_instances(&server).await - before, 1.0);

    // The plugin's own bulk route does the same work for one request.
    let bulk = server
        .send(
            Method::POST,
            "/notes/bulk",
            &[("content-type", "application/json")],
            json!([{"title": "bulk 1"}, {"title": "taken"}, {"title": ""}]).to_string(),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text());
    let statuses: Vec<u64> = bulk.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [201, 409, 422]);
    assert!(titles(&server).await.contains(&"bulk 1".to_string()));

    // 100 creates: one batch is one instance, 100 requests are 100.
    let before = notes_instances(&server).await;
    let operations: Vec<serde_json::Value> = (0..100)
        .map(|i| create(&i.to_string(), &format!("hundred {i}")))
        .collect();
    let reply = batch(&server, json!({ "operations": operations })).await;
    let results = reply.json()["results"].clone();
    let created = results
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == 201)
        .count();
    assert_eq!(created, 100, "{results}");
    assert_eq!(notes_instances(&server).await - before, 1.0);
    let before = notes_instances(&server).await;
    for i in 0..100 {
        let reply = server
            .send(
                Method::POST,
                "/notes",
                &[("content-type", "application/json")],
                json!({"title": format!("single {i}")}).to_string(),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    assert_eq!(notes_instances(&server).await - before, 100.0);
    server.shutdown().await;
}
