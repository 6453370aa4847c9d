//! Unit tests of loading as a whole: parsing, error messages, environment
//! overrides, and the sections' checks seen through [`Config::parse`].
//!
//! Layer: config, the bottom; the tests use nothing of the crate beyond it.

use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;

use super::{Config, ConfigError};

fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::parse(text, Path::new("trellis.toml"), env)
}

#[test]
fn defaults_serve_the_examples() {
    let config = parse("", &[]).expect("defaults are valid");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    let plugins = config.plugins();
    assert!(plugins.contains_key("hello"));
    assert!(!plugins.contains_key("misbehave"));
}

#[test]
fn unknown_key_names_key_and_line() {
    let err =
        parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]).expect_err("unknown key");
    let msg = err.to_string();
    assert!(msg.contains("lisen"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn wrong_type_names_line() {
    let msg = parse("[server]\nmax_connections = \"many\"\n", &[])
        .expect_err("wrong type")
        .to_string();
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn env_overrides_apply_and_name_the_variable() {
    let config = parse(
        "",
        &[
            ("TRELLIS_SERVER__LISTEN", "127.0.0.1:9999"),
            ("TRELLIS_LIMITS__DEADLINE", "250ms"),
            ("TRELLIS_CONFIG", "ignored.toml"),
        ],
    )
    .expect("valid overrides");
    assert_eq!(config.server.listen.port(), 9999);
    assert_eq!(config.limits.deadline, Duration::from_millis(250));

    let msg = parse("", &[("TRELLIS_SERVER__MAX_CONECTIONS", "3")])
        .expect_err("unknown key")
        .to_string();
    assert!(msg.contains("TRELLIS_SERVER__MAX_CONECTIONS"), "{msg}");
}

/// Kubernetes injects `TRELLIS_PORT`, `TRELLIS_SERVICE_HOST`, ... into the
/// pods of a namespace with a Service named `trellis`; they, and tools'
/// own `TRELLIS_*` variables, are not settings and must not stop a start.
#[test]
fn variables_that_are_not_settings_are_left_alone() {
    let config = parse(
        "",
        &[
            ("TRELLIS_PORT", "tcp://10.0.0.1:8080"),
            ("TRELLIS_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
            ("TRELLIS_PORT_8080_TCP_ADDR", "10.0.0.1"),
            ("TRELLIS_PORT_8080_TCP_PORT", "8080"),
            ("TRELLIS_PORT_8080_TCP_PROTO", "tcp"),
            ("TRELLIS_SERVICE_HOST", "10.0.0.1"),
            ("TRELLIS_SERVICE_PORT", "8080"),
            ("TRELLIS_SERVICE_PORT_HTTP", "8080"),
            ("TRELLIS_TEST_PG_URL", "postgres://x"),
            ("TRELLIS_PYTHON_VENV", "/tmp/venv"),
            ("TRELLIS_DATA_DIR", "/tmp/trellis-data"),
        ],
    )
    .expect("a start beside a Kubernetes Service named trellis");
    assert_eq!(config.server.listen.port(), 8080);
    assert_eq!(config.data_dir, Path::new("/tmp/trellis-data"));
}

/// A setting spelled with single underscores is caught, with the right
/// spelling; so is a mistyped section.
#[test]
fn a_mistyped_override_is_still_an_error() {
    let msg = parse("", &[("TRELLIS_SERVER_LISTEN", "127.0.0.1:1")])
        .expect_err("single underscores")
        .to_string();
    assert!(msg.contains("TRELLIS_SERVER_LISTEN"), "{msg}");
    assert!(msg.contains("TRELLIS_SERVER__LISTEN"), "{msg}");
    let msg = parse("", &[("TRELLIS_SQL_POOL_MAX_CONNECTIONS", "3")])
        .expect_err("single underscores, three levels")
        .to_string();
    assert!(msg.contains("TRELLIS_SQL__POOL__MAX_CONNECTIONS"), "{msg}");
    let msg = parse("", &[("TRELLIS_SEVER__LISTEN", "127.0.0.1:1")])
        .expect_err("an unknown section")
        .to_string();
    assert!(msg.contains("TRELLIS_SEVER__LISTEN"), "{msg}");
}

#[test]
fn plugin_needs_exactly_one_source() {
    let msg = parse("[plugins.x]\ngrants = []\n", &[])
        .expect_err("no source")
        .to_string();
    assert!(msg.contains("plugins.x.path"), "{msg}");
    let msg = parse("[plugins.x]\npath = \"/nonexistent.wasm\"\n", &[])
        .expect_err("missing file")
        .to_string();
    assert!(msg.contains("/nonexistent.wasm"), "{msg}");
}

#[test]
fn unknown_grant_is_rejected() {
    let msg = parse(
        "[plugins.h]\nbuiltin = \"hello\"\ngrants = [\"teleport\"]\n",
        &[],
    )
    .expect_err("unknown grant")
    .to_string();
    assert!(msg.contains("plugins.h.grants"), "{msg}");
}

#[test]
fn limits_merge_and_validate() {
    let config = parse(
        "[limits]\ndeadline = \"2s\"\n[plugins.h]\nbuiltin = \"hello\"\n[plugins.h.limits]\nmemory = \"16MiB\"\n",
        &[],
    )
    .expect("valid");
    let plugins = config.plugins();
    let limits = config.limits.with(&plugins["h"].limits);
    assert_eq!(limits.deadline, Duration::from_secs(2));
    assert_eq!(limits.memory, ByteSize::mib(16));
    let msg = parse("[limits]\nmemory = \"10KiB\"\n", &[])
        .expect_err("too small")
        .to_string();
    assert!(msg.contains("limits.memory"), "{msg}");
}
