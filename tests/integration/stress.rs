//! Overload and the scenarios under load, with the load tool's library
//! (`trellis_benches::load`) driving a real server on loopback. Bounded in
//! time and count; they check behaviour, never speed.

use std::time::Duration;

use trellis_benches::load::{Options, Report, Scenario, run};
use trellis_tests::{TestServer, guest, rss_bytes};

/// Instances × time per request: 4 / 25 ms.
const CAPACITY: f64 = 160.0;

fn open_loop(server: &TestServer, scenario: Scenario, rate: f64, seconds: u64) -> Options {
    Options {
        target: format!("http://{}", server.addr()).parse().expect("uri"),
        scenario,
        connections: 64,
        duration: Duration::from_secs(seconds),
        warmup: Duration::ZERO,
        max_requests: 100_000,
        http2: false,
        rate: Some(rate),
        timeout: Duration::from_secs(5),
        headers: Vec::new(),
    }
}

fn count(report: &Report, kind: &str) -> u64 {
    report.errors_by_kind.get(kind).copied().unwrap_or(0)
}

/// Three times what a plugin can serve, for a few seconds: the excess is
/// shed at once with 503s (no resets, no timeouts), the accepted requests
/// keep the plugin busy at about its capacity, memory stays bounded; and
/// once the rate drops, every request is served at normal latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_times_capacity_is_shed_with_503s_then_recovers() {
    let server = TestServer::start(&format!(
        r#"
[plugins.misbehave]
path = {path:?}
grants = ["config", "sql"]
[plugins.misbehave.limits]
deadline = "2s"
max_concurrency = 4
max_queued = 4
"#,
        path = guest("misbehave")
    ))
    .await;
    let slow = || Scenario::get("/misbehave/sleep?ms=25");
    // Warm: the component compiled, the pool's slots touched.
    let warm = run(&open_loop(&server, slow(), 50.0, 1))
        .await
        .expect("warm-up");
    assert_eq!(warm.errors + warm.non_2xx, 0, "{:?}", warm.errors_by_kind);

    let rss_before = rss_bytes();
    let overload = run(&open_loop(&server, slow(), 3.0 * CAPACITY, 4))
        .await
        .expect("overload run");
    let rss_after = rss_bytes();
    assert_eq!(overload.errors, 0, "{:?}", overload.errors_by_kind);
    assert_eq!(
        count(&overload, "status_4xx") + count(&overload, "status_5xx"),
        0,
        "{:?}",
        overload.errors_by_kind
    );
    let shed = count(&overload, "status_503");
    assert!(shed > 0, "nothing was shed: {overload:?}");
    let accepted = (overload.requests - shed) as f64 / overload.seconds;
    assert!(
        (0.5 * CAPACITY..=1.25 * CAPACITY).contains(&accepted),
        "{accepted:.0} accepted req/s against a capacity of {CAPACITY}: {overload:?}"
    );
    assert!(
        rss_after < rss_before + (256 << 20),
        "RSS grew from {rss_before} to {rss_after}"
    );

    let calm = run(&open_loop(&server, slow(), CAPACITY / 4.0, 2))
        .await
        .expect("calm run");
    eprintln!("overload: {overload:?}\ncalm: {calm:?}");
    assert_eq!(calm.errors + calm.non_2xx, 0, "{:?}", calm.errors_by_kind);
    assert!(calm.latency_ms.p95 < 150.0, "{:?}", calm.latency_ms);
    server.shutdown().await;
}

/// The performance smoke: every scenario in `benches/scenarios/` briefly
/// against the example plugins; any failed request fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_load_scenario_runs_without_errors() {
    let server = TestServer::start(&format!(
        r#"
[plugins.hello]
builtin = "hello"
grants = ["log", "config"]
[plugins.notes]
builtin = "notes"
grants = ["log", "sql", "cache", "jobs"]
[plugins.wasi]
path = {wasi:?}
grants = []
mount = "/wasi"
"#,
        wasi = guest("wasi_hello")
    ))
    .await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("benches/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let mut scenarios = Vec::new();
    for file in files {
        let mut scenario = Scenario::load(&file).expect("scenario");
        // A smoke, not a benchmark: a few setup rows, ids among them.
        for step in &mut scenario.setup {
            step.repeat = step.repeat.min(20);
        }
        scenario.zipf = scenario.zipf.map(|n| n.min(20));
        scenarios.push((file.display().to_string(), scenario));
    }
    // The wasi:http hello too, as the head-to-head loads it.
    scenarios.push(("the wasi:http hello".into(), Scenario::get("/wasi")));
    // The job API is an admin write: the node's own token goes along.
    let headers: Vec<(http::HeaderName, http::HeaderValue)> = server
        .admin_token()
        .map(|token| {
            let value = format!("Bearer {token}").parse().expect("a header value");
            (http::header::AUTHORIZATION, value)
        })
        .into_iter()
        .collect();
    for (name, scenario) in scenarios {
        for http2 in [false, true] {
            let options = Options {
                target: format!("http://{}", server.addr()).parse().expect("uri"),
                scenario: scenario.clone(),
                connections: 4,
                duration: Duration::from_millis(700),
                warmup: Duration::from_millis(100),
                max_requests: 2_000,
                http2,
                rate: None,
                timeout: Duration::from_secs(10),
                headers: headers.clone(),
            };
            let report = run(&options)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(report.requests > 0, "{name}: no requests");
            assert_eq!(
                report.errors + report.non_2xx,
                0,
                "{name} (http2: {http2}): {:?}",
                report.errors_by_kind
            );
        }
    }
    server.shutdown().await;
}
