//! Per-request cost of the plugin host: instantiate `hello` from its
//! pre-instantiated component in the pooling allocator and call `handle`,
//! next to the routing lookup that precedes it. Run: `cargo bench -p
//! trellis-benches --bench plugin_call`.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis::Config;
use trellis::config::PluginConfig;
use trellis::plugin::{GuestRequest, PluginHost};
use trellis::router::{Lookup, Router};

fn request(route: u32, path: &str) -> GuestRequest {
    GuestRequest {
        route,
        method: "GET".into(),
        path: path.into(),
        params: vec![],
        query: vec![],
        headers: vec![("host".into(), "127.0.0.1".into())],
        body: vec![],
        request_id: "bench".into(),
    }
}

fn plugin_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let data_dir = std::env::temp_dir().join("trellis-bench-data");
    let config = Config::parse(
        &format!(
            "data_dir = {:?}\n[engine]\ncompile_cache = false\n",
            data_dir.display().to_string()
        ),
        Path::new("bench.toml"),
        std::iter::empty(),
    )
    .expect("default config");
    let host = runtime.block_on(PluginHost::new(&config)).expect("engine");
    let hello = runtime
        .block_on(host.load("hello", &PluginConfig::builtin("hello"), config.limits, &[]))
        .expect("hello loads");
    let router = Router::build(std::slice::from_ref(&hello)).expect("routes");

    let mut group = c.benchmark_group("plugin");
    group.bench_function("route_lookup", |b| {
        b.iter(|| match router.lookup("GET", "/hello/world") {
            Lookup::Found { params, .. } => params.len(),
            _ => 0,
        })
    });
    let req = request(0, "/hello");
    // Untraced: the call's own cost, without span recording.
    let untraced = opentelemetry::Context::new();
    group.bench_function("instantiate_and_call_hello", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = hello
                .handle(&req, &untraced, &http::Extensions::new())
                .await
                .expect("hello answers");
            assert_eq!(response.status, 200);
        })
    });
    group.finish();
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
