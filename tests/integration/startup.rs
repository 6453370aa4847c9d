//! Startup: compiled components are cached on disk, so a second start with
//! the same cache skips compilation.

use std::path::Path;

use trellis::{Config, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_start_takes_compiled_components_from_the_cache() {
    let cache = std::env::temp_dir().join(format!("trellis-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let env = [
        (
            "TRELLIS_SERVER__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "TRELLIS_ENGINE__MAX_INSTANCES".to_string(),
            "16".to_string(),
        ),
        (
            "TRELLIS_ENGINE__CACHE_DIR".to_string(),
            format!("{:?}", cache.display().to_string()),
        ),
        (
            "TRELLIS_DATA_DIR".to_string(),
            format!("{:?}", trellis_tests::fresh_dir().display().to_string()),
        ),
    ];
    let config = Config::parse("", Path::new("t.toml"), env).expect("valid");
    let plugins = config.plugins().len();

    let cold = Server::start(&config).await.expect("cold start");
    assert_eq!(cold.host().compile_cache_stats(), Some((0, plugins)));
    drop(cold);

    let warm = Server::start(&config).await.expect("warm start");
    assert_eq!(warm.host().compile_cache_stats(), Some((plugins, 0)));
    drop(warm);
    let _ = std::fs::remove_dir_all(&cache);
}
