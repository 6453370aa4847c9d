//! The sql capability against real SQLite and real PostgreSQL: the same
//! plugin-level suite on both, isolation against a hostile plugin,
//! transactions, typed errors and migrations.

use std::path::PathBuf;

use http::Method;
use serde_json::{Value, json};
use trellis_tests::pg::Namespace;
use trellis_tests::{TestServer, config_in, fresh_dir, guest};

/// One backend under test: its config and what to clean up.
struct Backend {
    toml: String,
    data_dir: PathBuf,
    namespace: Option<Namespace>,
}

impl Backend {
    async fn sqlite() -> Backend {
        Backend {
            toml: String::new(),
            data_dir: fresh_dir(),
            namespace: None,
        }
    }

    async fn postgres() -> Backend {
        let namespace = Namespace::new().await;
        Backend {
            toml: namespace.toml(),
            data_dir: fresh_dir(),
            namespace: Some(namespace),
        }
    }

    fn is_postgres(&self) -> bool {
        self.namespace.is_some()
    }

    /// A server with `plugins` (TOML) on this backend.
    async fn serve(&self, plugins: &str) -> TestServer {
        TestServer::start_config(&config_in(
            &format!("{}{plugins}", self.toml),
            &self.data_dir,
        ))
        .await
    }

    async fn start_error(&self, plugins: &str) -> String {
        let config = config_in(&format!("{}{plugins}", self.toml), &self.data_dir);
        trellis::Server::start(&config)
            .await
            .expect_err("the server must refuse to start")
            .to_string()
    }

    async fn finish(self) {
        if let Some(namespace) = self.namespace {
            namespace.drop_all().await;
        }
    }
}

/// Runs a test body on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let backend = super::Backend::sqlite().await;
                super::$name(&backend).await;
                backend.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let backend = super::Backend::postgres().await;
                super::$name(&backend).await;
                backend.finish().await;
            }
        })*
    };
}

on_both_backends!(
    notes_crud,
    notes_pages_return_every_note_once,
    hostile_plugin_cannot_reach_other_data,
    transactions_commit_roll_back_and_survive_traps,
    malformed_sql_is_a_typed_error,
    migrations_apply_once_and_failures_refuse_the_version,
    n_plus_one_is_flagged_in_debug_mode,
    explain_gives_the_plan,
    exhausted_pool_is_503_with_retry_after_and_recovers,
    query_cache_serves_until_a_write_to_its_tables,
);

const NOTES: &str =
    "[plugins.notes]\nbuiltin = \"notes\"\ngrants = [\"sql\", \"cache\", \"jobs\"]\n";

fn misbehave(extra: &str) -> String {
    format!(
        "[plugins.misbehave]\npath = {:?}\ngrants = [\"config\", \"sql\"]\n{extra}",
        guest("misbehave")
    )
}

async fn post_json(server: &TestServer, path: &str, body: Value) -> trellis_tests::Reply {
    server
        .send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await
}

