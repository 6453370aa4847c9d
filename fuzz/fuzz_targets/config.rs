//! The config loader: `trellis.toml` text and `TRELLIS_*` overrides through
//! `Config::parse` (TOML, the schema, every section's checks, alert rule
//! expressions, cron schedules, plugin settings).
//!
//! Input: the TOML text, optionally followed by a line `--- env` and then
//! `NAME=value` lines, the environment.
//!
//! Invariants: never a panic; an environment without override variables
//! (`TRELLIS_CONFIG`, `TRELLIS_LOG`, `TRELLIS_ROLE`, other prefixes) loads
//! exactly as no environment; an override value that is not TOML reaches
//! the config as the string it is.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// `TRELLIS_` variables that are not overrides.
const NOT_OVERRIDES: &[&str] = &["TRELLIS_CONFIG", "TRELLIS_LOG", "TRELLIS_ROLE"];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, env) = match input.split_once("\n--- env\n") {
        Some((text, env)) => (text, env),
        None => (input, ""),
    };
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    let loaded = trellis::fuzz::config(text, env.clone());

    let overrides = env
        .iter()
        .any(|(k, _)| k.starts_with("TRELLIS_") && !NOT_OVERRIDES.contains(&k.as_str()));
    if !overrides && !env.is_empty() {
        let alone = trellis::fuzz::config(text, Vec::new());
        assert_eq!(
            outcome(&loaded),
            outcome(&alone),
            "variables that are not overrides changed the outcome"
        );
    }

    for (_, raw) in &env {
        if let toml::Value::String(s) = trellis::fuzz::env_value(raw) {
            let quoted = raw.trim_start().starts_with(['"', '\'']);
            assert!(
                s == *raw || quoted,
                "{raw:?} is not a TOML string, yet became {s:?}"
            );
        }
    }
});

/// The outcome as text: the config's debug form or the error message.
fn outcome<E: std::fmt::Display>(r: &Result<trellis::Config, E>) -> String {
    match r {
        Ok(config) => format!("{config:?}"),
        Err(err) => format!("error: {err}"),
    }
}
