//! Tracing end to end: an incoming `traceparent` is the parent of the
//! server span; routing, the plugin call, instantiation and each SQL
//! statement are child spans; the spans reach a real OTLP/HTTP endpoint on
//! loopback, and the local store serves the same trace.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;
use trellis_tests::TestServer;
use trellis_tests::otlp::OtlpReceiver;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The plugin tables of `misbehave` (to fail on purpose) and `hello`.
fn misbehave_and_hello() -> String {
    format!(
        r#"
[plugins.misbehave]
path = {:?}
grants = ["config", "sql"]
[plugins.hello]
path = {:?}
"#,
        trellis_tests::guest("misbehave"),
        trellis_tests::guest("hello"),
    )
}

/// A receiver, and a server exporting to it with a sampling ratio of 0 and
/// a store of 5 traces; `plugins` as given (empty: the examples).
async fn traced_server(plugins: &str) -> (OtlpReceiver, TestServer) {
    let receiver = OtlpReceiver::start().await;
    let server = TestServer::start(&format!(
        r#"
[telemetry]
otlp_endpoint = "{}"
sampling_ratio = 0.0
traces_kept = 5
service_name = "trellis-test"
{plugins}"#,
        receiver.endpoint()
    ))
    .await;
    (receiver, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_exports_its_span_tree_under_the_incoming_parent() {
    let (receiver, server) = traced_server("").await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let reply = server
        .send(
            Method::POST,
            "/notes",
            &[
                ("content-type", "application/json"),
                ("traceparent", traceparent.as_str()),
                ("tracestate", "vendor=opaque"),
            ],
            r#"{"title":"traced","body":"spans"}"#,
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let returned = reply.header("traceparent").expect("traceparent returned");
    assert!(
        returned.starts_with(&format!("00-{TRACE_ID}-")),
        "{returned}"
    );
    assert!(
        !returned.contains(PARENT_ID),
        "the server span is a new span"
    );
    assert_eq!(reply.header("tracestate"), Some("vendor=opaque"));

    // Sampled by the caller: exported although the ratio is 0.
    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|s| s.span.name == "POST /notes")
        })
        .await;
    assert_eq!(
        receiver.paths().first().map(String::as_str),
        Some("/v1/traces")
    );
    let ours: Vec<_> = spans
        .iter()
        .filter(|s| hex(&s.span.trace_id) == TRACE_ID)
        .collect();
    let by_id: HashMap<String, &opentelemetry_proto::tonic::trace::v1::Span> = ours
        .iter()
        .map(|s| (hex(&s.span.span_id), &s.span))
        .collect();
    let named = |name: &str| {
        ours.iter()
            .find(|s| s.span.name == name)
            .map(|s| &s.span)
            .unwrap_or_else(|| {
                let names: Vec<_> = ours.iter().map(|s| &s.span.name).collect();
                panic!("no span {name}; have {names:?}")
            })
    };
    let server_span = named("POST /notes");
    assert_eq!(hex(&server_span.parent_span_id), PARENT_ID);
    assert!(ours.iter().all(|s| s.service.contains("trellis-test")));
    let parent_of = |span: &opentelemetry_proto::tonic::trace::v1::Span| {
        by_id
            .get(&hex(&span.parent_span_id))
            .map(|p| p.name.clone())
            .unwrap_or_default()
    };
    assert!(
        ours.iter().all(|s| s.span.name != "http.route"),
        "the route lookup has no span of its own"
    );
    assert_eq!(parent_of(named("plugin.call")), "POST /notes");
    assert_eq!(parent_of(named("plugin.instantiate")), "plugin.call");
    let sql = named("sql.query");
    assert_eq!(parent_of(sql), "plugin.call");
    let statement = sql
        .attributes
        .iter()
        .find(|kv| kv.key == "db.query.text")
        .and_then(|kv| kv.value.as_ref())
        .map(|v| format!("{:?}", v.value))
        .unwrap_or_default();
    assert!(statement.contains("INSERT INTO notes"), "{statement}");

    // The local store has the same trace, whole.
    let stored = server
        .get(&format!("/api/v1/monitoring/traces/{TRACE_ID}"))
        .await;
    assert_eq!(stored.status, 200, "{}", stored.text());
    let stored = stored.json();
    assert_eq!(stored["name"], "POST /notes");
    assert_eq!(stored["attributes"]["http.response.status_code"], 201);
    assert_eq!(stored["spans"], ours.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_are_not_exported_but_errors_are_kept_locally() {
    let (receiver, server) = traced_server(&misbehave_and_hello()).await;
    server
        .get("/misbehave/trap")
        .await
        .assert_problem(500, "guest_fault");
    // Many ordinary requests after it: the store (5 traces) evicts them
    // before the error.
    for _ in 0..20 {
        assert_eq!(server.get("/hello").await.status, 200);
    }
    let listed = server
        .get("/api/v1/monitoring/traces?limit=100")
        .await
        .json();
    let traces = listed["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 5, "{listed}");
    let error = traces
        .iter()
        .find(|t| t["error"] == true)
        .unwrap_or_else(|| panic!("the error trace was evicted: {listed}"));
    assert_eq!(error["name"], "GET /misbehave/trap");
    let notable = server
        .get("/api/v1/monitoring/traces?notable=true")
        .await
        .json();
    assert_eq!(notable["traces"].as_array().map(Vec::len), Some(1));
    let detail = server
        .get(&format!(
            "/api/v1/monitoring/traces/{}",
            error["trace_id"].as_str().expect("id")
        ))
        .await
        .json();
    let call = detail["span_list"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "plugin.call"))
        .unwrap_or_else(|| panic!("no plugin.call span: {detail}"));
    assert_eq!(call["status"]["error"], "guest_fault");
    server
        .get("/api/v1/monitoring/traces?limit=0")
        .await
        .assert_problem(400, "bad_request");

    // Nothing was sampled, so nothing reached the collector.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(receiver.wait_for(Duration::ZERO, |_| true).await.is_empty());
    server.shutdown().await;
}

/// Past `recorded_per_second` (here 0), an unsampled request records no
/// spans: an ordinary one leaves nothing in the store, and one that fails
/// leaves its root span alone, with its status and request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_recording_budget_a_failure_keeps_its_root_span() {
    let server = TestServer::start(&format!(
        r#"
[telemetry]
sampling_ratio = 0.0
recorded_per_second = 0
{}"#,
        misbehave_and_hello()
    ))
    .await;
    for _ in 0..3 {
        let hello = server.get("/hello").await;
        assert_eq!(hello.status, 200);
        assert!(hello.header("traceparent").is_some(), "still propagated");
    }
    let failed = server.get("/misbehave/trap").await;
    failed.assert_problem(500, "guest_fault");
    let request_id = failed.header("x-request-id").expect("an id").to_string();
    let listed = server.get("/api/v1/monitoring/traces").await.json();
    let traces = listed["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 1, "only the failure is kept: {listed}");
    assert_eq!(traces[0]["error"], true);
    assert_eq!(traces[0]["name"], "GET /misbehave/trap");
    let detail = server
        .get(&format!(
            "/api/v1/monitoring/traces/{}",
            traces[0]["trace_id"].as_str().expect("id")
        ))
        .await
        .json();
    let spans = detail["span_list"].as_array().expect("spans");
    assert_eq!(spans.len(), 1, "{detail}");
    assert_eq!(spans[0]["status"]["error"], "guest_fault", "{detail}");
    assert!(detail.to_string().contains(&request_id), "{detail}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_spans_join_the_request_trace() {
    let (_receiver, server) = traced_server(&format!(
        r#"
[plugins.misbehave]
path = {:?}
grants = ["config", "sql"]
"#,
        trellis_tests::guest("misbehave"),
    ))
    .await;
    let reply = server.get("/misbehave/spans").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let trace_id = reply
        .header("traceparent")
        .and_then(|t| t.split('-').nth(1))
        .expect("traceparent")
        .to_string();
    let detail = server
        .get(&format!("/api/v1/monitoring/traces/{trace_id}"))
        .await
        .json();
    let spans = detail["span_list"].as_array().expect("spans");
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {detail}"))
    };
    let (call, work, inner) = (
        named("plugin.call"),
        named("guest.work"),
        named("guest.inner"),
    );
    assert_eq!(work["parent_span_id"], call["span_id"]);
    assert_eq!(inner["parent_span_id"], work["span_id"]);
    assert_eq!(work["attributes"]["items"], "3");
    assert_eq!(work["events"][0]["name"], "started");
    assert_eq!(work["events"][0]["attributes"]["phase"], "one");
    assert_eq!(inner["status"]["error"], "inner failed");

    // Past the per-call limit the plugin faults; the server keeps serving.
    server
        .get("/misbehave/spans?n=5000")
        .await
        .assert_problem(500, "guest_fault");
    assert_eq!(server.get("/misbehave/spans").await.status, 200);
    server.shutdown().await;
}

/// The value of the `trellis_http_requests` point for `route` in `export`
/// (summed over status classes and methods), if the export has it.
fn requests_for(
    export: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
    route: &str,
) -> Option<f64> {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let metric = export
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == "trellis_http_requests")?;
    let Some(Data::Sum(sum)) = &metric.data else {
        panic!("trellis_http_requests is not a sum: {metric:?}");
    };
    assert!(sum.is_monotonic);
    let points: Vec<f64> = sum
        .data_points
        .iter()
        .filter(|p| {
            p.attributes.iter().any(|kv| {
                kv.key == "route" && format!("{:?}", kv.value).contains(&format!("{route:?}"))
            })
        })
        .filter_map(|p| match p.value {
            Some(Value::AsDouble(v)) => Some(v),
            _ => None,
        })
        .collect();
    (!points.is_empty()).then(|| points.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_reach_the_otlp_endpoint_periodically_and_on_shutdown() {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let receiver = OtlpReceiver::start().await;
    let server = TestServer::start(&format!(
        r#"
[telemetry]
otlp_endpoint = "{}"
service_name = "trellis-test"
metrics_interval = "1s"
"#,
        receiver.endpoint()
    ))
    .await;
    for name in ["a", "b", "c"] {
        assert_eq!(server.get(&format!("/hello/{name}")).await.status, 200);
    }
    let exports = receiver
        .wait_for_metrics(Duration::from_secs(10), |exports| {
            exports
                .iter()
                .any(|e| requests_for(e, "/hello/{name}") == Some(3.0))
        })
        .await;
    let export = exports
        .iter()
        .find(|e| requests_for(e, "/hello/{name}") == Some(3.0))
        .unwrap_or_else(|| panic!("no export counted 3 requests: {exports:?}"));

    let resource = export.resource_metrics[0]
        .resource
        .as_ref()
        .expect("a resource");
    let attribute = |key: &str| {
        resource
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| format!("{:?}", kv.value))
            .unwrap_or_default()
    };
    assert!(attribute("service.name").contains("trellis-test"));
    assert!(!attribute("service.instance.id").is_empty());
    // The latency histogram came along with consistent buckets.
    let histogram = export.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "trellis_http_request_duration_seconds")
        .expect("latency histogram exported");
    assert_eq!(histogram.unit, "s");
    let Some(Data::Histogram(histogram)) = &histogram.data else {
        panic!("not a histogram: {histogram:?}");
    };
    let point = histogram
        .data_points
        .iter()
        .find(|p| p.count == 3)
        .expect("a point with the 3 requests");
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), 3);
    assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);

    // Two more, then shutdown: the last push carries them.
    for name in ["d", "e"] {
        assert_eq!(server.get(&format!("/hello/{name}")).await.status, 200);
    }
    server.shutdown().await;
    let exports = receiver
        .wait_for_metrics(Duration::from_secs(5), |_| true)
        .await;
    let last = exports.last().expect("exports");
    assert_eq!(requests_for(last, "/hello/{name}"), Some(5.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_does_not_disturb_serving() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = TestServer::start(&format!(
        r#"
[telemetry]
otlp_endpoint = "http://127.0.0.1:{port}"
sampling_ratio = 1.0
metrics_interval = "1s"
"#
    ))
    .await;
    for round in 0..3 {
        assert_eq!(
            server.get(&format!("/hello/r{round}")).await.status,
            200,
            "round {round}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // The last push on shutdown fails and shutdown still completes.
    server.shutdown().await;
}

/// A response carries `traceparent` always, and `tracestate` only when
/// the caller sent one: never an empty header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_empty_tracestate_is_returned() {
    let server = TestServer::start("").await;
    let reply = server.get("/hello").await;
    assert!(reply.header("traceparent").is_some());
    assert_eq!(reply.header("tracestate"), None);
    server.shutdown().await;
}