/// Runs `sql` through the hostile plugin; returns its JSON report.
async fn probe(server: &TestServer, sql: &str, execute: bool) -> Value {
    let reply = post_json(
        server,
        "/misbehave/sql",
        json!({ "sql": sql, "execute": execute }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn notes_crud(backend: &Backend) {
    let server = backend.serve(NOTES).await;
    let created = post_json(
        &server,
        "/notes",
        json!({"title": "first", "body": "hello"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let note = created.json();
    let id = note["id"].as_i64().expect("id");
    assert_eq!(
        created.header("location"),
        Some(format!("/notes/{id}").as_str())
    );

    let fetched = server.get(&format!("/notes/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json()["body"], "hello");

    post_json(&server, "/notes", json!({"title": "first"}))
        .await
        .assert_problem(409, "conflict");
    post_json(&server, "/notes", json!({"title": ""}))
        .await
        .assert_problem(422, "unprocessable_content");

    let updated = server
        .send(
            Method::PUT,
            &format!("/notes/{id}"),
            &[],
            json!({"title": "renamed", "body": "changed"}).to_string(),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["title"], "renamed");

    let deleted = server
        .send(Method::DELETE, &format!("/notes/{id}"), &[], "")
        .await;
    assert_eq!(deleted.status, 204);
    server
        .get(&format!("/notes/{id}"))
        .await
        .assert_problem(404, "not_found");
    server
        .send(Method::DELETE, &format!("/notes/{id}"), &[], "")
        .await
        .assert_problem(404, "not_found");
    server.shutdown().await;
}

async fn notes_pages_return_every_note_once(backend: &Backend) {
    let server = backend.serve(NOTES).await;
    for i in 0..25 {
        let reply = post_json(&server, "/notes", json!({"title": format!("note {i}")})).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/notes?limit=10&cursor={c}"),
            None => "/notes?limit=10".to_string(),
        };
        let page = server.get(&path).await.json();
        for item in page["items"].as_array().expect("items") {
            seen.push(item["title"].as_str().expect("title").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(seen.len() <= 25, "pagination does not end");
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("note {i}")).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    server
        .get("/notes?limit=1000")
        .await
        .assert_problem(400, "bad_request");
    server.shutdown().await;
}

async fn hostile_plugin_cannot_reach_other_data(backend: &Backend) {
    let server = backend.serve(&format!("{NOTES}{}", misbehave(""))).await;
    let created = post_json(&server, "/notes", json!({"title": "secret"})).await;
    assert_eq!(created.status, 201);

    let denied: Vec<String> = if let Some(ns) = &backend.namespace {
        let ns = &ns.name;
        vec![
            format!("SELECT * FROM {ns}_notes.notes"),
            format!(
                "INSERT INTO {ns}_notes.notes (title, created_at, updated_at) VALUES ('x', 1, 1)"
            ),
            format!("SELECT * FROM {ns}.migrations"),
            format!("SELECT * FROM {ns}.secrets"),
            format!("SET ROLE {ns}_notes"),
            "SET ROLE postgres".to_string(),
            "SET SESSION AUTHORIZATION postgres".to_string(),
            "SELECT * FROM pg_catalog.pg_authid".to_string(),
        ]
    } else {
        let notes_db = backend.data_dir.join("sql/notes.db");
        vec![
            format!("ATTACH DATABASE '{}' AS n", notes_db.display()),
            "PRAGMA table_info(notes)".to_string(),
            "VACUUM INTO '/tmp/trellis-stolen.db'".to_string(),
            "SELECT * FROM _trellis_migrations".to_string(),
            "DELETE FROM _trellis_migrations".to_string(),
        ]
    };
    for sql in &denied {
        for execute in [false, true] {
            let report = probe(&server, sql, execute).await;
            assert_eq!(report["error"], "permission_denied", "{sql}: {report}");
        }
    }
    if backend.is_postgres() {
        // RESET ROLE lands on the plugin's own role: still nothing to see.
        let ns = &backend.namespace.as_ref().expect("pg").name;
        assert!(probe(&server, "RESET ROLE", true).await.get("ok").is_some());
        let report = probe(&server, &format!("SELECT * FROM {ns}_notes.notes"), false).await;
        assert_eq!(report["error"], "permission_denied", "{report}");
    }
    // Its own database does not have the other plugin's table.
    let report = probe(&server, "SELECT * FROM notes", false).await;
    assert!(report.get("error").is_some(), "{report}");
    assert_eq!(
        server.get("/notes").await.json()["items"][0]["title"],
        "secret"
    );
    server.shutdown().await;
}

async fn transactions_commit_roll_back_and_survive_traps(backend: &Backend) {
    let server = backend.serve(&misbehave("")).await;
    let created = probe(&server, "CREATE TABLE t (x INTEGER)", true).await;
    assert!(created.get("ok").is_some(), "{created}");
    let insert = json!([
        "INSERT INTO t (x) VALUES (1)",
        "INSERT INTO t (x) VALUES (2)"
    ]);

    let reply = post_json(
        &server,
        "/misbehave/sql-tx",
        json!({"statements": insert, "end": "commit"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(count(&server).await, 2);

    let reply = post_json(
        &server,
        "/misbehave/sql-tx",
        json!({"statements": insert, "end": "rollback"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        count(&server).await,
        2,
        "a dropped transaction must roll back"
    );

    post_json(
        &server,
        "/misbehave/sql-tx",
        json!({"statements": insert, "end": "trap"}),
    )
    .await
    .assert_problem(500, "guest_fault");
    assert_eq!(count(&server).await, 2, "a trap must roll back");
    server.shutdown().await;
}

/// Rows in the test table `t`, through the hostile plugin.
async fn count(server: &TestServer) -> Value {
    probe(server, "SELECT x FROM t", false).await["ok"]["rows"].clone()
}

async fn malformed_sql_is_a_typed_error(backend: &Backend) {
    let server = backend.serve(&misbehave("")).await;
    let report = probe(&server, "SELEC nonsense FROM", false).await;
    assert_eq!(report["error"], "syntax", "{report}");
    let report = probe(&server, "SELECT * FROM no_such_table", false).await;
    assert_eq!(report["error"], "invalid", "{report}");
    let report = probe(&server, "SELECT 1; SELECT 2", false).await;
    assert!(report.get("error").is_some(), "{report}");
    assert_eq!(server.get("/misbehave/ok").await.status, 200);
    server.shutdown().await;
}

async fn migrations_apply_once_and_failures_refuse_the_version(backend: &Backend) {
    let good =
        misbehave("[plugins.misbehave.config]\nmigration = \"CREATE TABLE m (x INTEGER)\"\n");
    let server = backend.serve(&good).await;
    let report = probe(&server, "SELECT x FROM m", false).await;
    assert_eq!(report["ok"]["rows"], 0, "{report}");
    server.shutdown().await;
    // A second start on the same database: the migration is recorded, so it
    // is not run again (it would fail: the table exists).
    let server = backend.serve(&good).await;
    assert_eq!(server.get("/misbehave/ok").await.status, 200);
    server.shutdown().await;

    let broken = misbehave("[plugins.misbehave.config]\nmigration = \"CREATE TABLE broken (\"\n");
    // The broken migration has the id of the applied one, so use a fresh
    // database for it.
    let fresh = if backend.is_postgres() {
        Backend::postgres().await
    } else {
        Backend::sqlite().await
    };
    let err = fresh.start_error(&broken).await;
    assert!(err.contains("migration failed"), "{err}");
    if !fresh.is_postgres() {
        let escape = misbehave(
            "[plugins.misbehave.config]\nmigration = \"ATTACH DATABASE '/tmp/x.db' AS x\"\n",
        );
        let err = Backend::sqlite().await.start_error(&escape).await;
        assert!(err.contains("not allowed"), "{err}");
    }
    fresh.finish().await;
}

async fn n_plus_one_is_flagged_in_debug_mode(backend: &Backend) {
    let server = backend
        .serve(&format!("{}[log]\ndebug_headers = true\n", misbehave("")))
        .await;
    let reply = server.get("/misbehave/sql-repeat?n=12").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-trellis-n-plus-one"), Some("SELECT ? AS x"));
    let reply = server.get("/misbehave/sql-repeat?n=3").await;
    assert_eq!(reply.header("x-trellis-n-plus-one"), None);
    server.shutdown().await;

    let quiet = backend.serve(&misbehave("")).await;
    let reply = quiet.get("/misbehave/sql-repeat?n=12").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("x-trellis-n-plus-one"),
        None,
        "debug headers are off by default"
    );
    quiet.shutdown().await;
}

/// The plan the slow-query log attaches, straight from the backend.
async fn explain_gives_the_plan(backend: &Backend) {
    use trellis::backend::sql::{SqlService, Value as SqlValue};
    let config = config_in(&backend.toml, &backend.data_dir);
    let service = SqlService::start(&config.sql, &config.data_dir)
        .await
        .expect("sql backend");
    let db = service.provision("explained").await.expect("provision");
    db.execute("CREATE TABLE t (x INTEGER)", vec![])
        .await
        .expect("create");
    let plan = db
        .explain("SELECT x FROM t WHERE x = $1", vec![SqlValue::Integer(1)])
        .await
        .expect("plan");
    let plan = plan.to_ascii_lowercase();
    assert!(plan.contains("scan") && plan.contains('t'), "{plan}");
}

async fn exhausted_pool_is_503_with_retry_after_and_recovers(backend: &Backend) {
    let pool = "[sql.pool]\nmax_connections = 1\nacquire_timeout = \"500ms\"\n";
    let server = std::sync::Arc::new(backend.serve(&format!("{pool}{}", misbehave(""))).await);
    let holder = {
        let server = server.clone();
        tokio::spawn(async move { server.get("/misbehave/sql-hold?ms=2500").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let reply = post_json(&server, "/misbehave/sql", json!({"sql": "SELECT 1 AS x"})).await;
    assert_eq!(reply.json()["error"], "unavailable", "{}", reply.text());
    let reply = server.get("/misbehave/sql-repeat?n=1").await;
    reply.assert_problem(503, "sql_unavailable");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(holder.await.expect("holder").status, 200);
    // The connection is back: the same request succeeds without a restart.
    assert_eq!(server.get("/misbehave/sql-repeat?n=1").await.status, 200);
}

async fn cached(server: &TestServer, sql: &str, ttl_ms: u64) -> Value {
    let reply = post_json(
        server,
        "/misbehave/sql-cached",
        json!({"sql": sql, "ttl_ms": ttl_ms}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn query_cache_serves_until_a_write_to_its_tables(backend: &Backend) {
    let server = backend.serve(&misbehave("")).await;
    for sql in [
        "CREATE TABLE t1 (x INTEGER)",
        "CREATE TABLE t2 (x INTEGER)",
        "INSERT INTO t1 (x) VALUES (1)",
        "INSERT INTO t2 (x) VALUES (1)",
    ] {
        assert!(probe(&server, sql, true).await.get("ok").is_some(), "{sql}");
    }
    // random() makes every real execution visible.
    let q1 = "SELECT x, random() AS r FROM t1";
    let q2 = "SELECT x, random() AS r FROM t2";
    let first1 = cached(&server, q1, 60_000).await;
    assert_eq!(
        cached(&server, q1, 60_000).await,
        first1,
        "a hit returns the cached rows"
    );
    let first2 = cached(&server, q2, 60_000).await;

    // A write to t1 invalidates exactly the query over t1.
    assert!(
        probe(&server, "INSERT INTO t1 (x) VALUES (2)", true)
            .await
            .get("ok")
            .is_some()
    );
    let after1 = cached(&server, q1, 60_000).await;
    assert_eq!(after1.as_array().map(Vec::len), Some(2), "{after1}");
    assert_eq!(
        cached(&server, q2, 60_000).await,
        first2,
        "t2 was not written"
    );

    // A write inside a committed transaction invalidates too.
    let reply = post_json(
        &server,
        "/misbehave/sql-tx",
        json!({"statements": ["INSERT INTO t2 (x) VALUES (2)"], "end": "commit"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        cached(&server, q2, 60_000).await.as_array().map(Vec::len),
        Some(2)
    );

    // Entries expire with their ttl.
    let q3 = "SELECT random() AS r FROM t1 WHERE x = 1";
    let short = cached(&server, q3, 100).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_ne!(cached(&server, q3, 100).await, short, "the entry expired");
    server.shutdown().await;
}

/// Two nodes on one PostgreSQL database and one Redis: a result cached by
/// one is served by the other, and a write on either invalidates it on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_cache_is_shared_and_invalidated_across_nodes() {
    let ns = Namespace::new().await;
    let toml = misbehave(&format!(
        "{}{}",
        ns.toml(),
        trellis_tests::redis::toml(
            &trellis_tests::redis::url(),
            &trellis_tests::redis::namespace()
        )
    ));
    let a = TestServer::start(&toml).await;
    let b = TestServer::start(&toml).await;
    for sql in [
        "CREATE TABLE shared (x INTEGER)",
        "INSERT INTO shared (x) VALUES (1)",
    ] {
        assert!(probe(&a, sql, true).await.get("ok").is_some(), "{sql}");
    }
    let q = "SELECT x, random() AS r FROM shared";
    let first = cached(&a, q, 60_000).await;
    assert_eq!(cached(&b, q, 60_000).await, first, "B is served A's result");
    assert!(
        probe(&b, "INSERT INTO shared (x) VALUES (2)", true)
            .await
            .get("ok")
            .is_some()
    );
    let after = cached(&a, q, 60_000).await;
    assert_eq!(
        after.as_array().map(Vec::len),
        Some(2),
        "A saw B's write: {after}"
    );
    a.shutdown().await;
    b.shutdown().await;
    ns.drop_all().await;
}
