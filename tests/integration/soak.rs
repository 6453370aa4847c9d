//! 1,000 sequential requests alternating a healthy plugin and a trapping
//! one: every request answered, memory not growing without bound.

use trellis_tests::{TestServer, guest, rss_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_requests_alternating_hello_and_trap() {
    let server = TestServer::start(&format!(
        "[plugins.hello]\nbuiltin = \"hello\"\n[plugins.misbehave]\npath = {:?}\ngrants = [\"config\", \"sql\"]\n",
        guest("misbehave")
    ))
    .await;
    let mut baseline = 0;
    for i in 0..1000 {
        if i == 200 {
            // Pools, caches and allocator arenas are warm by now.
            baseline = rss_bytes();
        }
        if i % 2 == 0 {
            let reply = server.get("/hello").await;
            assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        } else {
            server
                .get("/misbehave/trap")
                .await
                .assert_problem(500, "guest_fault");
        }
    }
    let grown = rss_bytes().saturating_sub(baseline);
    eprintln!(
        "RSS grew by {} KiB over the last 800 requests",
        grown / 1024
    );
    // 800 more requests, half of them traps: a leak of even one 64 KiB wasm
    // page per trap would pass 25 MiB.
    assert!(
        grown < 24 << 20,
        "RSS grew by {} KiB over 800 requests",
        grown / 1024
    );
    server.shutdown().await;
}
