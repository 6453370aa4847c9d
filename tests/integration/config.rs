//! Config reaches plugins: settings through the `config` capability, limits
//! and environment overrides.

use std::path::Path;

use trellis::Config;
use trellis_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_settings_reach_the_plugin() {
    let server = TestServer::start(
        "[plugins.hello]\nbuiltin = \"hello\"\n[plugins.hello.config]\ngreeting = \"Howdy\"\n",
    )
    .await;
    assert_eq!(server.get("/hello").await.text(), "Howdy, world!");
    // Only the configured plugins are served: echo is not mounted.
    server.get("/echo/x").await.assert_problem(404, "not_found");
    server.shutdown().await;
}

#[test]
fn environment_overrides_win_over_the_file() {
    let env = [
        (
            "TRELLIS_LIMITS__MAX_CONCURRENCY".to_string(),
            "7".to_string(),
        ),
        ("TRELLIS_LOG__FORMAT".to_string(), "json".to_string()),
    ];
    let config =
        Config::parse("[limits]\nmax_concurrency = 3\n", Path::new("t.toml"), env).expect("valid");
    assert_eq!(config.limits.max_concurrency, 7);
    assert_eq!(config.log.format, trellis::config::LogFormat::Json);

    let env = [(
        "TRELLIS_LIMITS__MAX_CONCURRENCY".to_string(),
        "lots".to_string(),
    )];
    let err = Config::parse("", Path::new("t.toml"), env)
        .expect_err("not a number")
        .to_string();
    assert!(err.contains("TRELLIS_LIMITS__MAX_CONCURRENCY"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_loads_every_plugin_without_serving() {
    let config = trellis_tests::config("");
    let routes = trellis::server::check(&config)
        .await
        .expect("examples load");
    assert!(routes >= 2, "{routes}");
}
