//! The configurations shipped in `examples/` stay valid: each parses and
//! every plugin it names loads.

use std::path::Path;

use trellis::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_config_loads() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let path = entry.expect("entry").path().join("trellis.toml");
        if !path.is_file() {
            continue;
        }
        let env = [
            (
                "TRELLIS_ENGINE__CACHE_DIR".to_string(),
                format!("{:?}", trellis_tests::cache_dir().display().to_string()),
            ),
            (
                "TRELLIS_DATA_DIR".to_string(),
                format!("{:?}", trellis_tests::fresh_dir().display().to_string()),
            ),
        ];
        let config = Config::load_with_env(Some(&path), env)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        trellis::server::check(&config)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        checked += 1;
    }
    assert!(checked >= 1, "no example configs found");
}
