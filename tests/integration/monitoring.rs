//! The runtime's own endpoints: `/metrics` moves with known traffic and
//! parses as Prometheus text, the JSON summary, health and readiness, and
//! admin auth on every protected endpoint.

use std::collections::HashMap;

use http::Method;
use trellis_tests::{TestServer, config, guest};

const TOKEN: &str = "test-admin-token-0123456789";

fn plugins() -> String {
    format!(
        r#"
[plugins.hello]
path = {hello:?}
[plugins.misbehave]
path = {misbehave:?}
grants = ["config", "sql"]
[plugins.misbehave.limits]
deadline = "300ms"
"#,
        hello = guest("hello"),
        misbehave = guest("misbehave"),
    )
}

/// Samples of a scrape, by metric name and sorted `k=v` labels.
fn scrape(text: &str) -> HashMap<(String, String), f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text ({e}):\n{text}"));
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            ((s.metric, labels.join(",")), value)
        })
        .collect()
}

fn sample(samples: &HashMap<(String, String), f64>, metric: &str, labels: &str) -> f64 {
    samples
        .get(&(metric.to_string(), labels.to_string()))
        .copied()
        .unwrap_or_else(|| {
            let known: Vec<_> = samples.keys().filter(|(m, _)| m == metric).collect();
            panic!("no sample {metric}{{{labels}}}; have {known:?}")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_known_traffic() {
    let server = TestServer::start(&plugins()).await;
    for _ in 0..7 {
        assert_eq!(server.get("/hello").await.status, 200);
    }
    server
        .get("/nowhere")
        .await
        .assert_problem(404, "not_found");
    server
        .get("/misbehave/trap")
        .await
        .assert_problem(500, "guest_fault");
    server
        .get("/misbehave/loop")
        .await
        .assert_problem(504, "deadline_exceeded");

    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    let samples = scrape(&reply.text());
    let hello = "method=GET,plugin=hello,route=/hello";
    assert_eq!(
        sample(
            &samples,
            "trellis_http_requests_total",
            &format!("{hello},status=2xx")
        ),
        7.0
    );
    assert_eq!(
        sample(
            &samples,
            "trellis_http_request_duration_seconds_count",
            hello
        ),
        7.0
    );
    assert_eq!(
        sample(
            &samples,
            "trellis_http_requests_total",
            "method=GET,plugin=misbehave,route=/misbehave/trap,status=5xx"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "trellis_http_unrouted_requests_total",
            "status=404"
        ),
        1.0
    );
    for kind in ["guest_fault", "deadline_exceeded"] {
        assert_eq!(
            sample(
                &samples,
                "trellis_guest_faults_total",
                &format!("kind={kind},plugin=misbehave")
            ),
            1.0,
            "{kind}"
        );
    }
    assert_eq!(
        sample(
            &samples,
            "trellis_guest_call_duration_seconds_count",
            "plugin=hello"
        ),
        7.0
    );
    assert!(
        sample(
            &samples,
            "trellis_plugin_memory_high_water_bytes",
            "plugin=hello"
        ) > 0.0
    );
    assert!(sample(&samples, "trellis_process_resident_memory_bytes", "") > 1e6);
    assert!(sample(&samples, "trellis_startup_duration_seconds", "") > 0.0);
    assert_eq!(
        sample(
            &samples,
            "trellis_build_info",
            &format!("version={}", env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_statements_are_counted_per_plugin() {
    let server = TestServer::start("").await;
    let created = server
        .send(
            Method::POST,
            "/notes",
            &[("content-type", "application/json")],
            r#"{"title":"metrics","body":"counted"}"#,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].clone();
    assert_eq!(server.get(&format!("/notes/{id}")).await.status, 200);
    let samples = scrape(&server.get("/metrics").await.text());
    let executed = sample(
        &samples,
        "trellis_sql_statement_duration_seconds_count",
        "kind=execute,plugin=notes",
    ) + sample(
        &samples,
        "trellis_sql_statement_duration_seconds_count",
        "kind=query,plugin=notes",
    );
    assert!(executed >= 2.0, "{executed}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_has_percentiles_per_route() {
    let server = TestServer::start(&plugins()).await;
    for _ in 0..20 {
        server.get("/hello").await;
    }
    server.get("/misbehave/trap").await;
    let reply = server.get("/api/v1/monitoring/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let routes = body["routes"].as_array().expect("routes");
    let find = |route: &str| {
        routes
            .iter()
            .find(|r| r["route"] == route)
            .unwrap_or_else(|| panic!("{route} not in {body}"))
    };
    let hello = &find("/hello")["last_1m"];
    assert_eq!(hello["requests"], 20);
    assert_eq!(hello["error_rate"], 0.0);
    let (p50, p99) = (
        hello["p50_ms"].as_f64().expect("p50"),
        hello["p99_ms"].as_f64().expect("p99"),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{hello}");
    assert!(hello["rps"].as_f64().expect("rps") > 0.0);
    assert_eq!(find("/misbehave/trap")["last_5m"]["error_rate"], 1.0);
    // Routes not yet called are listed, idle.
    assert_eq!(find("/misbehave/ok")["last_1m"]["requests"], 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let server = TestServer::start(&plugins()).await;
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ok");
    assert_eq!(server.get("/readyz").await.status, 200);
    let health = server.get("/api/v1/monitoring/health").await.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["checks"][0]["name"], "database");
    assert!(health["checks"][0]["latency_ms"].as_f64().is_some());
    assert_eq!(
        health["checks"][1]["loaded"],
        serde_json::json!(["hello", "misbehave"])
    );
    server
        .send(Method::POST, "/healthz", &[], "")
        .await
        .assert_problem(405, "method_not_allowed");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_503_when_draining() {
    let server = trellis::Server::start(&config(&plugins()))
        .await
        .expect("server starts");
    let app = server.app().clone();
    let addr = server.local_addr().expect("bound");
    let handle = server.spawn().expect("spawned");
    app.drain();
    let reply = trellis_tests::raw_exchange(
        addr,
        b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("not_ready"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("retry-after"),
        "{reply}"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_a_valid_token() {
    let toml = format!(
        r#"
[admin]
tokens = ["{TOKEN}", "rotated-admin-token-0123456789"]
public_metrics = false
public_health = true
{plugins}"#,
        plugins = plugins()
    );
    let server = TestServer::start(&toml).await;
    let protected = [
        "/metrics",
        "/api/v1/monitoring/metrics",
        "/api/v1/monitoring/traces",
        "/api/v1/monitoring/errors",
        "/api/v1/monitoring/unknown",
        "/admin/plugins",
    ];
    let bearer = format!("Bearer {TOKEN}");
    for path in protected {
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong-token-0123456789")],
            vec![("authorization", TOKEN)],
        ] {
            let body = server
                .send(Method::GET, path, &headers, "")
                .await
                .assert_problem(401, "unauthorized");
            assert_eq!(body["detail"], "a valid admin bearer token is required");
        }
        let reply = server
            .send(Method::GET, path, &[("authorization", bearer.as_str())], "")
            .await;
        assert_ne!(reply.status, 401, "{path}: {}", reply.text());
    }
    let rotated = server
        .send(
            Method::GET,
            "/api/v1/monitoring/metrics",
            &[("authorization", "Bearer rotated-admin-token-0123456789")],
            "",
        )
        .await;
    assert_eq!(rotated.status, 200);
    // Health stays public; plugin routes never need the token.
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/hello").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_admin_token_is_a_config_error() {
    let err = trellis::Config::parse(
        "[admin]\ntokens = [\"short\"]\n",
        std::path::Path::new("t.toml"),
        std::iter::empty(),
    )
    .expect_err("a 5-character token is refused");
    assert!(err.to_string().contains("admin.tokens[0]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_grouped_by_fingerprint_and_paged() {
    let server = TestServer::start(&plugins()).await;
    for i in 0..100 {
        let request_id = format!("trap-{i}");
        server
            .send(
                Method::GET,
                "/misbehave/trap",
                &[("x-request-id", request_id.as_str())],
                "",
            )
            .await
            .assert_problem(500, "guest_fault");
    }
    // The same failure with different numbers in its message: one group.
    for n in [17, 4242] {
        server
            .get(&format!("/misbehave/fail?n={n}"))
            .await
            .assert_problem(500, "internal_server_error");
    }
    // A fingerprint the plugin chose; the header does not reach the client.
    let chosen = server
        .get("/misbehave/fail?n=1&fingerprint=payments-down")
        .await;
    assert_eq!(chosen.status, 500);
    assert_eq!(chosen.header("x-trellis-fingerprint"), None);
    // 4xx are the client's, not grouped.
    server
        .get("/nowhere")
        .await
        .assert_problem(404, "not_found");

    let page = server.get("/api/v1/monitoring/errors?limit=10").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let groups = page.json()["errors"].as_array().cloned().expect("errors");
    assert_eq!(groups.len(), 3, "{groups:?}");
    let traps = groups
        .iter()
        .find(|g| g["kind"] == "guest_fault")
        .expect("the trap group");
    assert_eq!(traps["count"], 100);
    assert_eq!(traps["plugin"], "misbehave");
    assert_eq!(traps["route"], "/misbehave/trap");
    assert_eq!(traps["new"], true);
    let samples = traps["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 10);
    assert_eq!(samples[9]["request_id"], "trap-99");
    assert!(
        samples
            .iter()
            .all(|s| s["trace_id"].as_str().is_some_and(|t| t.len() == 32))
    );
    let charged = groups
        .iter()
        .find(|g| g["kind"] == "plugin_error" && g["fingerprint"] != "payments-down")
        .expect("the plugin's own 500s");
    assert_eq!(charged["count"], 2);
    assert_eq!(charged["message"], "order <n> could not be charged");
    assert!(groups.iter().any(|g| g["fingerprint"] == "payments-down"));

    // Paging: one at a time, then the end.
    let first = server.get("/api/v1/monitoring/errors?limit=2").await;
    let next = first.json()["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    assert!(
        first
            .header("link")
            .is_some_and(|l| l.contains(&next) && l.contains("rel=\"next\""))
    );
    let second = server
        .get(&format!("/api/v1/monitoring/errors?limit=2&cursor={next}"))
        .await
        .json();
    assert_eq!(second["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next_cursor"], serde_json::Value::Null);
    server
        .get("/api/v1/monitoring/errors?cursor=nothex")
        .await
        .assert_problem(400, "bad_request");
    let one = server
        .get(&format!(
            "/api/v1/monitoring/errors/{}",
            traps["fingerprint"].as_str().expect("fingerprint")
        ))
        .await;
    assert_eq!(one.json()["count"], 100);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_names_only_metrics_we_export() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grafana/trellis-dashboard.json"
    );
    let dashboard = std::fs::read_to_string(path).expect("the Grafana dashboard");
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("valid JSON");
    // Families without samples are not exposed: make every one but the
    // replica figures (they need replicas) have some.
    let server = TestServer::start(&format!(
        "{}[plugins.tasks]\npath = {:?}\ngrants = [\"sql\", \"jobs\"]\n\
         [jobs]\nmaintenance_interval = \"50ms\"\npoll_interval = \"50ms\"\n",
        plugins(),
        guest("tasks")
    ))
    .await;
    let job = server
        .send(Method::POST, "/tasks/enqueue/record", &[], "{}")
        .await
        .json();
    let job = format!("/api/v1/jobs/{}", job["id"].as_str().expect("a job id"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.get(&job).await.json()["state"] != "completed" {
        assert!(std::time::Instant::now() < deadline, "the job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The leader samples the queue's depth on its next round.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.get("/hello").await;
    server.get("/nowhere").await;
    server.get("/misbehave/trap").await;
    server
        .send(
            Method::POST,
            "/misbehave/sql",
            &[("content-type", "application/json")],
            r#"{"sql": "SELEC nonsense"}"#,
        )
        .await;
    let exposition = server.get("/metrics").await.text();
    let mut names: Vec<&str> = dashboard
        .match_indices("trellis_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|name| *name != "trellis_" && !name.starts_with("trellis_sql_replica_"))
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 10, "{names:?}");
    for name in names {
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_total"))
            .unwrap_or(name);
        assert!(exposition.contains(base), "{name} is not exported");
    }
    server.shutdown().await;
}
