//! 1,000 sequential requests alternating a healthy plugin and a trapping
//! one: every request answered, memory not growing without bound.
//!
//! The process's RSS is only this test's when nothing else runs in it, so
//! the test re-runs itself alone in a child process of the test binary.

use trellis_tests::{TestServer, guest, rss_bytes};

#[test]
fn thousand_requests_alternating_hello_and_trap() {
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "soak::alone_thousand_requests_alternating_hello_and_trap",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("the test binary runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("1 passed"),
        "the soak did not run: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone, in its own process, by thousand_requests_alternating_hello_and_trap"]
async fn alone_thousand_requests_alternating_hello_and_trap() {
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
